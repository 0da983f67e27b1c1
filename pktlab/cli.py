"""The `pktlab` command. A stable contract (DESIGN.md, "Command line"):

    pktlab doctor [--json]
    pktlab cast PCAP [--json]
    pktlab replay PCAP [--hooks ...] [--pps N | --mbps N | --topspeed] [--loop N] [--limit N]
                       [--step] [--json]
    pktlab bench [--json] [--plot FILE]
    pktlab lab up|down|status|clean

--json prints one JSON document on stdout and nothing else there. Exit status: 0 success,
1 the run worked but found disagreements or lost records, 2 bad input or environment.
"""

import argparse
import json
import os
import signal
import sys

from .errors import EnvironmentProblem, PktlabError

EXIT_OK, EXIT_FOUND, EXIT_BAD = 0, 1, 2


def _err(msg):
    print(f"pktlab: {msg}", file=sys.stderr)


def _need_root(what):
    if os.geteuid() != 0:
        raise EnvironmentProblem(f"{what} needs root (eBPF programs and network namespaces); "
                                 "run it with sudo, e.g. `sudo .venv/bin/pktlab ...`")


def cmd_doctor(args):
    from . import doctor
    report, status = doctor.run()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(doctor.format_text(report))
    return status


def cmd_cast(args):
    from . import cast
    return cast.run(args.pcap, as_json=args.json)


def cmd_replay(args):
    from . import replay as rp
    _need_root("pktlab replay")
    if not os.path.exists(args.pcap):
        raise FileNotFoundError(f"{args.pcap}: no such capture file (try pcaps/mixed.pcap)")
    if args.step:
        from .stepper import step_cli
        return step_cli(args)
    progress = None
    bar = None
    if not args.json and sys.stderr.isatty():
        from .progress import TextBar
        total = _count(args.pcap, args.limit) * args.loop
        bar = TextBar(total, label="replay")
        progress = bar.update
    result = rp.replay(args.pcap, hooks=args.hooks, pps=args.pps, mbps=args.mbps,
                       loop=args.loop, limit=args.limit, rewrite=rewrite_options(args),
                       xdp_mode=args.xdp_mode, progress=progress, mtu=args.mtu)
    if bar:
        bar.close()
    doc = result.summary()
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(format_replay(doc))
    return EXIT_OK if result.ok else EXIT_FOUND


def rewrite_options(args):
    """--rewrite (all three 'auto') and --dst-mac/--dst-ip4/--dst-ip6 -> Replayer's dict."""
    opts = {k: getattr(args, k) for k in ("dst_mac", "dst_ip4", "dst_ip6")}
    if args.rewrite:
        opts = {k: v or "auto" for k, v in opts.items()}
    return opts if any(opts.values()) else None


def _count(path, limit):
    try:
        from .capture import count_frames
        n = count_frames(path)
    except Exception:
        return 0
    return min(n, limit) if limit else n


def format_replay(doc):
    lines = [f"replayed {doc['packets']} frames from {doc['source']} "
             f"({doc['sent']} sent) in {doc['elapsed_s']:.3f}s: {doc['pps']:.0f} packets/s"
             + (f" (requested {doc['requested_pps']})" if doc.get("requested_pps") else ""), ""]
    head = f"  {'hook':<11} {'via':<16} {'seen':>7} {'agree':>7} {'explained':>9} " \
           f"{'disagree':>8} {'lost':>5} {'skipped':>7}"
    lines += [head, "  " + "-" * (len(head) - 2)]
    for h, t in doc["hooks"].items():
        lines.append(f"  {h:<11} {str(t['via']):<16} {t['seen']:>7} {t['agree']:>7} "
                     f"{t['explained']:>9} {t['disagree']:>8} {t['lost']:>5} {t['skipped']:>7}")
    rates = {h: t["measured_pps"] for h, t in doc["hooks"].items() if t.get("measured_pps")}
    if rates:
        lines.append(f"  rate the hooks saw (their own timestamps, {doc.get('hook_clock', 'ns')}): "
                     + ", ".join(f"{h} {v:,.1f}/s" for h, v in rates.items()))
    for h, t in doc["hooks"].items():
        for reason, n in t["explained_reasons"].items():
            lines.append(f"  explained at {h} ({n}): {reason}")
    if doc.get("kprobe_not_used"):
        for m, why in doc["kprobe_not_used"].items():
            lines.append(f"  kprobe hook not by {m}: {why}")
    for d in doc["disagreements"]:
        lines.append(f"  DISAGREE frame {d['frame']} at {d['hook']}: {', '.join(d['fields'])}")
    if doc.get("rewrite"):
        lines.append(f"  rewritten: {doc['rewrite']['description']}")
    for p in doc["problems"]:
        lines.append(f"  capture problem: {p}")
    lines.append(f"  leftovers: {doc['leftovers'] or 'none'}")
    return "\n".join(lines)


def cmd_bench(args):
    from . import bench
    _need_root("pktlab bench")
    return bench.cli(args)


def cmd_lab(args):
    from . import lab as L
    if args.action != "status":
        _need_root(f"pktlab lab {args.action}")
    if args.action == "up":
        lab = L.Lab(prefix=args.prefix, persistent=True, mtu=args.mtu).up()
        print(f"{lab.name}: {lab.ns_src}/{lab.if_src} {lab.src_ip4} <-> "
              f"{lab.ns_dut}/{lab.if_dut} {lab.dut_ip4}")
        print(f"  try: ip netns exec {lab.ns_src} ping -c1 {lab.dut_ip4}")
        print(f"  remove with: pktlab lab down {lab.name}")
        return EXIT_OK
    if args.action == "down":
        labs = {s.name: s for s in L.list_labs()}
        names = args.names or []
        if not names:
            raise ValueError("name the lab(s) to take down (see `pktlab lab status`), "
                             "or use `pktlab lab clean --all`")
        for n in names:
            if n not in labs:
                raise ValueError(f"lab {n}: no such lab (see `pktlab lab status`)")
            L.remove_lab(labs[n])
            print(f"removed {n}")
        return EXIT_OK
    if args.action == "clean":
        removed = L.clean_stale(all_labs=args.all)
        print(f"removed {len(removed)} lab(s)" + (": " + ", ".join(removed) if removed else ""))
        return EXIT_OK
    labs = L.list_labs()
    if args.json:
        print(json.dumps([{"name": s.name, "ns": [s.ns_src, s.ns_dut],
                           "interfaces": [s.if_src, s.if_dut], "owner_pid": s.owner_pid,
                           "stale": L.is_stale(s)} for s in labs], indent=2))
        return EXIT_OK
    if not labs:
        print("no pktlab labs")
    for s in labs:
        owner = ("made by `lab up`" if s.owner_pid == 0 else
                 "no state file" if s.owner_pid == -1 else f"owner pid {s.owner_pid}")
        print(f"{s.name}: {s.ns_src}/{s.if_src} <-> {s.ns_dut}/{s.if_dut}  ({owner}"
              f"{', STALE: `pktlab lab clean` removes it' if L.is_stale(s) else ''})")
    return EXIT_OK


def build_parser():
    p = argparse.ArgumentParser(prog="pktlab", description="Packet parsing, taken apart twice: "
                                "in Python and live in the kernel (XDP, TC, kprobe).")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True

    d = sub.add_parser("doctor", help="what works on this machine, and how to fix what doesn't")
    d.add_argument("--json", action="store_true", help="one JSON document on stdout")
    d.set_defaults(func=cmd_doctor)

    c = sub.add_parser("cast", help="the userspace walk of every frame, layer by layer")
    c.add_argument("pcap")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_cast)

    r = sub.add_parser("replay", help="inject a capture into a lab, compare every hook's "
                                      "records with the userspace parse")
    r.add_argument("pcap")
    r.add_argument("--hooks", default="all",
                   help="comma-separated: xdp,tc-ingress,tc-egress,kprobe (default: all)")
    rate = r.add_mutually_exclusive_group()
    rate.add_argument("--pps", type=float, help="send at this many packets per second")
    rate.add_argument("--mbps", type=float, help="send at this many megabits per second")
    rate.add_argument("--topspeed", action="store_true", help="as fast as the lab takes it "
                                                              "(the default)")
    r.add_argument("--loop", type=int, default=1, help="replay the capture N times")
    r.add_argument("--limit", type=int, default=None, help="only the first N frames")
    r.add_argument("--step", action="store_true", help="one frame at a time (Enter for next)")
    r.add_argument("--rewrite", action="store_true",
                   help="address every frame to the lab's dut (MAC, IPv4, IPv6; checksums fixed)")
    r.add_argument("--dst-mac", metavar="MAC|auto", help="rewrite destination MACs")
    r.add_argument("--dst-ip4", metavar="IP|auto", help="rewrite destination IPv4 addresses")
    r.add_argument("--dst-ip6", metavar="IP|auto", help="rewrite destination IPv6 addresses")
    r.add_argument("--xdp-mode", choices=("generic", "native"), default="generic")
    r.add_argument("--mtu", type=int, default=1500, help="the lab's MTU (default 1500)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_replay)

    b = sub.add_parser("bench", help="what each hook costs: test-run ns/packet and live rates")
    b.add_argument("--json", action="store_true")
    b.add_argument("--plot", metavar="FILE", help="save the chart (PNG/SVG)")
    b.add_argument("--long", action="store_true", help="longer runs, tighter figures")
    b.add_argument("--only", default=None, help="micro,live or a comma list of live points")
    b.set_defaults(func=cmd_bench)

    lab = sub.add_parser("lab", help="manage labs by hand")
    lab.add_argument("action", choices=("up", "down", "status", "clean"))
    lab.add_argument("names", nargs="*", help="labs to take down")
    lab.add_argument("--prefix", default="pl")
    lab.add_argument("--mtu", type=int, default=1500)
    lab.add_argument("--all", action="store_true", help="clean: every lab, not only stale ones")
    lab.add_argument("--json", action="store_true")
    lab.set_defaults(func=cmd_lab)
    return p


_MAIN_PID = None


def _raise_interrupt(signum, frame):
    # pyroute2 forks helper processes (netns sockets) and ends them with SIGTERM; a forked
    # child must just die, never unwind the parent's `with` blocks (that would tear the lab down)
    if os.getpid() != _MAIN_PID:
        os._exit(128 + signum)
    raise KeyboardInterrupt


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "loop", 1) is not None and getattr(args, "loop", 1) < 1:
        parser.error("--loop must be at least 1")
    # Ctrl-C and SIGTERM unwind through every `with`, so labs and attachments are removed
    global _MAIN_PID
    _MAIN_PID = os.getpid()
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _err("interrupted; everything this run attached has been removed")
        return 130
    except (FileNotFoundError, ValueError, EnvironmentProblem) as e:
        _err(str(e))
        return EXIT_BAD
    except PktlabError as e:
        _err(str(e))
        log = getattr(e, "log", "")
        if log:
            print(log.rstrip()[-3000:], file=sys.stderr)
        return EXIT_BAD


if __name__ == "__main__":
    sys.exit(main())
