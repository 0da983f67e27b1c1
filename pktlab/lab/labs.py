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

Ownership is proven, never guessed from a name (`ip netns add plbeef00-src` is not a lab):
- a state file under /run/pktlab/labs, claimed before anything is made (O_EXCL, so a name is
  never taken twice), records the owner process (pid and start time, and the boot, so a
  recycled pid is not mistaken for the owner) and each namespace's netns cookie, the identity
  the kernel never reuses while it runs (pktlab/netns.py);
- a namespace gets its name only after its cookie is in the state file, so there is never a
  named pktlab namespace that its state file does not prove;
- clean, down, status and the attachment guard act on a namespace only when its cookie is the
  one recorded; anything else named like a lab is "not pktlab's" and is left alone;
- stale = a state file that proves its namespaces, whose owner process is gone. A lab being
  built has a live owner, so it is never stale; `pktlab lab up` labs (owner pid 0) stay until
  `pktlab lab down`;
- removing a lab first ends the processes inside its own namespaces (found by
  /proc/PID/ns/net), which is what a SIGKILLed owner's children would otherwise keep running in;
  pktlab's own children die with their owner anyway (pktlab/spawn.py).
"""

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import select
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, fields

from . import netns
from . import nl  # noqa: F401  (imported up front: cleanup must never be a first import)
from ..errors import LabError

STATE_DIR = "/run/pktlab/labs"
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,5}[0-9a-f]{6}$")
NS_RE = re.compile(r"^(.+)-(src|dut)$")
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,5}$")
DEFAULT_PREFIX = "pl"
SIDES = ("src", "dut")

# Inside every lab (each lab is its own pair of namespaces, so labs never collide).
SRC_IP4, DUT_IP4, PREFIX4 = "10.200.0.1", "10.200.0.2", 24
SRC_IP6, DUT_IP6, PREFIX6 = "fd00:706b:746c::1", "fd00:706b:746c::2", 64

#: interfaces pktlab refuses to attach to unless told explicitly (allow_host=True)
HOST_INTERFACES_REFUSED = ("lo",)

#: how long the processes of a lab being removed get to end on SIGTERM before SIGKILL
PROCESS_GRACE_S = 1.0


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


_BOOT_ID = None


def boot_id():
    """This boot's id: start times and netns cookies both count from boot, so a record from
    an earlier boot proves nothing (/run may be on disk and survive a reboot)."""
    global _BOOT_ID
    if _BOOT_ID is None:
        with open("/proc/sys/kernel/random/boot_id") as f:
            _BOOT_ID = f.read().strip()
    return _BOOT_ID


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
    boot_id: str = ""       # empty: a state file from a pktlab that recorded no identity
    cookies: dict = field(default_factory=dict)   # side -> netns cookie, before the name

    def ns(self, side):
        return {"src": self.ns_src, "dut": self.ns_dut}[side]

    def ifname(self, side):
        return {"src": self.if_src, "dut": self.if_dut}[side]

    @property
    def provable(self):
        """Whether this record can prove anything: written this boot, by a pktlab that records
        namespace cookies."""
        return bool(self.boot_id) and self.boot_id == boot_id()

    def owner_alive(self):
        if self.owner_pid == 0:
            return True
        if self.boot_id and self.boot_id != boot_id():
            return False
        return _start_time(self.owner_pid) == self.owner_start

    def cookie(self, side):
        c = self.cookies.get(side)
        return int(c) if c is not None else None

    @staticmethod
    def path_for(name):
        return os.path.join(STATE_DIR, name + ".json")

    def to_dict(self):
        """The file's contents. The identity travels inside `extra`, a key the pktlab before it
        already reads: that version passes every key to its constructor, and a state file it
        cannot load is, to it, a lab-named namespace without one, which its clean deletes by
        name. Readable, the file shows it a live owner, and it leaves the lab alone."""
        d = asdict(self)
        ident = {"boot_id": d.pop("boot_id"), "netns_cookies": d.pop("cookies")}
        d["extra"] = {**d["extra"], "identity": ident}
        return d

    def _write_tmp(self):
        os.makedirs(STATE_DIR, exist_ok=True)
        tmp = f"{self.path_for(self.name)}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f)
        return tmp

    def claim(self):
        """Write the state file only if no lab has this name yet; False if one has."""
        tmp = self._write_tmp()
        try:
            os.link(tmp, self.path_for(self.name))     # atomic, and fails if the name exists
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def save(self):
        tmp = self._write_tmp()
        os.replace(tmp, self.path_for(self.name))

    @classmethod
    def from_dict(cls, d):
        """A state from a file's contents; ValueError for anything that is not one."""
        if not isinstance(d, dict) or not isinstance(d.get("extra", {}), dict):
            raise ValueError("not a lab state")
        known = {f.name for f in fields(cls)}
        st = cls(**{k: v for k, v in d.items() if k in known})
        extra = dict(st.extra or {})
        ident = extra.pop("identity", None) or {}
        cookies = ident.get("netns_cookies") or {} if isinstance(ident, dict) else None
        if not isinstance(cookies, dict) or not set(cookies) <= set(SIDES):
            raise ValueError("a lab state with a malformed identity")
        st.extra = extra
        st.boot_id = str(ident.get("boot_id") or "")
        st.cookies = {k: int(v) for k, v in cookies.items()}
        return st

    @classmethod
    def load(cls, name):
        """The state file of lab `name`. It speaks only for its own name's namespaces and
        interfaces: a file naming others is not a lab state (ValueError)."""
        with open(cls.path_for(name)) as f:
            st = cls.from_dict(json.load(f))
        if st.name != name or (st.ns_src, st.ns_dut, st.if_src, st.if_dut) != _names_for(name):
            raise ValueError(f"{cls.path_for(name)} does not describe lab {name}")
        return st


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
        pid = 0 if self.persistent else os.getpid()
        for _ in range(1 if self.name else 16):
            name = self.name or (self.prefix + secrets.token_hex(3))
            ns_src, ns_dut, if_src, if_dut = _names_for(name)
            state = LabState(name, ns_src, ns_dut, if_src, if_dut, pid,
                             _start_time(pid) if pid else 0, time.time(), self.mtu,
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
        self._closed = False
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
UNCHECKED = "not checked: reading a namespace's identity needs root (CAP_SYS_ADMIN)"


def _can_prove():
    # the cookie is asked of a socket made inside the namespace: setns(2) needs CAP_SYS_ADMIN
    return os.geteuid() == 0


def _open_proven(state):
    """{side: fd} of the lab's namespaces that are provably the ones pktlab made for it (their
    netns cookie is the recorded one). The fds keep them alive; the caller closes them."""
    fds = {}
    if not state.provable or not _can_prove():
        return fds
    for side in SIDES:
        want = state.cookie(side)
        if want is None:
            continue
        fd = netns.open_fd(state.ns(side))
        if fd is None:
            continue
        if netns.cookie_of_fd(fd, state.ns(side)) == want:
            fds[side] = fd
        else:
            os.close(fd)
    return fds


def _close_all(fds):
    for fd in fds.values():
        os.close(fd)


def namespace_verdict(state, side):
    """'pktlab' when the namespace is the one pktlab made for lab `state`, 'missing' when no
    such name exists, else the reason it is not pktlab's (left alone by clean and down)."""
    ns = state.ns(side)
    try:
        fd = netns.open_fd(ns)
    except PermissionError:
        return UNCHECKED
    if fd is None:
        return "missing" if not netns.exists(ns) else "not pktlab's: not a namespace"
    try:
        if not _can_prove():
            return UNCHECKED
        if not state.boot_id:
            return ("not provably pktlab's: its state file was written by an older pktlab that "
                    "recorded no namespace identity")
        if not state.provable:
            return "not pktlab's: its state file is from an earlier boot"
        want = state.cookie(side)
        if want is None:
            return "not pktlab's: its lab recorded no identity for it"
        if netns.cookie_of_fd(fd, ns) != want:
            return "not pktlab's: its netns cookie is not the one pktlab recorded"
        return "pktlab"
    finally:
        os.close(fd)


def lab_of_namespace(ns):
    """(state, side) when namespace `ns` is provably a pktlab lab's, else None."""
    m = NS_RE.match(ns or "")
    if not m:
        return None
    try:
        st = LabState.load(m.group(1))
    except (OSError, ValueError, TypeError):
        return None
    side = m.group(2)
    if st.ns(side) != ns or namespace_verdict(st, side) != "pktlab":
        return None
    return st, side


# processes inside a lab -----------------------------------------------------------------------
def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            # one line: arguments may hold newlines (a `python -c` program)
            return " ".join(f.read().replace(b"\0", b" ").decode(errors="replace").split())
    except OSError:
        return ""


def _processes_in(fds_by_ns):
    """[{pid, ns, cmd}] of the processes inside the namespaces {ns: fd}, one /proc scan."""
    by_fd = {fd: ns for ns, fd in fds_by_ns.items()}
    found = netns.pids_in(list(by_fd))
    return [{"pid": pid, "ns": by_fd[fd], "cmd": _cmdline(pid)}
            for pid, fd in sorted(found.items())]


def lab_processes(state):
    """[{pid, ns, cmd}]: the processes running inside lab `state`'s own namespaces."""
    fds = _open_proven(state)
    try:
        return _processes_in({state.ns(s): fd for s, fd in fds.items()})
    finally:
        _close_all(fds)


def _wait_exited(pidfds, timeout):
    deadline = time.monotonic() + timeout
    left = set(pidfds)
    while left:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        ready, _, _ = select.select(list(left), [], [], remaining)
        left -= set(ready)


def _end_processes(fds, spare, grace=PROCESS_GRACE_S):
    """End every process inside the namespaces behind `fds` but those in `spare`: SIGTERM,
    then SIGKILL after `grace` s. Each is signalled through a pidfd opened while it was seen
    inside, so a recycled pid is never hit. Returns [{pid, ns, cmd}] of those signalled."""
    ended, seen = [], set()
    by_fd = {fd: ns for ns, fd in fds.items()}
    for rnd in range(6):
        sig = signal.SIGTERM if rnd == 0 else signal.SIGKILL
        pidfds = []
        for pid, fd in netns.pids_in(list(by_fd)).items():
            if pid in spare:
                continue
            try:
                pfd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            if not netns.in_namespace(pid, fd):     # gone, and the pid reused, since the scan
                os.close(pfd)
                continue
            if pid not in seen:
                seen.add(pid)
                ended.append({"pid": pid, "ns": by_fd[fd], "cmd": _cmdline(pid)})
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pfd, sig)
            pidfds.append(pfd)
        if not pidfds:
            break
        try:
            _wait_exited(pidfds, grace if rnd == 0 else 2.0)
        finally:
            for pfd in pidfds:
                os.close(pfd)
    return ended


# removal ----------------------------------------------------------------------------------------
@dataclass
class Removal:
    """What remove_lab() did: processes ended, and what it left alone (with the reason)."""
    name: str
    processes: list = field(default_factory=list)
    left_alone: list = field(default_factory=list)
    busy: bool = False      # another process was removing it; nothing was done here


@contextlib.contextmanager
def _removal_lock(name, wait):
    """Lock lab `name`'s state file against a second remover. Yields the locked fd, None when
    there is no state file, or False when another remover holds it and wait is False."""
    try:
        fd = os.open(LabState.path_for(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield fd
    finally:
        os.close(fd)


def _unlink_state(name, locked_fd):
    """Remove the state file, only if it is still the one we locked (not a new lab's claim of
    the same name, nor a newer save of the same lab)."""
    path = LabState.path_for(name)
    if locked_fd:
        held = os.fstat(locked_fd)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def remove_lab(state, wait=True):
    """Remove lab `state` as far as pktlab can prove it made it: the processes inside its own
    namespaces, its veth, its namespaces, then its state file. A namespace of the lab's name
    that is not the recorded one is left alone (and said so in the result). Missing parts are
    fine (close() runs twice, two cleaners may meet). Returns a Removal."""
    res = Removal(state.name)
    with _removal_lock(state.name, wait) as lock:
        if lock is False:
            res.busy = True
            return res
        fds = _open_proven(state)
        try:
            spare = {os.getpid()}
            if state.owner_pid > 0 and state.owner_alive():
                spare.add(state.owner_pid)       # `down` of a live lab ends its children only
            res.processes = _end_processes({state.ns(s): fd for s, fd in fds.items()}, spare)
            _delete_veth(state, fds)
            for side in SIDES:
                ns = state.ns(side)
                if side in fds:
                    netns.remove(ns, state.cookie(side))
                elif state.cookie(side) is not None and netns.remove_placeholder(ns):
                    pass    # a name file our create() made but never mounted on (see netns)
                elif netns.exists(ns):
                    res.left_alone.append(f"netns {ns}: {namespace_verdict(state, side)}")
        finally:
            _close_all(fds)
        if state.boot_id or not res.left_alone:
            # an older pktlab's record stays while its namespaces do: it is what explains them
            _unlink_state(state.name, lock)
    return res


def _delete_veth(state, fds):
    from .nl import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
    for side in SIDES:
        if side not in fds:
            continue
        ns, ifn = state.ns(side), state.ifname(side)
        try:
            with IPRoute(netns=ns) as ipr:
                idx = ipr.link_lookup(ifname=ifn)
                if idx:
                    ipr.link("del", index=idx[0])
        except NetlinkError as e:
            if e.code != errno.ENODEV:
                raise LabError(e.code, f"lab {state.name}: delete {ifn}: {e}") from e
        except FileNotFoundError:
            pass        # another remover took the namespace's name meanwhile


# listing ---------------------------------------------------------------------------------------
def list_labs():
    """Every lab with a readable state file (those of an older pktlab too: see provable)."""
    labs = []
    try:
        files = sorted(os.listdir(STATE_DIR))
    except FileNotFoundError:
        files = []
    for f in files:
        if not f.endswith(".json"):
            continue
        try:
            labs.append(LabState.load(f[:-5]))
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return labs


def foreign_namespaces(labs=None):
    """[(ns, why)]: namespaces named like a lab's that pktlab cannot prove it made. They are
    never removed or attached to (`ip netns add plbeef00-src` is not a lab)."""
    labs = {s.name: s for s in (list_labs() if labs is None else labs)}
    out = []
    for ns in netns.list_names():
        m = NS_RE.match(ns)
        if not m or not NAME_RE.match(m.group(1)):
            continue
        st = labs.get(m.group(1))
        if st is None or st.ns(m.group(2)) != ns:
            out.append((ns, "not pktlab's: no state file in " + STATE_DIR))
            continue
        why = namespace_verdict(st, m.group(2))
        if why not in ("pktlab", "missing", UNCHECKED):
            out.append((ns, why))
    return out


def is_stale(state):
    """A lab whose owner process is gone, by a record that can say so: a state file with an
    identity (one from an earlier boot is stale, and proves no namespace of this boot)."""
    return bool(state.boot_id) and not state.owner_alive()


def clean_labs(all_labs=False):
    """Remove stale labs (or every lab pktlab can prove, with all_labs): [Removal] of those
    it acted on. A state file of an older pktlab, which records no identity, is left alone;
    one from an earlier boot goes, with the empty name files a reboot leaves of a lab's
    namespaces, while anything named alike that is a namespace now is not pktlab's."""
    done = []
    for st in list_labs():
        if not st.boot_id or not (all_labs or is_stale(st)):
            continue
        res = remove_lab(st, wait=False)
        if not res.busy:
            done.append(res)
    return done


def clean_stale(all_labs=False):
    """Remove labs whose owner process is gone (or every lab, with all_labs). Returns names."""
    return [r.name for r in clean_labs(all_labs)]


def describe_labs():
    """What `pktlab lab status` shows: [{name, ns, interfaces, owner_pid, stale, pktlab,
    namespaces: {ns: verdict}, processes: [{pid, ns, cmd}]}], then one entry per namespace
    named like a lab that is not pktlab's (pktlab: false, with why)."""
    labs = list_labs()
    out, fds = [], {}
    try:
        for st in labs:
            proven = _open_proven(st)
            fds.update({st.ns(s): fd for s, fd in proven.items()})
            out.append({"name": st.name, "ns": [st.ns_src, st.ns_dut],
                        "interfaces": [st.if_src, st.if_dut], "owner_pid": st.owner_pid,
                        "stale": is_stale(st), "pktlab": True,
                        "namespaces": {st.ns(s): ("pktlab" if s in proven else
                                                  namespace_verdict(st, s)) for s in SIDES},
                        "processes": []})
        procs = _processes_in(fds)
    finally:
        for fd in fds.values():
            os.close(fd)
    for entry in out:
        entry["processes"] = [p for p in procs if p["ns"] in entry["ns"]]
    for ns, why in foreign_namespaces(labs):
        out.append({"name": NS_RE.match(ns).group(1), "ns": [ns], "interfaces": [],
                    "owner_pid": None, "stale": False, "pktlab": False, "why": why,
                    "namespaces": {ns: why}, "processes": []})
    return out


def leftovers(name):
    """What of lab `name` still exists (namespaces, state file): [] after a clean teardown."""
    ns_src, ns_dut, _, _ = _names_for(name)
    left = [f"netns {n}" for n in (ns_src, ns_dut) if netns.exists(n)]
    if os.path.exists(LabState.path_for(name)):
        left.append(f"state {LabState.path_for(name)}")
    return left


# the attachment guard ------------------------------------------------------------------------
def _why_not_a_lab_interface(ifname, ns):
    if ns is None:
        what = ("the loopback interface" if ifname in HOST_INTERFACES_REFUSED else
                "a host interface")
        return (f"it is {what}, outside every pktlab lab, and attaching there would see (and "
                "could drop) the host's own traffic")
    m = NS_RE.match(ns)
    st = None
    if m:
        with contextlib.suppress(OSError, ValueError, TypeError):
            st = LabState.load(m.group(1))
    if st is None or st.ns(m.group(2)) != ns:
        return (f"namespace {ns} is not one of pktlab's labs (no state file in {STATE_DIR}); "
                "it may be someone else's, and pktlab attaches only inside namespaces it made")
    side = m.group(2)
    verdict = namespace_verdict(st, side)
    if verdict != "pktlab":
        return (f"namespace {ns} is named like lab {st.name} but pktlab cannot prove it made it "
                f"({verdict})")
    if ifname != st.ifname(side):
        return f"{ifname} is not lab {st.name}'s interface in {ns} (that is {st.ifname(side)})"
    return None


def check_interface(ifname, allow_host=False, ns=None):
    """Refuse an interface outside pktlab's own labs unless the caller names it and allows it.

    ns: the namespace the interface is in (None: the host's). Passes only for a lab's own
    interface in that lab's namespace, the namespace proven pktlab's by its netns cookie: an
    interface named like a lab's, in a namespace someone else made, is refused too."""
    why = _why_not_a_lab_interface(ifname, ns)
    if why is None or allow_host:
        return
    where = ifname if ns is None else f"{ifname} in namespace {ns}"
    raise LabError(errno.EPERM, f"attach to {where}: refused; {why}. Use a lab interface "
                                "(`pktlab lab status`), or name the interface and pass "
                                "allow_host=True if you really mean it")
