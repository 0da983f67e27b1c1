"""How the live ladder measures: the lab's link counters, GRO at dut, and the rate of a point
against the generator's, in back-to-back slices, with the CPU time other processes used
meanwhile (the first suspect for noise on a shared machine).
"""

import contextlib
import os
import time

from ..lab import netns
from ..owned import Owned
from .cleanup import _OUR_SESSIONS
from .spec import _spread


class LinkStats(Owned):
    """Interface counters of the lab's two ends (IFLA_STATS64 over one netlink socket each)."""

    def __init__(self, lab):
        from pyroute2 import IPRoute
        self.lab = lab
        self._ipr = {}
        self._hold()
        try:
            for side in ("src", "dut"):
                self._ipr[side] = IPRoute(netns=lab.ns(side))
        except BaseException:
            self.close()
            raise
        self.index = {s: lab.ifindex(s) for s in ("src", "dut")}

    def get(self, side):
        link = self._ipr[side].get_links(self.index[side])[0]
        return dict(link.get_attr("IFLA_STATS64"))

    def _release(self):
        while self._ipr:
            _, ipr = self._ipr.popitem()
            with contextlib.suppress(Exception):
                ipr.close()


def _set_gro(lab, on):
    netns.run(lab.ns_dut, ["ethtool", "-K", lab.if_dut, "gro", "on" if on else "off"])


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _others_ticks():
    """CPU ticks (user+system) of every user-space process that is not this bench: {pid: n}."""
    me, out = os.getpid(), {}
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rindex(")") + 2:].split()
        if int(rest[6]) & 0x00200000 or int(rest[3]) in _OUR_SESSIONS:   # PF_KTHREAD
            continue
        out[int(d)] = int(rest[11]) + int(rest[12])
    return out


def _measure(read_point, read_tx, duration, warmup, slices=3, check=None):
    """Rates over `slices` back-to-back intervals; pps is their median, with the spread.

    Each snapshot reads tx before and after the point counter and takes the middle, so a slow
    point reader (nft, a subprocess) does not skew the ratio. The CPU time other processes
    used meanwhile is measured too: on a shared machine it is the first suspect for noise.
    """
    def snap():
        tx_a, t_a = read_tx(), time.monotonic()
        p = read_point()
        t_b, tx_b = time.monotonic(), read_tx()
        return (t_a + t_b) / 2, (tx_a + tx_b) / 2, p

    time.sleep(warmup)
    others0 = _others_ticks()
    snaps = [snap()]
    for _ in range(slices):
        time.sleep(duration / slices)
        snaps.append(snap())
    others1 = _others_ticks()
    if check:
        check()
    pps = [(b[2] - a[2]) / (b[0] - a[0]) for a, b in zip(snaps, snaps[1:])]
    tx_pps = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(snaps, snaps[1:])]
    dt = snaps[-1][0] - snaps[0][0]
    tx, point = snaps[-1][1] - snaps[0][1], snaps[-1][2] - snaps[0][2]
    others = sum(v - others0[p] for p, v in others1.items() if p in others0)
    # The figure is the slice in which the generator ran fastest, point and tx from that same
    # slice: anything else on the machine can only slow a point down, so the least disturbed
    # slice is the best estimate of what the point can do. All slices are kept (pps_spread).
    best = max(range(len(pps)), key=lambda i: tx_pps[i])
    return {"interval_s": dt, "tx": tx, "point": point,
            "pps": pps[best], "tx_pps": tx_pps[best],
            "pps_spread": _spread(pps), "slices": slices,
            "delivered": point / tx if tx > 0 else None,
            "other_load_cpus": others / _CLK_TCK / dt}
