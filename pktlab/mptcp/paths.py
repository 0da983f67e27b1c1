"""A lab with two or three paths between src and dut, and MPTCP set up across them.

    with Lab() as lab, Paths(lab, 2) as paths:
        paths.addrs(2)                 # ("10.201.0.1", "10.201.0.2")
        paths.ifname(2, "dut"), paths.ifindex(2, "dut")
        paths.path_of(addr)            # which path an address is on
        paths.counters()               # {path: dut interface byte counters}

Path 1 is the lab's own veth (10.200.0.1 <-> 10.200.0.2); path p >= 2 is one more veth pair
between the lab's namespaces (pktlab.lab.ExtraVeth: `<lab>s<p>` / `<lab>d<p>`, 10.(199+p).0.1 /
.2, IPv4 only, removed with the lab or by close(), whichever is first).

MPTCP (what the study found gives one subflow per path, each staying on its path, with no
routing rules): both sides' limits are `subflows N-1 add_addr_accepted N-1`; dut has one
`signal` endpoint per extra path (it announces that address: ADD_ADDR), src has none (it
joins each announced address from its own address on that subnet, and connected routes keep
each join on its path). Client `subflow` endpoints would need interface binding or source
routing to stay on their path, and mixing both kinds gives cross-path subflows: not done.
"""

from ..errors import LabError
from ..lab import ExtraVeth
from ..owned import Owned
from . import pm

PATHS = (2, 3)
PORT = 7200


def check_paths(n):
    if n not in PATHS:
        raise ValueError(f"paths {n!r}: a lab here has 2 or 3 paths (path 1 is the lab's veth)")
    return n


def addrs(p):
    """(src address, dut address) of path p (1-based)."""
    return f"10.{199 + p}.0.1", f"10.{199 + p}.0.2"


class Paths(Owned):
    """Paths 2..n added to `lab`, and MPTCP's limits and endpoints in both namespaces."""

    def __init__(self, lab, n=2):
        self.lab, self.n = lab, check_paths(n)
        pm.require_mptcp(lab)          # before anything is added: the fix, in one line
        self.extra = {}
        self._hold()
        try:
            for p in range(2, n + 1):
                self.extra[p] = ExtraVeth(lab, p, *addrs(p), prefixlen=24, ipv6=False)
            for side in ("src", "dut"):
                pm.set_limits(lab.ns(side), subflows=n - 1, add_addr_accepted=n - 1)
            for p in range(2, n + 1):
                pm.add_endpoint(lab.ns_dut, addrs(p)[1], self.ifindex(p, "dut"), pm.SIGNAL)
        except BaseException:
            self.close()
            raise

    def numbers(self):
        return list(range(1, self.n + 1))

    def addrs(self, p):
        return addrs(p)

    def ifname(self, p, side):
        if p == 1:
            return self.lab.ifname(side)
        return self.extra[p].ifname(side)

    def ifindex(self, p, side):
        if p == 1:
            return self.lab.ifindex(side)
        return self.extra[p].ifindex(side)

    def path_of(self, addr):
        """The path an address of the lab belongs to, or None."""
        for p in self.numbers():
            if addr in addrs(p):
                return p
        return None

    def counters(self):
        """{path: {"rx_bytes", "tx_bytes", "rx_packets", "tx_packets"}} of each dut end."""
        from ..lab.nl import IPRoute
        out = {}
        with IPRoute(netns=self.lab.ns_dut) as ipr:
            for p in self.numbers():
                st = ipr.get_links(ifname=self.ifname(p, "dut"))[0].get_attr("IFLA_STATS64")
                out[p] = {k: st[k] for k in ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets")}
        return out

    def set_up(self, p, up):
        """Path p's dut end down (the path fails: its subflow meets silence) or up again."""
        if p == 1:
            from ..lab.nl import IPRoute
            with IPRoute(netns=self.lab.ns_dut) as ipr:
                ipr.link("set", index=self.lab.ifindex("dut"), state="up" if up else "down")
            return
        if p not in self.extra:
            raise LabError(22, f"path {p}: this lab has paths 1..{self.n}")
        self.extra[p].set_up(up)

    def config(self):
        """What the path managers hold: {"src": pm.show(), "dut": pm.show()}."""
        return {side: pm.show(self.lab.ns(side)) for side in ("src", "dut")}

    def _release(self):
        errors = []
        if not self.lab.closed:
            try:
                pm.flush_endpoints(self.lab.ns_dut)
            except Exception as e:      # keep going: the veths must still go
                errors.append(e)
        for p in sorted(self.extra, reverse=True):
            try:
                self.extra.pop(p).close()
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def __repr__(self):
        return f"<Paths {self.n} of lab {self.lab.name}{' (removed)' if self.closed else ''}>"
