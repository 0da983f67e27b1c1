"""A lab's own cgroup v2: where its server runs, so that programs attached to the cgroup
(cgroup_skb ingress, sock_ops) see that server's sockets and nothing else.

    cg = lab.cgroup()          # made on first use, removed with the lab (and by stale cleaning)
    cg.path, cg.fd, cg.id, cg.procs()

Where cgroup v2 is: found in /proc/self/mountinfo (the cgroup2 file system), never assumed
(it is /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one like the CI
machine). No cgroup2 mount: EnvironmentProblem, with the mount command.

Proof of ownership, as for the lab's namespaces (state.py): the cgroup is named
`pktlab-<lab name>` under the cgroup2 root, its path goes into the lab's state file before the
directory is made, and its cgroup id (the directory's inode on cgroup2, a 64-bit id the kernel
does not reuse while it runs) right after. Removal acts only on a cgroup whose id is the
recorded one, in a state file of this boot; anything else named alike is left alone (a crash
between the mkdir and the record leaves an empty cgroup nobody removes: said by `lab status`).

Removal ends what is still inside (cgroup.kill, as every process in it is one of the lab's
servers), waits for the cgroup to empty, and removes the directory; the kernel detaches every
BPF program attached to it then.
"""

import errno
import os
import signal
import time

from ..errors import EnvironmentProblem, LabError
from ..owned import Owned

MOUNTINFO = "/proc/self/mountinfo"
PREFIX = "pktlab-"
#: how long removal waits for the cgroup's last process to be gone
EMPTY_TIMEOUT_S = 3.0


def _unescape(field):
    """mountinfo escapes space, tab, newline and backslash as \\ooo octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _mounts(mountinfo=None):
    """[(mount point, fstype, super options)] from mountinfo (fields: see proc(5))."""
    try:
        with open(mountinfo or MOUNTINFO) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 3:
            continue
        out.append((_unescape(lf[4]), rf[0], rf[2]))
    return out


def cgroup2_mount(mountinfo=None):
    """The cgroup2 mount point from /proc/self/mountinfo, or None."""
    for point, fstype, _opts in _mounts(mountinfo):
        if fstype == "cgroup2":
            return point
    return None


def mount_fix():
    """The command that mounts cgroup v2 here: beside the v1 hierarchies when /sys/fs/cgroup
    holds them (a hybrid host), else at /sys/fs/cgroup."""
    v1 = any(fstype == "cgroup" for _p, fstype, _o in _mounts())
    where = "/sys/fs/cgroup/unified" if v1 else "/sys/fs/cgroup"
    return f"mkdir -p {where} && mount -t cgroup2 none {where}"


def require_cgroup2(mountinfo=None):
    """The cgroup2 mount point, or EnvironmentProblem saying how to mount it."""
    root = cgroup2_mount(mountinfo)
    if root is None:
        raise EnvironmentProblem(
            f"no cgroup v2 here: no cgroup2 file system in {mountinfo or MOUNTINFO}; the "
            f"socket-end hooks attach to a cgroup v2 of the lab's own; mount it: `{mount_fix()}`")
    return root


def v1_net_controllers(mountinfo=None):
    """[(mount point, controller)] of cgroup v1 net_cls / net_prio hierarchies: once either is
    used, the kernel stops matching sockets to cgroup v2 (cgroup_sk_alloc_disable, said once
    in dmesg: "disabling cgroup2 socket matching"), and cgroup_skb / sock_ops programs on a
    cgroup v2 see nothing."""
    out = []
    for point, fstype, opts in _mounts(mountinfo):
        if fstype == "cgroup":
            out += [(point, c) for c in ("net_cls", "net_prio") if c in opts.split(",")]
    return out


def path_for(name, root):
    return os.path.join(root, PREFIX + name)


def cgroup_id(path):
    """The cgroup's id: its directory's inode on cgroup2 (what bpf_get_current_cgroup_id says)."""
    return os.stat(path).st_ino


def procs(path):
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def _populated(path):
    try:
        with open(os.path.join(path, "cgroup.events")) as f:
            for line in f:
                k, _, v = line.partition(" ")
                if k == "populated":
                    return v.strip() != "0"
    except FileNotFoundError:
        return False
    return bool(procs(path))


def _kill_all(path):
    try:
        with open(os.path.join(path, "cgroup.kill"), "w") as f:
            f.write("1")
        return
    except FileNotFoundError:       # before 5.14: one by one
        pass
    for pid in procs(path):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def remove_cgroup(record):
    """Remove the cgroup `record` ({"path", "id"}) proves; returns None when it is gone (or
    was never made), else why it was left alone. Safe to call twice."""
    path, want = record.get("path"), record.get("id")
    if not path or not os.path.isdir(path):
        return None
    if want is None:
        return (f"cgroup {path}: not provably pktlab's (its owner died before recording its "
                "id); remove it by hand with rmdir once empty")
    if cgroup_id(path) != int(want):
        return f"cgroup {path}: not pktlab's (its id is not the one pktlab recorded)"
    deadline = time.monotonic() + EMPTY_TIMEOUT_S
    if _populated(path):
        _kill_all(path)
    while True:
        try:
            os.rmdir(path)          # also detaches every BPF program attached to it
            return None
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise LabError(e.errno, f"remove cgroup {path}: {e.strerror}; processes "
                                        f"{procs(path)} are still in it") from None
        time.sleep(0.01)            # an exiting task leaves the cgroup a moment later


class LabCgroup(Owned):
    """The lab's cgroup v2 (see the module docstring). Made by Lab.cgroup()."""

    def __init__(self, lab, mountinfo=None):
        root = require_cgroup2(mountinfo)
        self.lab = lab
        self.root = root
        self.path = path_for(lab.name, root)
        self.fd = None
        self.id = None
        state = lab.state
        state.extra["cgroup"] = {"path": self.path, "id": None}
        state.save()                # the path first: a crash after the mkdir leaves a record
        try:
            os.mkdir(self.path, 0o755)
        except FileExistsError:
            state.extra.pop("cgroup", None)
            state.save()
            raise LabError(errno.EEXIST, f"cgroup {self.path} exists already and is not this "
                                         "lab's; see `pktlab lab status`") from None
        except OSError as e:
            state.extra.pop("cgroup", None)
            state.save()
            raise LabError(e.errno, f"make cgroup {self.path}: {e.strerror}; pktlab needs "
                                    "root and a writable cgroup v2") from None
        self._hold()
        self.id = cgroup_id(self.path)
        state.extra["cgroup"]["id"] = self.id
        state.save()
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def procs(self):
        """Pids of the processes in the cgroup."""
        return procs(self.path)

    @property
    def procs_file(self):
        """Write "0" here from a process to move it in (before it makes its sockets)."""
        return os.path.join(self.path, "cgroup.procs")

    def _release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        record = self.lab.state.extra.get("cgroup") or {}
        why = remove_cgroup(record)
        if why:
            raise LabError(errno.EPERM, why)
        if not self.lab.closed:         # (a closing lab's removal reads the record)
            self.lab.state.extra.pop("cgroup", None)
            self.lab.state.save()

    def __repr__(self):
        return f"<LabCgroup {self.path}{' (removed)' if self.closed else ''}>"
