"""Removing labs: the processes inside a lab's own namespaces are ended first (what a
SIGKILLed owner's children would otherwise keep running), then the veth, then each namespace
whose cookie still proves it, then the state file; cleaning stale labs; the status listing.

pktlab's own children die with their owner anyway (pktlab/lab/spawn.py).
"""

import contextlib
import errno
import fcntl
import os
import select
import signal
import time
from dataclasses import dataclass, field

from . import netns
from ..errors import LabError
from .cgroup import remove_cgroup
from .state import (NS_RE, SIDES, LabState, close_all, foreign_namespaces, is_stale,
                    list_labs, namespace_verdict, open_proven)

#: how long the processes of a lab being removed get to end on SIGTERM before SIGKILL
PROCESS_GRACE_S = 1.0


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
    fds = open_proven(state)
    try:
        return _processes_in({state.ns(s): fd for s, fd in fds.items()})
    finally:
        close_all(fds)


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
        fds = open_proven(state)
        try:
            spare = {os.getpid()}
            if state.owner_pid > 0 and state.owner_alive():
                spare.add(state.owner_pid)       # `down` of a live lab ends its children only
            res.processes = _end_processes({state.ns(s): fd for s, fd in fds.items()}, spare)
            _remove_cgroup(state, res)
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
            close_all(fds)
        if state.boot_id or not res.left_alone:
            # an older pktlab's record stays while its namespaces do: it is what explains them
            _unlink_state(state.name, lock)
    return res


def _remove_cgroup(state, res):
    """The lab's cgroup (cgroup.py), when its state proves it: this boot's, the recorded id."""
    record = state.extra.get("cgroup")
    if not record:
        return
    if not state.provable:
        if record.get("path") and os.path.isdir(record["path"]):
            res.left_alone.append(f"cgroup {record['path']}: its state file is from an "
                                  "earlier boot, which proves nothing of this one's cgroups")
        return
    why = remove_cgroup(record)
    if why:
        res.left_alone.append(why)


def _delete_veth(state, fds):
    """The lab's veth and the extra pairs it recorded (veths.py), each end whose namespace is
    proven (deleting one end of a pair deletes both: the other is then simply not found)."""
    from .nl import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
    for side in SIDES:
        if side not in fds:
            continue
        ns = state.ns(side)
        for ifn in reversed(state.interfaces(side)):
            try:
                with IPRoute(netns=ns) as ipr:
                    idx = ipr.link_lookup(ifname=ifn)
                    if idx:
                        ipr.link("del", index=idx[0])
            except NetlinkError as e:
                if e.code != errno.ENODEV:
                    raise LabError(e.code, f"lab {state.name}: delete {ifn}: {e}") from e
            except FileNotFoundError:
                break       # another remover took the namespace's name meanwhile


# listing ---------------------------------------------------------------------------------------
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
            proven = open_proven(st)
            fds.update({st.ns(s): fd for s, fd in proven.items()})
            out.append({"name": st.name, "ns": [st.ns_src, st.ns_dut],
                        "interfaces": [st.if_src, st.if_dut], "owner_pid": st.owner_pid,
                        "extra_interfaces": st.interfaces("src")[1:] + st.interfaces("dut")[1:],
                        "stale": is_stale(st), "pktlab": True,
                        "namespaces": {st.ns(s): ("pktlab" if s in proven else
                                                  namespace_verdict(st, s)) for s in SIDES},
                        "processes": [],
                        "cgroup": (st.extra.get("cgroup") or {}).get("path")})
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
