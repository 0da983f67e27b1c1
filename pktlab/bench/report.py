"""The bench's results in words and tables: what was measured, what it means on this machine
and why (built from the figures of the run, never from stored numbers), and which measurements
asked for did not happen.

    print(bench.format_text(results))                    # figures + what they mean
"""

from .spec import DROP_POINTS, EXPECTED_ORDER, PARSE_POINTS, POINTS, RCVBUF


def failures(results):
    """Measurements that were asked for and did not happen (e.g. a program the kernel refused)."""
    out = []
    for name, m in results.get("micro", {}).items():
        if name != "_meta" and m.get("error"):
            out.append(f"micro {name}: {m['error']}")
        if m.get("lost"):
            out.append(f"micro {name}: {m['lost']} records lost")
    for label, err in results.get("live", {}).get("errors", {}).items():
        out.append(f"live {label}: {err}")
    return out


def _f(x, unit=""):
    if x is None:
        return "n/a"
    if unit == "pps":
        return f"{x / 1e6:.2f} Mpps" if x >= 1e6 else f"{x / 1e3:.0f} kpps"
    return f"{x:.1f}{unit}"


def _return_mitigation():
    """The CPU mitigation that makes every kernel return dear, when this machine runs one."""
    base = "/sys/devices/system/cpu/vulnerabilities/"
    for name in ("spec_rstack_overflow", "retbleed"):
        try:
            with open(base + name) as f:
                text = f.read().strip()
        except OSError:
            continue
        if any(k in text for k in ("Safe RET", "untrained return thunk", "stuffing")):
            return f"{name}: {text}"
    return None


def explain(results):
    """The results in words: what was measured, what it means here, and why."""
    lines = []
    mi = results.get("micro")
    if mi:
        lines += _explain_micro(mi)
    lv = results.get("live")
    if lv and lv.get("by_size"):
        lines.append("")
        lines += _explain_live_setup(lv)
        for size, row in lv["by_size"].items():
            lines += _explain_size(size, row)
        lines += _explain_order(lv)
        lines += _explain_load(lv, results.get("mode"))
        lines += _explain_socket_and_parse(lv)
    fails = failures(results)
    if fails:
        lines.append("")
        lines.append("Not measured / problems:")
        lines += [f"  {f}" for f in fails]
    return "\n".join(lines)


def _explain_micro(mi):
    """The test-run figures: each parse program against its empty program, what a record and a
    precise timestamp add."""
    lines = ["Test run (BPF_PROG_TEST_RUN): the program alone, in the kernel, on the "
             "same bytes again and again; the empty program of the same type is the "
             "floor (the cost of calling a program at all)."]
    for name in ("xdp", "xdp_no_record", "tc", "tc_no_record"):
        m = mi.get(name)
        if not m:
            continue
        if m.get("error"):
            lines.append(f"  {name}: not measured: {m['error'].splitlines()[0]}")
            continue
        verdict = ("within" if m["within_limit"] else "ABOVE") + \
            f" the {m['limit_ratio']:g}x limit"
        lines.append(f"  {name}: {m['ns_per_pkt']:.1f} ns vs {m['baseline_ns_per_pkt']:.1f} ns "
                     f"empty = {m['ratio']:.2f}x ({verdict}); the parse adds "
                     f"{m['added_ns_per_pkt']:.1f} ns per packet")
    mitigation = _return_mitigation()
    for hook in ("xdp", "tc"):
        rec, norec = mi.get(hook, {}), mi.get(hook + "_no_record", {})
        ns = mi.get(hook + "_ns_ts", {})
        if rec.get("ns_per_pkt") and norec.get("ns_per_pkt"):
            lines.append(
                f"  {hook}: a record per packet (a slot in this CPU's record ring, zeroed and "
                f"filled, a jiffies timestamp, the fingerprint) costs "
                f"{rec['ns_per_pkt'] - norec['ns_per_pkt']:.1f} ns on top of the parse.")
        if rec.get("ns_per_pkt") and ns.get("ns_per_pkt"):
            lines.append(
                f"  {hook}_ns_ts: the same with a bpf_ktime_get_ns() timestamp: "
                f"{ns['ns_per_pkt']:.1f} ns ({ns['ratio']:.2f}x empty), "
                f"{ns['ns_per_pkt'] - rec['ns_per_pkt']:+.1f} ns for one helper call"
                + (f" ({mitigation}: every kernel `ret` takes a detour)" if mitigation else "")
                + ". That is why records carry jiffies unless a lesson needs to order one "
                "packet's hooks in time.")
    return lines


def _explain_live_setup(lv):
    """The generator, the candidates it was chosen from, and how to read a veth lab's rates."""
    lines = [f"Live: generator = {lv['generator']} on CPU {lv['generator_cpu']}: "
             f"{lv['generator_why']}."]
    cmp = lv.get("generators_compared", {}).get("pps", {})
    if cmp:
        lines.append("  Generators against the same receiver (TC drop, 64 B): " + ", ".join(
            f"{k} {_f(v.get('tx_pps'), 'pps')}" if "tx_pps" in v else f"{k}: {v['error']}"
            for k, v in cmp.items()) + ".")
    lines.append(
        "  Why a veth is not a NIC: there is no wire, no second machine and no receive "
        "CPU of its own. veth hands each frame to its peer inside the sender's call, and "
        "the peer's receive work (NAPI poll, skb, the stack) runs as a softirq on the CPU "
        "that sent it, right after it was sent. So the generator can only go as fast as "
        "sending plus receiving up to the drop point: the generator's rate is measured in "
        "every run, and the ladder shows up in the absolute rates, not in frames lost on "
        "a wire.")
    lines.append(
        "  The ratios: `ratio` = packets/s at the point / the generator alone (the same "
        "generator with nobody to deliver to), i.e. how much of the generator's speed "
        "survives the receive work; `delivered` = packets counted at the point / frames "
        "sent in the same interval (1.00 = nothing lost on the way; below 1: frames "
        "dropped before the point, e.g. a full socket buffer). receive ns/pkt = 1e9/rate "
        "- 1e9/generator-alone: the receive path's time per packet, on the generator's CPU. Each "
        "point is measured in several back-to-back slices; its figure is the slice in which "
        "the generator ran fastest (other work can only slow a point down), and "
        "pps_spread keeps them all.")
    lines.append(
        "  Generic vs native XDP on veth: native XDP runs inside veth's own NAPI poll on "
        "the frame as it came (an xdp_frame from the generator here), before any skb "
        "exists; XDP_DROP just recycles the page. Generic XDP runs in "
        "__netif_receive_skb_core, after veth built an skb and GRO looked at it, so it "
        "pays for the skb it then frees. (When frames come from a socket instead, e.g. "
        "trafgen, native XDP on veth must first copy each skb into a page with XDP "
        "headroom, and loses most of its advantage.)")
    return lines


def _explain_size(size, row):
    """One frame size: the drop points against the generator, the parse+pass points against
    the socket point."""
    gen = row.get("generator", {})
    lines = []
    parts = []
    for p in DROP_POINTS:
        m = row.get(p)
        if not m:
            continue
        if "error" in m:
            parts.append(f"{p}: not measured ({m['error'][:160]})")
            continue
        s = f"{p} {_f(m['pps'], 'pps')}"
        if m.get("ratio") is not None:
            s += f" ({m['ratio']:.2f} of the generator"
            if m.get("receive_ns_per_pkt") is not None:
                s += f", receive {m['receive_ns_per_pkt']:.0f} ns/pkt"
            s += ")"
        if m.get("delivered") is not None and m["delivered"] < 0.97:
            s += f" [{m['delivered']:.0%} of what was sent reached it]"
        parts.append(s)
    lines.append(f"  {size} B drop points: generator alone {_f(gen.get('pps'), 'pps')}; "
                 + "; ".join(parts))
    parts = []
    for p in PARSE_POINTS:
        m = row.get(p)
        if not m:
            continue
        if "error" in m:
            parts.append(f"{p}: not measured ({m['error'][:160]})")
            continue
        s = f"{p} {_f(m['pps'], 'pps')} parsed"
        added = m.get("added_ns_per_pkt_vs_socket")
        if added is not None:
            s += f" ({added:+.0f} ns/pkt vs no hook" + \
                (": below zero, the path ran faster with the hook than without" +
                 (" (a likely cause, not measured here: the TC program pulls the "
                  "headers of trafgen's paged TX-ring skbs into the linear part once, "
                  "at src, instead of the stack pulling them piecemeal at dut)"
                  if p == "tc_egress_parse" else
                  ": noise") + ")" if added < 0 else ")")
        if m.get("records_lost"):
            s += f" [{m['records_lost']} records lost]"
        parts.append(s)
    if parts:
        lines.append(f"  {size} B parse+pass (every packet parsed, recorded, passed on to "
                     "the socket): " + "; ".join(parts))
    return lines


def _explain_order(lv):
    """Per frame size: the expected order of the drop points, or why it swapped."""
    lines = []
    order = lv.get("order", {})
    for size, o in order.items():
        if lv["order_as_expected"][size]:
            lines.append(f"  {size} B: the expected order appeared: " + " > ".join(o) + ".")
        else:
            row = lv["by_size"][size]
            lines.append(f"  {size} B: measured order " + " > ".join(o) + " (expected " +
                         " > ".join(p for p in EXPECTED_ORDER if p in o) + "). " +
                         _why_order(row, o))
    return lines


def _explain_load(lv, mode):
    """Other processes' CPU time while points were measured, when it was enough to matter."""
    load = lv.get("other_load_cpus")
    if not (load and load["max"] > 0.1):
        return []
    worst = sorted(((m.get("other_load_cpus") or 0, f"{s} B {p}")
                    for s, r in lv["by_size"].items() for p, m in r.items()
                    if isinstance(m, dict)), reverse=True)[:3]
    return [f"  Other processes on this machine used {load['mean']:.2f} CPUs on "
            f"average (up to {load['max']:.2f}) while points were measured: they "
            "compete with the generator's and the reader's CPUs, so these figures "
            "are noisier than on a quiet machine (most disturbed: " +
            ", ".join(f"{n} {c:.2f} CPUs" for c, n in worst) + "; see each "
            "point's pps_spread and other_load_cpus; rerun on a quiet machine" +
            (")." if mode == "long" else ", or use --long).")]


def _explain_socket_and_parse(lv):
    """What the socket point's rate is (the reader's), and how parse+pass is compared."""
    lines = []
    soc = lv["by_size"].get(str(lv.get("summary_frame_size")), {}).get("socket_drop", {})
    if soc.get("pps"):
        lines.append(
            f"  The socket point is a reader process on CPU {lv['other_cpus'][0]} "
            f"(recvmmsg(), 64 per call, {RCVBUF >> 20} MiB receive buffer): its rate is what "
            "the reader took out of the socket. The kernel's side shows in the generator's "
            f"rate in that run ({_f(soc['tx_pps'], 'pps')}); "
            + (f"{_f(soc['socket_buffer_drops_pps'], 'pps')} found the buffer full (the "
               "reader is slower than the kernel's delivery)."
               if soc.get("socket_buffer_drops_pps") else "the reader kept up."))
    lines.append(
        "  Parse+pass: the hook parses every packet and writes its record (a drain thread "
        "empties the record rings every 3 ms), then the packet goes on to the socket point. "
        "`+ns/pkt vs no hook` compares the generator's rate with the socket point's run "
        "(same traffic, same socket, no hook); compare it with the test-run figures above.")
    return lines


def _why_order(row, order):
    """The measured reason an out-of-order pair swapped, from this run's per-packet costs."""
    reasons = []
    for a, b in zip(order, order[1:]):
        if EXPECTED_ORDER.index(a) > EXPECTED_ORDER.index(b):
            ma, mb = row[a], row[b]
            ca, cb = ma.get("receive_ns_per_pkt"), mb.get("receive_ns_per_pkt")
            diff = abs(ma["pps"] - mb["pps"]) / max(ma["pps"], mb["pps"])
            if diff < 0.05:
                reasons.append(f"{a} and {b} are within {diff:.0%} of each other: on this "
                               "path they cost about the same, and the difference is inside "
                               "the run-to-run spread (run --long to tighten it)")
            elif ca is not None and cb is not None:
                reasons.append(f"{a} cost {ca:.0f} ns/pkt of receive work and {b} {cb:.0f}: "
                               f"on veth, {b} pays for work {a} skips or shares (see above)")
            else:
                reasons.append(f"{a} {ma['pps']:.0f} pps > {b} {mb['pps']:.0f} pps")
    return "; ".join(reasons)


def format_text(results):
    """The figures as tables, then the explanation."""
    lines = [f"pktlab bench ({results.get('mode')}) — kernel {results['machine']['kernel']}, "
             f"{results['machine']['cpus_usable']} CPUs, {results.get('elapsed_s', 0):.0f}s", ""]
    mi = results.get("micro")
    if mi:
        meta = mi["_meta"]
        lines.append(f"micro: BPF_PROG_TEST_RUN on {meta['frames']} frames from "
                     f"{meta['frames_source']}, {meta['rounds']} rounds x {meta['repeat']} runs")
        lines.append(f"  {'program':<15} {'ns/pkt':>8} {'min':>7} {'max':>7}  {'empty':>7} "
                     f"{'min':>6} {'max':>6}  {'ratio':>6} {'min':>6} {'max':>6}  limit")
        for name, m in mi.items():
            if name == "_meta":
                continue
            if m.get("error"):
                lines.append(f"  {name:<15} not measured: {m['error'].splitlines()[0][:90]}")
                continue
            sp, bs, rs = m["spread"], m["baseline_spread"], m["ratio_spread"]
            lim = (f"{m['limit_ratio']:g}x {'ok' if m['within_limit'] else 'EXCEEDED'}"
                   if "limit_ratio" in m else "")
            lines.append(f"  {name:<15} {m['ns_per_pkt']:8.1f} {sp['min']:7.1f} {sp['max']:7.1f}"
                         f"  {m['baseline_ns_per_pkt']:7.1f} {bs['min']:6.1f} {bs['max']:6.1f}"
                         f"  {m['ratio']:6.2f} {rs['min']:6.2f} {rs['max']:6.2f}  {lim}")
        lines.append("")
    lv = results.get("live")
    if lv and lv.get("by_size"):
        lines.append(f"live: {lv['generator']} on CPU {lv['generator_cpu']}, "
                     f"{lv['duration_s']:g}s per point, sizes = {lv['frame_size_means']}")
        sizes = list(lv["by_size"])
        head = f"  {'point':<22}" + "".join(f" {s + ' B pps':>13} {'ratio':>6} {'deliv':>6}"
                                             for s in sizes)
        lines.append(head)
        for p in ("generator", *POINTS, "socket_drop_trafgen"):
            if not any(p in lv["by_size"][s] for s in sizes):
                continue
            cells = ""
            for s in sizes:
                m = lv["by_size"][s].get(p)
                if not m or "error" in m:
                    cells += f" {'error' if m else '-':>13} {'':>6} {'':>6}"
                    continue
                r = "" if m.get("ratio") is None else f"{m['ratio']:.2f}"
                d = "" if m.get("delivered") is None else f"{m['delivered']:.2f}"
                cells += f" {m['pps']:13,.0f} {r:>6} {d:>6}"
            lines.append(f"  {p:<22}" + cells)
        lines.append("")
    lines.append(results.get("explanation") or explain(results))
    return "\n".join(lines)



#: the micro programs in plain words (the lesson's summary; the CLI report keeps the names)
PLAIN_PROGRAMS = {
    "xdp": "XDP: parse and write a record",
    "xdp_no_record": "XDP: parse only",
    "xdp_ns_ts": "XDP: parse, record, nanosecond clock",
    "tc": "TC: parse and write a record",
    "tc_no_record": "TC: parse only",
    "tc_ns_ts": "TC: parse, record, nanosecond clock",
    "drop_xdp": "XDP: drop, parse nothing",
    "drop_tc": "TC: drop, parse nothing",
}


def plain_summary(results):
    """The figures a learner needs, in plain words: (the program costs as rows [program, what
    it does, ns per packet, empty program, times the empty one], the live points as rows
    [point, size, packets per second, share of the generator alone], notes). No tool names,
    no field names, no limit verdicts: those are in format_text(), for the curious."""
    micro_rows = []
    for name, m in (results.get("micro") or {}).items():
        if name == "_meta" or not isinstance(m, dict):
            continue
        if m.get("ns_per_pkt") is None:
            micro_rows.append([name, PLAIN_PROGRAMS.get(name, ""), "not measured", "", ""])
            continue
        micro_rows.append([name, PLAIN_PROGRAMS.get(name, ""), f"{m['ns_per_pkt']:.1f}",
                           f"{m['baseline_ns_per_pkt']:.1f}", f"{m['ratio']:.1f}×"])
    live_rows, notes = [], []
    lv = results.get("live") or {}
    for size, row in (lv.get("by_size") or {}).items():
        gen = (row.get("generator") or {}).get("pps")
        if gen:
            live_rows.append(["the generator alone (nobody receives)", f"{size} B",
                              f"{gen / 1e6:.2f} million", "1.00"])
        for p in POINTS:
            m = row.get(p)
            if not m:
                continue
            if "error" in m or "pps" not in m:
                live_rows.append([POINTS[p][1], f"{size} B", "not measured", ""])
                continue
            share = f"{m['pps'] / gen:.2f}" if gen else ""
            live_rows.append([POINTS[p][1], f"{size} B", f"{m['pps'] / 1e6:.2f} million",
                              share])
    if micro_rows:
        notes.append("Program costs: each program runs in the kernel on the same bytes again "
                     "and again; the empty program of the same kind is the floor, the cost of "
                     "running any program at all.")
    if live_rows:
        notes.append("Live: one sender in src sends small UDP packets as fast as it can; each "
                     "point drops them at dut. On a veth pair the receive work runs on the "
                     "sender's CPU, so the later a packet is dropped, the fewer packets per "
                     "second get through; 'share' is the rate against the sender alone.")
    load = (lv.get("other_load_cpus") or {}).get("max")
    if load and load > 0.1:
        notes.append("Other programs were busy on this machine meanwhile: the live figures are "
                     "noisier than on a quiet one.")
    return micro_rows, live_rows, notes
