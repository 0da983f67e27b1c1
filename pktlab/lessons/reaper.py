"""The reaper of a notebook's lab: a small process, started with the lab, that waits on the
notebook kernel's pidfd and removes the lab if the kernel dies without closing it (SIGKILL, a
crash: atexit never runs). LiveLab.close() stops it.

    python -m pktlab.lessons --reap PID LAB        (pktlab/lessons/__main__.py)
"""

import os
import subprocess
import sys


def start_reaper(lab):
    """A process that removes ``lab`` if this process dies without closing it (SIGKILL)."""
    try:
        return subprocess.Popen([sys.executable, "-m", "pktlab.lessons", "--reap",
                                 str(os.getpid()), lab.name],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                close_fds=True)
    except OSError:
        return None       # the lab's own stale cleanup remains


def reap(pid, name):
    """Wait for process ``pid`` to end, then remove lab ``name`` if ``pid`` owned it."""
    import select

    from ..lab import LabState, remove_lab
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        fd = None
    if fd is not None:
        select.select([fd], [], [])
        os.close(fd)
    try:
        st = LabState.load(name)
    except (OSError, ValueError, TypeError):
        return
    if st.owner_pid == pid:
        remove_lab(st)


def main(argv):
    if len(argv) == 3 and argv[0] == "--reap":
        reap(int(argv[1]), argv[2])
        return 0
    print("usage: python -m pktlab.lessons --reap PID LAB", file=sys.stderr)
    return 2
