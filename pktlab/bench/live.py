"""The live ladder: a lab (veth pair between two namespaces), a generator in src sending one
UDP frame to dut's IP and MAC as fast as this machine allows, and at dut one point at a time:
XDP drop (native, generic), TC ingress drop, netfilter drop (nftables, netdev family, ingress
hook, the earliest netfilter hook), a UDP socket that reads and discards, and each pktlab parse
hook in parse-and-pass mode. Rates come from counters: the drop programs' per-CPU maps, the nft
counter, the socket reader's count, the generator's own per-CPU map (or the src veth's tx
counters for trafgen).

Everything made here (lab, attachments, nft table, socket reader process, generator threads and
processes) is removed in `finally` blocks and context managers, also on Ctrl-C.
"""

import contextlib
import errno
import os
import shutil
import statistics

from ..errors import EnvironmentProblem, LabError, PktlabError
from ..owned import Owned
from .cleanup import _preload, _signals_deferred
from .generators import (TcpreplayGenerator, TrafgenGenerator, _choose_generator,
                         udp_frame)
from .measure import LinkStats, _measure, _set_gro
from .programs import DROP_TC, DROP_XDP, _held_program, _percpu_count
from .receivers import NftDrop, SocketReader, _Drainer
from .spec import (EXPECTED_ORDER, FCS_NOTE, PARSE_POINTS, PARSE_SLOTS, POINTS, SIZES,
                   _check_points, _progress_noop)


def _cpus():
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[0], (cpus[1:] or cpus)


class _Live(Owned):
    """One lab for the whole live run; one point at a time."""

    def __init__(self, lab, stats, generator, gen_cpu, other_cpus, duration, warmup, slices):
        self.lab, self.stats, self.gen = lab, stats, generator
        self.gen_cpu, self.other = gen_cpu, other_cpus
        self.duration, self.warmup, self.slices = duration, warmup, slices
        self.drop_xdp = None
        self.drop_tc = None

    def programs(self):
        self.drop_xdp = _held_program(DROP_XDP)
        self.drop_tc = _held_program(DROP_TC)
        self._hold()

    def _release(self):
        self.drop_xdp = self.drop_tc = None

    def _run_gen(self, gen, frame, read_point, extra=None):
        gen.start(frame)
        try:
            m = _measure(read_point, gen.count, self.duration, self.warmup, self.slices,
                         check=getattr(gen, "check", None))
            if extra:
                m.update(extra())
        finally:
            gen.stop()
        if gen.errors:
            raise LabError(errno.EIO, "; ".join(gen.errors))
        if m["tx"] <= 0:
            raise LabError(errno.EIO, f"the generator ({gen.name}) sent nothing in "
                                      f"{m['interval_s']:.2f}s")
        return m

    def generator_alone(self, frame):
        """The generator with nobody to deliver to: dut has no NAPI (GRO off, no XDP), so
        veth refuses every frame at once; what is left is the cost of generating."""
        _set_gro(self.lab, False)
        try:
            m = self._run_gen(self.gen, frame, self.gen.count)
        finally:
            _set_gro(self.lab, True)
        m["pps"], m["pps_spread"], m["delivered"] = m["tx_pps"], None, 1.0
        return m

    def point(self, name, frame, gen=None):
        from ..kernel.attach import TcAttachment, XdpAttachment
        from ..kernel.hooks import HookSet
        lab, gen = self.lab, gen or self.gen
        self.programs()
        if name in ("xdp_drop", "xdp_native_drop"):
            mode = "native" if name == "xdp_native_drop" else "generic"
            with XdpAttachment(lab.ns_dut, lab.if_dut, self.drop_xdp.fd, mode):
                base = _percpu_count(self.drop_xdp)
                return self._run_gen(gen, frame, lambda: _percpu_count(self.drop_xdp) - base)
        if name == "tc_drop":
            with TcAttachment(lab.ns_dut, lab.if_dut, self.drop_tc.fd, "ingress",
                              name="pktlab_bench"):
                base = _percpu_count(self.drop_tc)
                return self._run_gen(gen, frame, lambda: _percpu_count(self.drop_tc) - base)
        if name == "nft_drop":
            with NftDrop(lab) as nft:
                return self._run_gen(gen, frame, nft.count)
        if name == "socket_drop":
            with SocketReader(lab, self.other[0]) as rd:
                u0 = rd.udp_counters()

                def extra():
                    u1 = rd.udp_counters()
                    return {"socket_buffer_drops": u1.get("RcvbufErrors", 0) -
                            u0.get("RcvbufErrors", 0)}
                m = self._run_gen(gen, frame, rd.count, extra)
                m["socket_buffer_drops_pps"] = m.pop("socket_buffer_drops") / m["interval_s"]
                return m
        if name in PARSE_POINTS:
            hook = POINTS[name][2]
            with SocketReader(lab, self.other[0]) as rd, \
                    HookSet(lab, [hook], slots=PARSE_SLOTS) as hs:
                with _Drainer(hs, self.other) as drain:
                    def parsed():
                        return sum(sum(s.values()) for s in hs.seen().values())
                    m = self._run_gen(gen, frame, parsed)
                m["records_read"] = drain.records
                m["records_lost"] = sum(hs.lost().values())
                m["via"] = hs.via.get(hook)
                return m
        raise ValueError(f"live point {name!r}: choose from {', '.join(POINTS)}")


def live(points=None, sizes=SIZES, duration=1.2, warmup=0.3, slices=4, compare=("trafgen",),
         progress=None, prefix="plhb", lab=None):
    """The live ladder: packets/s at each point, for each frame size, in one lab (its own, or
    `lab`: one the caller made and removes, e.g. pktlabd's lab tagged with its learner)."""
    _preload()
    from ..lab import Lab
    progress = progress or _progress_noop
    points = _check_points(points)
    sizes = [int(s) for s in sizes]
    for s in sizes:
        if not 60 <= s <= 1514:
            raise ValueError(f"frame size {s}: use 60..1514 ({FCS_NOTE}; the lab's MTU is 1500)")
    if shutil.which("ethtool") is None:
        raise EnvironmentProblem("ethtool is not installed (the bench turns GRO on at dut so "
                                 "its veth runs NAPI); apt-get install ethtool")
    gen_cpu, other = _cpus()
    total = len(sizes) * (1 + len(points) + (1 if "tc_egress_parse" in points else 0)) + \
        len(compare)
    done = [0]

    def step(label):
        done[0] += 1
        progress(done[0], total, label)

    res = {"frame_sizes": sizes, "frame_size_means": FCS_NOTE, "duration_s": duration,
           "generator_cpu": gen_cpu, "other_cpus": other, "by_size": {}, "errors": {}}
    with contextlib.ExitStack() as stack:
        with _signals_deferred():
            if lab is None:
                lab = stack.enter_context(Lab(prefix=prefix))
            stats = LinkStats(lab)
            stack.callback(stats.close)
        _set_gro(lab, True)
        gen, why = _choose_generator(lab, stats, gen_cpu)
        stack.callback(gen.close)
        res.update(generator=gen.name, generator_why=why)
        runner = _Live(lab, stats, gen, gen_cpu, other, duration, warmup, slices)
        stack.callback(runner.close)
        if compare:
            res["generators_compared"] = _compare_generators(runner, compare, step)
        for size in sizes:
            res["by_size"][str(size)] = _derive(_size_row(runner, size, points, res["errors"],
                                                          step))
    _summarize_live(res)
    return res


def _frame_for(lab, size):
    return udp_frame(size, lab.mac("dut"), lab.mac("src"), lab.src_ip4, lab.dut_ip4)


def _compare_generators(runner, compare, step):
    """Which generator: the candidates against the same receiver (TC drop at dut, 64 B)."""
    lab, stats, gen, gen_cpu = runner.lab, runner.stats, runner.gen, runner.gen_cpu
    cmp = {}
    f64 = _frame_for(lab, 64)
    try:
        cmp[gen.name] = _rate(runner.point("tc_drop", f64))
    except PktlabError as e:
        cmp[gen.name] = {"error": str(e)}
    for other_name in compare:
        if other_name == gen.name:
            continue
        try:
            g = (TcpreplayGenerator(lab, stats, gen_cpu) if other_name == "tcpreplay"
                 else TrafgenGenerator(lab, stats, gen_cpu))
            with g:
                cmp[other_name] = _rate(runner.point("tc_drop", f64, gen=g))
        except PktlabError as e:
            cmp[other_name] = {"error": str(e)}
        step(f"generator {other_name}")
    return {"receiver": "TC ingress drop at dut, 64-byte frames", "pps": cmp}


def _size_row(runner, size, points, errors, step):
    """One frame size: the generator alone, then each point; a point that failed is an error
    in its place and in `errors`."""
    frame = _frame_for(runner.lab, size)
    row = {}
    try:
        row["generator"] = _rate(runner.generator_alone(frame))
    except PktlabError as e:
        row["generator"] = {"error": str(e)}
        # a measurement asked for that did not happen: failures() (exit 1) must see it
        errors[f"{size} B generator"] = str(e)
    step(f"{size} B generator")
    for p in points:
        label = f"{size} B {p}"
        try:
            if p == "tc_egress_parse":
                m = _egress_point(runner, p, frame, row, size, step)
            else:
                m = _rate(runner.point(p, frame))
                m["generator"] = runner.gen.name
            row[p] = m
        except PktlabError as e:
            row[p] = {"error": str(e)}
            errors[label] = str(e)
        step(label)
    return row


def _egress_point(runner, p, frame, row, size, step):
    """TC egress on src sees only frames that go through src's stack: this point (and its
    baseline, the socket point, put in `row`) uses trafgen through the qdisc layer."""
    with TrafgenGenerator(runner.lab, runner.stats, runner.gen_cpu, qdisc=True) as tg:
        base = _rate(runner.point("socket_drop", frame, gen=tg))
        base["generator"] = tg.name + " (qdisc path)"
        row["socket_drop_trafgen"] = base
        step(f"{size} B socket (trafgen)")
        m = _rate(runner.point(p, frame, gen=tg))
        m["generator"] = tg.name + " (qdisc path)"
    return m


def _rate(m):
    keep = ("pps", "tx_pps", "pps_spread", "slices", "delivered", "interval_s",
            "other_load_cpus", "socket_buffer_drops_pps", "records_read", "records_lost", "via")
    return {k: m[k] for k in keep if k in m}


def _derive(row):
    """Ratios and per-packet costs, from this run's numbers only."""
    gen = row.get("generator", {}).get("pps")
    for name, m in row.items():
        if "pps" not in m or name == "generator":
            continue
        m["ratio"] = m["pps"] / gen if gen else None
        # on veth the receive work runs on the generator's CPU (see explain()): the time per
        # packet at this point's rate, less the generator's own time, is the receive path's
        if gen and m.get("generator", "").startswith("xdp-live") and m["pps"] > 0:
            m["receive_ns_per_pkt"] = 1e9 / m["tx_pps"] - 1e9 / gen
    # parse+pass sends every packet on to the socket point: against the socket point's run
    # with the same generator, the difference in time per generated packet is what the hook
    # adds (tx rates: the socket's own count is what its reader kept up with, a separate limit)
    for p in PARSE_POINTS:
        m = row.get(p, {})
        base = row.get("socket_drop_trafgen" if p == "tc_egress_parse" else "socket_drop", {})
        if m.get("tx_pps") and base.get("tx_pps"):
            m["added_ns_per_pkt_vs_socket"] = 1e9 / m["tx_pps"] - 1e9 / base["tx_pps"]
    return row


def _summarize_live(res):
    """Top-level keys (the JSON contract): generator_pps and <point>_pps for 64-byte frames
    (the smallest size measured), the classic packets-per-second ladder."""
    if not res["by_size"]:
        return
    size = str(min(int(s) for s in res["by_size"]))
    row = res["by_size"][size]
    res["summary_frame_size"] = int(size)
    res["generator_pps"] = row.get("generator", {}).get("pps")
    for p in POINTS:
        if p in row:
            res[f"{p}_pps"] = row[p].get("pps")
            res[f"{p}_ratio"] = row[p].get("ratio")
    res["order"] = {}
    for s, r in res["by_size"].items():
        measured = [p for p in EXPECTED_ORDER if r.get(p, {}).get("pps")]
        res["order"][s] = sorted(measured, key=lambda p: -r[p]["pps"])
    res["expected_order"] = list(EXPECTED_ORDER)
    loads = [m["other_load_cpus"] for r in res["by_size"].values() for m in r.values()
             if isinstance(m, dict) and m.get("other_load_cpus") is not None]
    if loads:
        res["other_load_cpus"] = {"mean": statistics.mean(loads), "max": max(loads)}
    res["order_as_expected"] = {s: o == [p for p in EXPECTED_ORDER if p in o]
                                for s, o in res["order"].items()}
