"""A lab: two private network namespaces (src, dut) joined by a veth pair.

    with pktlab.Lab() as lab:
        lab.if_dut, lab.ns_dut ...

Rules (../DESIGN.md, "Lab and resources"):
- names are a short prefix plus random hex: namespaces `<name>-src` / `<name>-dut`, interfaces
  `<name>s` / `<name>d` (at most 15 characters, the kernel's IFNAMSIZ - 1);
- addresses come from a private test range and exist only inside the namespaces;
- IPv6 autoconfiguration, DAD and router solicitations are off, so the wire is quiet;
- teardown deletes the veth before the namespaces, and close() may be called twice;
- a state file under /run/pktlab/labs records the owner process (pid and start time, so a
  recycled pid is not mistaken for the owner); the next Lab() and `pktlab lab clean` remove
  labs whose owner is gone (crash, SIGKILL).
"""

import errno
import json
import os
import re
import secrets
import signal
import threading
import time
from dataclasses import asdict, dataclass, field

from . import netns
from . import nl  # noqa: F401  (imported up front: cleanup must never be a first import)
from .errors import LabError

STATE_DIR = "/run/pktlab/labs"
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,5}[0-9a-f]{6}$")
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,5}$")
DEFAULT_PREFIX = "pl"

# Inside every lab (each lab is its own pair of namespaces, so labs never collide).
SRC_IP4, DUT_IP4, PREFIX4 = "10.200.0.1", "10.200.0.2", 24
SRC_IP6, DUT_IP6, PREFIX6 = "fd00:706b:746c::1", "fd00:706b:746c::2", 64

#: interfaces pktlab refuses to attach to unless told explicitly (allow_host=True)
HOST_INTERFACES_REFUSED = ("lo",)


def _start_time(pid):
    """Process start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'
    rest = stat[stat.rindex(")") + 2:].split()
    return int(rest[19])


@dataclass
class LabState:
    name: str
    ns_src: str
    ns_dut: str
    if_src: str
    if_dut: str
    owner_pid: int          # 0: made by `pktlab lab up`, lives until `pktlab lab down`
    owner_start: int
    created: float
    mtu: int = 1500
    extra: dict = field(default_factory=dict)

    def owner_alive(self):
        if self.owner_pid == 0:
            return True
        return _start_time(self.owner_pid) == self.owner_start

    @staticmethod
    def path_for(name):
        return os.path.join(STATE_DIR, name + ".json")

    def save(self):
        os.makedirs(STATE_DIR, exist_ok=True)
        tmp = self.path_for(self.name) + ".tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(self), f)
        os.replace(tmp, self.path_for(self.name))

    @classmethod
    def load(cls, name):
        with open(cls.path_for(name)) as f:
            d = json.load(f)
        return cls(**d)


def _names_for(name):
    return f"{name}-src", f"{name}-dut", f"{name}s", f"{name}d"


class Lab:
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
        self._closed = True
        self._owned = []   # Attachments registered by hooks, closed before the lab goes

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
        return {"src": self.ns_src, "dut": self.ns_dut}[side]

    def ifname(self, side):
        return {"src": self.if_src, "dut": self.if_dut}[side]

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

    # lifecycle ---------------------------------------------------------------------------------
    def __enter__(self):
        self.up()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def up(self):
        if not self._closed:
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
        name = self.name or (self.prefix + secrets.token_hex(3))
        ns_src, ns_dut, if_src, if_dut = _names_for(name)
        if netns.exists(ns_src) or netns.exists(ns_dut):
            raise LabError(errno.EEXIST, f"lab {name} already exists; pick another name or run "
                                         f"`pktlab lab down {name}`")
        pid = 0 if self.persistent else os.getpid()
        self.state = LabState(name, ns_src, ns_dut, if_src, if_dut, pid,
                              _start_time(pid) if pid else 0, time.time(), self.mtu)
        self.name = name
        # The state file comes first: if we die half-way, `clean` still finds what we made.
        self.state.save()
        self._closed = False
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self):
        from .nl import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError
        s = self.state
        netns.create(s.ns_src)
        netns.create(s.ns_dut)
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

    def own(self, attachment):
        """Register an attachment to be closed before the lab is torn down."""
        self._owned.append(attachment)
        return attachment

    def close(self):
        """Tear down: attachments, then the veth, then the namespaces. Safe to call twice."""
        if self._closed:
            return
        with _signals_held():
            self._close()

    def _close(self):
        self._closed = True
        errors = []
        while self._owned:
            try:
                self._owned.pop().close()
            except Exception as e:  # keep going: the rest must still be removed
                errors.append(e)
        try:
            remove_lab(self.state)
        except Exception as e:
            errors.append(e)
        if errors:
            raise errors[0]

    @property
    def closed(self):
        return self._closed

    def __repr__(self):
        if self._closed:
            return f"<Lab {self.name or self.prefix + '…'} (closed)>"
        return (f"<Lab {self.name}: {self.ns_src}/{self.if_src} {SRC_IP4} <-> "
                f"{self.ns_dut}/{self.if_dut} {DUT_IP4}>")


_HELD = (signal.SIGINT, signal.SIGTERM)


class _signals_held:
    """Hold Ctrl-C and SIGTERM back while a lab is being built, deliver them right after.

    pyroute2 creates a namespace in a forked helper; interrupted at that moment, the parent
    would tear down before the helper has made the namespace, which then outlives its lab.
    Held, the signal arrives once the lab is complete and owned, and close() removes all of it.
    Only the main thread receives signals, so only there is anything held."""

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


def remove_lab(state):
    """Remove a lab's veth (first), namespaces, and state file. Missing parts are fine."""
    from .nl import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
    for ns, ifn in ((state.ns_src, state.if_src), (state.ns_dut, state.if_dut)):
        if not netns.exists(ns):
            continue
        try:
            with IPRoute(netns=ns) as ipr:
                idx = ipr.link_lookup(ifname=ifn)
                if idx:
                    ipr.link("del", index=idx[0])
        except NetlinkError as e:
            if e.code != errno.ENODEV:
                raise LabError(e.code, f"lab {state.name}: delete {ifn}: {e}") from e
    netns.remove(state.ns_src)
    netns.remove(state.ns_dut)
    try:
        os.unlink(LabState.path_for(state.name))
    except FileNotFoundError:
        pass


def list_labs():
    """Every lab with a state file, plus namespaces that look like ours but have none."""
    labs = []
    try:
        files = sorted(os.listdir(STATE_DIR))
    except FileNotFoundError:
        files = []
    known = set()
    for f in files:
        if not f.endswith(".json"):
            continue
        try:
            st = LabState.load(f[:-5])
        except (OSError, ValueError, TypeError):
            continue
        labs.append(st)
        known.add(st.name)
    for ns in netns.list_names():
        m = re.match(r"^(.+)-(src|dut)$", ns)
        if m and NAME_RE.match(m.group(1)) and m.group(1) not in known:
            name = m.group(1)
            known.add(name)
            labs.append(LabState(name, *_names_for(name), owner_pid=-1, owner_start=0,
                                 created=0.0))
    return labs


def is_stale(state):
    return state.owner_pid == -1 or not state.owner_alive()


def clean_stale(all_labs=False):
    """Remove labs whose owner process is gone (or every lab, with all_labs). Returns names."""
    removed = []
    for st in list_labs():
        if all_labs or is_stale(st):
            remove_lab(st)
            removed.append(st.name)
    return removed


def lab_of_interface(ifname):
    """The (lab, side) an interface belongs to, or None for an interface outside pktlab."""
    for st in list_labs():
        if ifname == st.if_src:
            return st, "src"
        if ifname == st.if_dut:
            return st, "dut"
    return None


def leftovers(name):
    """What of lab `name` still exists (namespaces, state file): [] after a clean teardown."""
    ns_src, ns_dut, _, _ = _names_for(name)
    left = [f"netns {n}" for n in (ns_src, ns_dut) if netns.exists(n)]
    if os.path.exists(LabState.path_for(name)):
        left.append(f"state {LabState.path_for(name)}")
    return left


def check_interface(ifname, allow_host=False):
    """Refuse host interfaces (lo, the uplink) unless the caller names one and allows it."""
    if lab_of_interface(ifname) is not None:
        return
    if not allow_host:
        what = "the loopback interface" if ifname in HOST_INTERFACES_REFUSED else "a host interface"
        raise LabError(errno.EPERM, f"attach to {ifname}: refused; it is {what}, outside every "
                                    "pktlab lab, and attaching there would see (and could drop) "
                                    "the host's own traffic. Use a lab interface "
                                    "(`pktlab lab status`), or name the interface and pass "
                                    "allow_host=True if you really mean it")
