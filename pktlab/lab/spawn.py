"""Child processes that die with pktlab, even when pktlab is SIGKILLed.

    proc = spawn(["ip", "netns", "exec", lab.ns_src, "trafgen", ...], stdin=subprocess.PIPE)
    ...
    stop(proc)                      # SIGINT to its process group, SIGKILL after a timeout

Two mechanisms, because each covers what the other cannot:

1. PR_SET_PDEATHSIG(SIGKILL) on the direct child. The kernel sends it when the *thread* that
   forked the child ends, not when the process does, and pktlab forks from threads that come
   and go (the netlink worker, the replay sender, a Jupyter kernel's executor): a child forked
   there would die with that thread, early. So every fork happens on one thread that lives as
   long as the process (`pktlab-spawner`, started on first use, again after a fork): its end
   is the process's end. The child checks, after the prctl, that its parent is still the
   owner, since the owner may have died between fork and prctl.

2. A PID namespace of the child's own: `unshare --pid --fork --kill-child=SIGKILL` is the direct
   child, and the program runs as the init of the new namespace. When a namespace's init dies,
   the kernel kills every process left in it. PDEATHSIG alone reaches only the direct child:
   trafgen forks its workers, and a SIGKILLed bench left one running at a full core,
   reparented to PID 1. The chain when pktlab is SIGKILLed: pktlab -> (PDEATHSIG) unshare ->
   (--kill-child) the program -> (namespace teardown) whatever it started, however it
   detached itself (setsid, double fork, a dropped privilege that clears PDEATHSIG).

What changes for the program: as a namespace's init it gets only the signals it has a handler
for (and SIGKILL from outside). trafgen, tcpreplay and Python (SIGINT) have handlers; stop()
sends SIGKILL to a program that ignores its polite signal for `timeout` seconds. Its pid
inside is 1; outside, it has an ordinary pid (`proc.pid` is unshare's, the session and process
group leader: signal the group). Without root or without unshare(1), only (1) applies.

What is left to `pktlab lab clean`: a process another tool starts inside a lab namespace, or a
child a *thread-less* owner could not cover (the sub-millisecond window in which unshare itself
dies between its fork and its child's prctl). Clean finds every process inside a stale lab's
namespaces and ends it (pktlab/lab.py).
"""

import contextlib
import ctypes
import os
import queue
import shutil
import signal
import subprocess
import threading

PR_SET_PDEATHSIG = 1

_lock = threading.Lock()
_jobs = None              # the spawner thread's queue
_jobs_pid = None          # ...of this process (a forked child starts its own)
_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _after_fork_in_child():
    # the spawner thread does not exist in a forked child, and _lock may have been held
    global _lock, _jobs, _jobs_pid
    _lock, _jobs, _jobs_pid = threading.Lock(), None, None


os.register_at_fork(after_in_child=_after_fork_in_child)


def _serve(jobs):
    # Process-directed signals go to other threads: Python runs handlers on the main thread
    # anyway, and a blocked mask here keeps this thread's waits free of EINTR. The children
    # get an empty mask back before exec (_preexec).
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    while True:
        fn, done, box = jobs.get()
        try:
            box.append((True, fn()))
        except BaseException as e:         # handed to the caller's thread
            box.append((False, e))
        done.set()


def _spawner():
    global _jobs, _jobs_pid
    with _lock:
        if _jobs is None or _jobs_pid != os.getpid():
            _jobs, _jobs_pid = queue.SimpleQueue(), os.getpid()
            threading.Thread(target=_serve, args=(_jobs,), name="pktlab-spawner",
                             daemon=True).start()
        return _jobs


def on_spawner_thread(fn):
    """fn() on the process-long spawner thread; its result, or its exception re-raised."""
    if threading.current_thread().name == "pktlab-spawner" and _jobs_pid == os.getpid():
        return fn()
    done, box = threading.Event(), []
    _spawner().put((fn, done, box))
    done.wait()
    ok, value = box[0]
    if not ok:
        raise value
    return value


def _preexec_for(owner):
    # everything resolved before the fork: the child only calls into libc
    libc = _c()
    prctl, sig_default, getppid = libc.prctl, libc.signal, os.getppid
    unblock = signal.pthread_sigmask
    kill = signal.SIGKILL

    def preexec():
        unblock(signal.SIG_SETMASK, ())       # the spawner thread blocks everything
        sig_default(signal.SIGINT, 0)          # SIG_DFL: a background job inherits it ignored
        if prctl(PR_SET_PDEATHSIG, kill, 0, 0, 0) != 0 or getppid() != owner:
            os._exit(127)                      # the owner is already gone: do not start
    return preexec


def _wrap(argv, pid_namespace):
    if not pid_namespace or os.geteuid() != 0:
        return list(argv)
    unshare = shutil.which("unshare")
    if unshare is None:
        return list(argv)
    return [unshare, "--pid", "--fork", "--kill-child=SIGKILL", "--", *argv]


def spawn(argv, *, pid_namespace=True, **popen_kw):
    """subprocess.Popen(argv, **popen_kw) for a child that dies with this process.

    The child gets its own session (a terminal's Ctrl-C reaches only pktlab, which then stops
    its children) and, as root, its own PID namespace (see the module docstring). Safe to
    call from any thread. preexec_fn and start_new_session are spawn()'s own."""
    for own in ("preexec_fn", "start_new_session"):
        if own in popen_kw:
            raise TypeError(f"spawn(): {own} is set by spawn itself")
    full = _wrap(argv, pid_namespace)
    owner = os.getpid()
    return on_spawner_thread(lambda: subprocess.Popen(
        full, start_new_session=True, preexec_fn=_preexec_for(owner), **popen_kw))


def stop(proc, sig=signal.SIGINT, timeout=3.0):
    """Stop a spawned child: `sig` to its process group, SIGKILL after `timeout`. Safe twice."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
