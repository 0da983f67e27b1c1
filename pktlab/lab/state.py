"""A lab's proof of ownership: the state file, the namespaces' identities, and which labs
are stale.

Ownership is proven, never guessed from a name (`ip netns add plbeef00-src` is not a lab):
- a state file under /run/pktlab/labs, claimed before anything is made (O_EXCL, so a name is
  never taken twice), records the owner process (pid and start time, and the boot, so a
  recycled pid is not mistaken for the owner) and each namespace's netns cookie, the identity
  the kernel never reuses while it runs (pktlab/lab/netns.py);
- a namespace gets its name only after its cookie is in the state file, so there is never a
  named pktlab namespace that its state file does not prove;
- clean, down, status and the attachment guard act on a namespace only when its cookie is the
  one recorded; anything else named like a lab is "not pktlab's" and is left alone;
- stale = a state file that proves its namespaces, whose owner process is gone. A lab being
  built has a live owner, so it is never stale; `pktlab lab up` labs (owner pid 0) stay until
  `pktlab lab down`.
"""

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields

from . import netns
from .cgroup import cgroup2_mount, path_for

STATE_DIR = "/run/pktlab/labs"
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,5}[0-9a-f]{6}$")
NS_RE = re.compile(r"^(.+)-(src|dut)$")
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,5}$")
DEFAULT_PREFIX = "pl"
SIDES = ("src", "dut")

def start_time(pid):
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

    def interfaces(self, side):
        """Every interface of the lab on `side`: its veth end, then the ends of the extra pairs
        it recorded (veths.py), the only ones the attachment guard accepts."""
        from .veths import recorded
        return [self.ifname(side)] + [v[side] for v in recorded(self)]

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
        return start_time(self.owner_pid) == self.owner_start

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
        if st.name != name or (st.ns_src, st.ns_dut, st.if_src, st.if_dut) != names_for(name):
            raise ValueError(f"{cls.path_for(name)} does not describe lab {name}")
        return st


def names_for(name):
    return f"{name}-src", f"{name}-dut", f"{name}s", f"{name}d"


UNCHECKED = "not checked: reading a namespace's identity needs root (CAP_SYS_ADMIN)"


def _can_prove():
    # the cookie is asked of a socket made inside the namespace: setns(2) needs CAP_SYS_ADMIN
    return os.geteuid() == 0


def open_proven(state):
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


def close_all(fds):
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


def leftovers(name):
    """What of lab `name` still exists (namespaces, state file): [] after a clean teardown."""
    ns_src, ns_dut, _, _ = names_for(name)
    left = [f"netns {n}" for n in (ns_src, ns_dut) if netns.exists(n)]
    root = cgroup2_mount()
    if root and os.path.isdir(path_for(name, root)):
        left.append(f"cgroup {path_for(name, root)}")
    if os.path.exists(LabState.path_for(name)):
        left.append(f"state {LabState.path_for(name)}")
    return left
