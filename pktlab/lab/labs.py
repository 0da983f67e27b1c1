"""A lab: two private network namespaces (src, dut) joined by a veth pair.

    with pktlab.Lab() as lab:
        lab.if_dut, lab.ns_dut ...

Rules (../DESIGN.md, "Lab and resources"):
- names are a short prefix plus random hex: namespaces `<name>-src` / `<name>-dut`, interfaces
  `<name>s` / `<name>d` (at most 15 characters, the kernel's IFNAMSIZ - 1);
- addresses come from a private test range and exist only inside the namespaces;
- IPv6 autoconfiguration, DAD and router solicitations are off, so the wire is quiet;
- teardown ends the processes inside the lab, deletes the veth, then the namespaces, and
  close() may be called twice.

Who owns a lab and how that is proven: pktlab/lab/state.py; how a lab is removed and stale
labs cleaned: pktlab/lab/removal.py.
"""

import errno
import os
import secrets
import signal
import threading
import time

from . import netns
from . import nl  # noqa: F401  (imported up front: cleanup must never be a first import)
from ..errors import LabError
from ..owned import Owned
from .removal import clean_stale, remove_lab
from .state import DEFAULT_PREFIX, PREFIX_RE, LabState, boot_id, names_for, start_time

# Inside every lab (each lab is its own pair of namespaces, so labs never collide).
SRC_IP4, DUT_IP4, PREFIX4 = "10.200.0.1", "10.200.0.2", 24
SRC_IP6, DUT_IP6, PREFIX6 = "fd00:706b:746c::1", "fd00:706b:746c::2", 64

class Lab(Owned):
    """Two namespaces and a veth pair; a context manager. See the module docstring."""

    def __init__(self, prefix=DEFAULT_PREFIX, mtu=1500, persistent=False, name=None):
        if not PREFIX_RE.match(prefix):
            raise ValueError(f"lab prefix {prefix!r}: use 1-6 lowercase letters/digits, "
                             "starting with a letter (interface names are limited to 15 chars)")
        if not 68 <= int(mtu) <= 9000:
            raise ValueError(f"lab mtu {mtu}: use 68..9000")
        self.prefix = prefix
        self.mtu = int(mtu)
        self.persistent = persistent
        self.name = name
        self.state = None
        self._owned = []   # Attachments registered by hooks, closed before the lab goes
        self._cgroup = None
        self.adopted = False    # an existing lab used by this object (adopt): never removed

    # names -------------------------------------------------------------------------------------
    @property
    def ns_src(self):
        return self.state.ns_src

    @property
    def ns_dut(self):
        return self.state.ns_dut

    @property
    def if_src(self):
        return self.state.if_src

    @property
    def if_dut(self):
        return self.state.if_dut

    src_ip4, dut_ip4, src_ip6, dut_ip6 = SRC_IP4, DUT_IP4, SRC_IP6, DUT_IP6

    def ns(self, side):
        return self.state.ns(side)

    def ifname(self, side):
        return self.state.ifname(side)

    def ifindex(self, side):
        from .nl import IPRoute
        with IPRoute(netns=self.ns(side)) as ipr:
            idx = ipr.link_lookup(ifname=self.ifname(side))
        if not idx:
            raise LabError(errno.ENODEV, f"lab {self.name}: interface {self.ifname(side)} is gone")
        return idx[0]

    def mac(self, side):
        from .nl import IPRoute
        with IPRoute(netns=self.ns(side)) as ipr:
            link = ipr.get_links(ifname=self.ifname(side))[0]
        return link.get_attr("IFLA_ADDRESS")

    def netns_inode(self, side):
        return netns.inode(self.ns(side))

    @classmethod
    def adopt(cls, name):
        """An existing lab, one `pktlab lab up` made, proven by its state file, to attach to:
        close() removes what this object added (attachments, its cgroup), never the lab."""
        from .state import SIDES, namespace_verdict
        try:
            state = LabState.load(name)
        except (OSError, ValueError, TypeError) as e:
            raise LabError(errno.ENOENT, f"lab {name}: no such lab ({e.__class__.__name__}); "
                                         "see `pktlab lab status`, or make one with `pktlab "
                                         "lab up`") from None
        for side in SIDES:
            why = namespace_verdict(state, side)
            if why != "pktlab":
                raise LabError(errno.EPERM, f"lab {name}: namespace {state.ns(side)}: {why}")
        lab = cls(prefix=name[:1], mtu=state.mtu, name=name)
        lab.state, lab.adopted = state, True
        lab._hold()
        return lab

    # lifecycle (pktlab.owned.Owned: `with` brings the lab up and tears it down) -----------------
    def open(self):
        return self.up()

    def up(self):
        if self._held:
            return self
        try:
            with _signals_held():
                self._up()
        except BaseException:
            # a signal held while building is delivered as the mask is restored: the lab is
            # complete then, but no `with` owns it yet
            self.close()
            raise
        return self

    def _up(self):
        clean_stale()
        pid = 0 if self.persistent else os.getpid()
        for _ in range(1 if self.name else 16):
            name = self.name or (self.prefix + secrets.token_hex(3))
            ns_src, ns_dut, if_src, if_dut = names_for(name)
            state = LabState(name, ns_src, ns_dut, if_src, if_dut, pid,
                             start_time(pid) if pid else 0, time.time(), self.mtu,
                             boot_id=boot_id())
            # The state file comes first, claimed atomically: if we die half-way, `clean`
            # still finds what we made, and no other lab can take the name meanwhile.
            if not (netns.exists(ns_src) or netns.exists(ns_dut)) and state.claim():
                break
        else:
            raise LabError(errno.EEXIST, f"lab {name} already exists (a state file or a "
                                         "namespace of that name); pick another name or see "
                                         "`pktlab lab status`")
        self.state, self.name = state, name
        self._hold()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _record(self, side, cookie):
        # runs before the namespace has its name (netns.create): never a named, unrecorded one
        self.state.cookies[side] = cookie
        self.state.save()

    def _build(self):
        from .nl import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError
        s = self.state
        netns.create(s.ns_src, lambda c: self._record("src", c))
        netns.create(s.ns_dut, lambda c: self._record("dut", c))
        for ns in (s.ns_src, s.ns_dut):
            _quiet_namespace(ns)
        try:
            with IPRoute(netns=s.ns_src) as ipr:
                ipr.link("add", ifname=s.if_src, kind="veth",
                         peer={"ifname": s.if_dut, "net_ns_fd": s.ns_dut})
        except NetlinkError as e:
            raise LabError(e.code, f"lab {s.name}: create veth {s.if_src}<->{s.if_dut}: {e}") from e
        for ns, ifn, ip4, ip6 in ((s.ns_src, s.if_src, SRC_IP4, SRC_IP6),
                                   (s.ns_dut, s.if_dut, DUT_IP4, DUT_IP6)):
            # per-interface IPv6 knobs exist only once the interface does
            for key, val in (("accept_dad", 0), ("dad_transmits", 0), ("accept_ra", 0),
                             ("autoconf", 0), ("router_solicitations", 0)):
                netns.write_sysctl(ns, f"net.ipv6.conf.{ifn}.{key}", val)
            with IPRoute(netns=ns) as ipr:
                idx = ipr.link_lookup(ifname=ifn)[0]
                ipr.link("set", index=idx, mtu=self.mtu)
                ipr.addr("add", index=idx, address=ip4, prefixlen=PREFIX4)
                ipr.addr("add", index=idx, address=ip6, prefixlen=PREFIX6, flags=0x02)  # nodad
                ipr.link("set", index=idx, state="up")
                lo = ipr.link_lookup(ifname="lo")[0]
                ipr.link("set", index=lo, state="up")
        self._wait_carrier()

    def _wait_carrier(self, timeout=5.0):
        """Poll until both ends report carrier (veth: when both are up), not a fixed sleep.

        IFLA_CARRIER, not IFLA_OPERSTATE: the kernel publishes operstate through linkwatch,
        up to a second late, while a veth has carrier the moment both ends are up."""
        from .nl import IPRoute
        deadline = time.monotonic() + timeout
        for side in ("src", "dut"):
            with IPRoute(netns=self.ns(side)) as ipr:
                while True:
                    link = ipr.get_links(ifname=self.ifname(side))[0]
                    if link.get_attr("IFLA_CARRIER") == 1:
                        break
                    if time.monotonic() > deadline:
                        raise LabError(errno.ETIMEDOUT, f"lab {self.name}: {self.ifname(side)} "
                                                        f"did not come up within {timeout}s")
                    time.sleep(0.01)

    def cgroup(self, mountinfo=None):
        """The lab's own cgroup v2 (pktlab/lab/cgroup.py), made on first use and removed with
        the lab; EnvironmentProblem when this machine has no cgroup v2."""
        from .cgroup import LabCgroup
        if self.closed:
            raise LabError(errno.ESHUTDOWN, "lab cgroup: the lab is closed; open it first")
        if self._cgroup is None or self._cgroup.closed:
            with _signals_held():
                self._cgroup = LabCgroup(self, mountinfo)
        return self._cgroup

    def own(self, attachment):
        """Register an attachment to be closed before the lab is torn down."""
        self._owned.append(attachment)
        return attachment

    def close(self):
        """Tear down: attachments, then the veth, then the namespaces. Safe to call twice.

        Ctrl-C and SIGTERM wait until it is done (a half-removed lab is what they would leave)."""
        with _signals_held():
            super().close()

    def _release(self):
        errors = []
        while self._owned:
            try:
                self._owned.pop().close()
            except Exception as e:  # keep going: the rest must still be removed
                errors.append(e)
        if self._cgroup is not None:
            try:
                self._cgroup.close()        # (remove_lab would, from the state's record)
            except Exception as e:
                errors.append(e)
        if self.adopted:
            if self._cgroup is not None and self.state.extra.pop("cgroup", None) is not None:
                self.state.save()
        else:
            try:
                remove_lab(self.state)
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def __repr__(self):
        if self.closed:
            # getattr: a Lab whose arguments were refused has no prefix yet either
            label = self.name or (getattr(self, "prefix", "?") + "…")
            return f"<Lab {label} (closed)>"
        return (f"<Lab {self.name}: {self.ns_src}/{self.if_src} {SRC_IP4} <-> "
                f"{self.ns_dut}/{self.if_dut} {DUT_IP4}>")


_HELD = (signal.SIGINT, signal.SIGTERM)


class _signals_held:
    """Hold Ctrl-C and SIGTERM back while a lab is being built, deliver them right after.

    A KeyboardInterrupt raised in the middle of a step (between a namespace's name file and
    its mount, between a netlink request and its answer) would leave a part that close() does
    not know of. Held, the signal arrives once the lab is complete and owned, and close()
    removes all of it. Only the main thread receives signals, so only there is anything held."""

    def __enter__(self):
        self.active = threading.current_thread() is threading.main_thread()
        if self.active:
            self.old = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
        return self

    def __exit__(self, *exc):
        if self.active:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.old)
        return False


def _quiet_namespace(ns):
    for key, val in (("net.ipv6.conf.default.accept_dad", 0),
                     ("net.ipv6.conf.default.dad_transmits", 0),
                     ("net.ipv6.conf.default.accept_ra", 0),
                     ("net.ipv6.conf.default.autoconf", 0),
                     ("net.ipv6.conf.default.router_solicitations", 0),
                     ("net.ipv6.conf.all.accept_dad", 0),
                     ("net.ipv6.conf.all.accept_ra", 0)):
        netns.write_sysctl(ns, key, val)




# ownership --------------------------------------------------------------------------------------
