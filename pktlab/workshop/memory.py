"""Each learner's memory, measured from /proc, and the watchdog that holds it under a cap.

This host has no systemd and its cgroup v2 has only the hugetlb controller, so a learner's
memory cannot be capped by the kernel per learner here. What `pktlab workshop up` does instead
(every WATCH_S seconds, in its own process, as root):

- sums the PSS (/proc/PID/smaps_rollup: shared pages split between their users) of every
  process whose real uid is the learner's: their server, kernels, terminals and whatever those
  started;
- over the learner's cap (`workshop up --memory-cap MB`), kills (SIGKILL) that learner's
  largest process other than their server (a kernel, usually: Jupyter restarts it, the learner
  sees "kernel restarting"), or the server itself when nothing else is left; once per turn, so
  the next turn measures again;
- says so in the hub's log (where the learners' servers write theirs) and on `up`'s stderr,
  and keeps a count per learner (memory.json in the state directory) for `workshop status`.

It is a watchdog, not a kernel limit: between two turns a process can grow past the cap (by
as much as it allocates in WATCH_S), and what the host's own OOM killer does when the whole
machine runs out is not changed.
"""

import contextlib
import json
import os
import signal
import time

from .accounts import write_private

WATCH_S = 2.0
#: the default cap per learner, MB: a learner's server and kernel measured here take ~150 MB
#: (PSS) after a lesson's first cells; this leaves room for a few kernels and a terminal
DEFAULT_CAP_MB = 768
SERVER_MARK = "jupyterhub-singleuser"


def _pss(pid):
    """PSS bytes of a process (smaps_rollup), else its RSS (statm), else None (gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _real_uid(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


def processes(uids):
    """{uid: [{"pid", "bytes", "cmd", "server"}]} for the processes whose real uid is one of
    `uids` (kernel threads and vanished processes left out)."""
    want = set(uids)
    out = {uid: [] for uid in want}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            uid = _real_uid(pid)
            if uid not in want:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        size = _pss(pid)
        if not cmd or size is None:
            continue
        out[uid].append({"pid": pid, "bytes": size, "cmd": cmd[:200],
                         "server": SERVER_MARK in cmd})
    return out


def usage(learners):
    """{user: {"bytes", "processes"}} for [(user, uid)]."""
    per = processes(uid for _, uid in learners)
    return {user: {"bytes": sum(p["bytes"] for p in per[uid]), "processes": len(per[uid])}
            for user, uid in learners}


class Watchdog:
    """One learner's process killed per turn when their total is over the cap."""

    def __init__(self, learners, cap_bytes, log_path, record_path, say=None):
        self.learners = list(learners)              # [(user, uid)]
        self.cap, self.log_path, self.record_path = int(cap_bytes), log_path, record_path
        self.say = say or (lambda text: None)
        self.killed = {user: 0 for user, _ in self.learners}
        self.last = {}
        self.next_at = 0.0

    def due(self):
        return time.monotonic() >= self.next_at

    def turn(self):
        self.next_at = time.monotonic() + WATCH_S
        per = processes(uid for _, uid in self.learners)
        for user, uid in self.learners:
            procs = per[uid]
            total = sum(p["bytes"] for p in procs)
            self.last[user] = {"bytes": total, "processes": len(procs)}
            if total > self.cap and procs:
                self._kill(user, total, procs)
        self._record()

    def _kill(self, user, total, procs):
        others = [p for p in procs if not p["server"]]
        victim = max(others or procs, key=lambda p: p["bytes"])
        uid = next(u for name, u in self.learners if name == user)
        try:
            # the process itself, not whatever took its pid since it was measured: a pidfd,
            # then its uid checked again (the pidfd cannot come to name another process)
            fd = os.pidfd_open(victim["pid"])
        except OSError:
            return
        try:
            if _real_uid(victim["pid"]) != uid:
                return
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except (OSError, StopIteration):
            return
        finally:
            os.close(fd)
        self.killed[user] += 1
        mb = lambda n: f"{n / 2**20:.0f} MB"  # noqa: E731
        text = (f"pktlab workshop: {user} used {mb(total)} (PSS) over {len(procs)} processes, "
                f"past their cap of {mb(self.cap)}: killed pid {victim['pid']} "
                f"({mb(victim['bytes'])}: {victim['cmd'][:120]})")
        self.say(text)
        with contextlib.suppress(OSError):
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW,
                         0o600)
            try:
                os.write(fd, (f"[W {time.strftime('%Y-%m-%d %H:%M:%S')} pktlab] {text}\n")
                         .encode())
            finally:
                os.close(fd)

    def _record(self):
        doc = {"cap": self.cap, "every_s": WATCH_S, "at": time.time(),
               "learners": {user: dict(self.last.get(user, {}), killed=self.killed[user])
                            for user, _ in self.learners}}
        with contextlib.suppress(OSError):
            write_private(self.record_path, json.dumps(doc))


def read_record(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
