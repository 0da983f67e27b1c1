"""More veth pairs between a lab's two namespaces: a lab's extra interfaces.

    v = ExtraVeth(lab, 2, "10.201.0.1", "10.201.0.2")    # <lab>s2 in src <-> <lab>d2 in dut
    v.ifname("src"), v.ifindex("dut")
    v.close()                                            # or with the lab, whichever is first

The MPTCP lessons join src and dut by more than one path; each extra path is one of these.
They follow the lab's own rules (labs.py): names are the lab's name plus a side letter and a
number (`<lab>s2` / `<lab>d2`, at most 15 characters), addresses exist only inside the lab's
namespaces, IPv6 autoconfiguration and DAD are off (or IPv6 is off altogether: ipv6=False
keeps the wire silent, not even an MLD report), and the pair is made in the lab's namespaces
only, never on the host.

Proof, as for the cgroup (cgroup.py): the pair's names go into the lab's state file before the
pair is made, so that
- the attachment guard (guard.py) accepts them as the lab's own interfaces, and only them;
- removal (removal.py) and stale cleaning delete them with the lab's own veth, before the
  namespaces (a SIGKILLed owner leaves nothing pktlab does not know of);
and close() deletes the pair and its record once, whichever of it and the lab comes first.
"""

import errno
import re
import time

from ..errors import LabError
from ..owned import Owned
from . import netns

#: what an extra interface's number may be (the name must stay within 15 characters)
TAG_RE = re.compile(r"^[1-9][0-9]?$")
CARRIER_TIMEOUT_S = 5.0


def extra_names(name, tag):
    """(src, dut) interface names of lab `name`'s extra pair number `tag`."""
    return f"{name}s{tag}", f"{name}d{tag}"


def recorded(state):
    """[{"src", "dut", "tag"}] of the extra pairs lab `state` recorded; entries that do not name
    this lab's own interfaces are not its (a state file speaks only for its own names)."""
    out = []
    for v in state.extra.get("veths") or []:
        if not isinstance(v, dict) or not TAG_RE.match(str(v.get("tag", ""))):
            continue
        if (v.get("src"), v.get("dut")) == extra_names(state.name, v["tag"]):
            out.append(v)
    return out


class ExtraVeth(Owned):
    """One more veth pair between the lab's namespaces (see the module docstring)."""

    def __init__(self, lab, tag, src_addr=None, dut_addr=None, prefixlen=24, ipv6=False):
        tag = str(tag)
        if not TAG_RE.match(tag):
            raise ValueError(f"extra veth number {tag!r}: use 1..99")
        if lab.closed:
            raise LabError(errno.ESHUTDOWN, f"extra veth {tag}: the lab is closed; open it first")
        self.lab, self.tag = lab, tag
        self.names = dict(zip(("src", "dut"), extra_names(lab.name, tag)))
        if any(v["tag"] == tag for v in recorded(lab.state)):
            raise LabError(errno.EEXIST, f"lab {lab.name}: extra veth {self.names['src']} exists "
                                         "already; pick another number")
        self.addrs = {"src": src_addr, "dut": dut_addr}
        state = lab.state
        state.extra.setdefault("veths", []).append({"tag": tag, **self.names})
        state.save()                # the names first: a crash after the add leaves a record
        self._hold()
        lab.own(self)
        try:
            self._build(prefixlen, ipv6)
        except BaseException:
            self.close()
            raise

    def ifname(self, side):
        return self.names[side]

    def ns(self, side):
        return self.lab.ns(side)

    def ifindex(self, side):
        from .nl import IPRoute
        with IPRoute(netns=self.ns(side)) as ipr:
            idx = ipr.link_lookup(ifname=self.names[side])
        if not idx:
            raise LabError(errno.ENODEV, f"lab {self.lab.name}: interface {self.names[side]} "
                                         "is gone")
        return idx[0]

    def _build(self, prefixlen, ipv6):
        from pyroute2.netlink.exceptions import NetlinkError
        from .nl import IPRoute
        src, dut = self.names["src"], self.names["dut"]
        try:
            with IPRoute(netns=self.ns("src")) as ipr:
                ipr.link("add", ifname=src, kind="veth",
                         peer={"ifname": dut, "net_ns_fd": self.ns("dut")})
        except NetlinkError as e:
            raise LabError(e.code, f"lab {self.lab.name}: create veth {src}<->{dut}: {e}") from e
        for side in ("src", "dut"):
            ns, ifn = self.ns(side), self.names[side]
            knobs = ((("disable_ipv6", 1),) if not ipv6 else
                     (("accept_dad", 0), ("dad_transmits", 0), ("accept_ra", 0), ("autoconf", 0),
                      ("router_solicitations", 0)))
            for key, val in knobs:
                netns.write_sysctl(ns, f"net.ipv6.conf.{ifn}.{key}", val)
            with IPRoute(netns=ns) as ipr:
                idx = ipr.link_lookup(ifname=ifn)[0]
                ipr.link("set", index=idx, mtu=self.lab.mtu)
                if self.addrs[side]:
                    ipr.addr("add", index=idx, address=self.addrs[side], prefixlen=prefixlen)
                ipr.link("set", index=idx, state="up")
        self._wait_carrier()

    def _wait_carrier(self):
        from .nl import IPRoute
        deadline = time.monotonic() + CARRIER_TIMEOUT_S
        for side in ("src", "dut"):
            with IPRoute(netns=self.ns(side)) as ipr:
                while ipr.get_links(ifname=self.names[side])[0].get_attr("IFLA_CARRIER") != 1:
                    if time.monotonic() > deadline:
                        raise LabError(errno.ETIMEDOUT, f"lab {self.lab.name}: "
                                       f"{self.names[side]} did not come up within "
                                       f"{CARRIER_TIMEOUT_S:.0f} s")
                    time.sleep(0.01)

    def set_up(self, up, side="dut"):
        """Bring one end up or down (a path that fails, a path that comes back)."""
        from .nl import IPRoute
        with IPRoute(netns=self.ns(side)) as ipr:
            ipr.link("set", index=self.ifindex(side), state="up" if up else "down")

    def _release(self):
        from pyroute2.netlink.exceptions import NetlinkError
        from .nl import IPRoute
        ns, ifn = self.ns("src"), self.names["src"]
        if netns.exists(ns):
            try:
                with IPRoute(netns=ns) as ipr:
                    idx = ipr.link_lookup(ifname=ifn)
                    if idx:
                        ipr.link("del", index=idx[0])     # the pair goes with either end
            except NetlinkError as e:
                if e.code != errno.ENODEV:
                    raise LabError(e.code, f"lab {self.lab.name}: delete {ifn}: {e}") from e
            except FileNotFoundError:
                pass            # the namespace went meanwhile, and the pair with it
        if not self.lab.closed:         # (a closing lab's removal reads the record)
            st = self.lab.state
            st.extra["veths"] = [v for v in st.extra.get("veths", []) if v.get("tag") != self.tag]
            if not st.extra["veths"]:
                del st.extra["veths"]
            st.save()

    def __repr__(self):
        state = " (removed)" if self.closed else ""
        return f"<ExtraVeth {self.names['src']}<->{self.names['dut']}{state}>"
