"""How the `pktlab` command talks and ends: exit statuses, one-line messages on stderr,
signals, a closed stdout.

Every failure is said in one line (the object, the cause, the next step) and has its exit
status; SIGINT and SIGTERM unwind through every `with` once, so whatever the run made is
removed; a reader of stdout that went away ends the run quietly.
"""

import os
import re
import signal
import sys

from ..errors import EnvironmentProblem, PktlabError

EXIT_OK, EXIT_FOUND, EXIT_BAD = 0, 1, 2
EXIT_INTERRUPTED = 128 + signal.SIGINT        # 130: what a shell reports for Ctrl-C
EXIT_PIPE = 128 + signal.SIGPIPE             # 141: what a shell reports for a closed pipe
# line breaks of any kind (str.splitlines' set) and other control characters: a message is one
# line on stderr whatever a file name holds
_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


def one_line(text):
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


_said = False            # this run has said its one line on stderr


def err(msg, prefix="pktlab: "):
    global _said
    try:
        print(prefix + one_line(msg), file=sys.stderr, flush=True)
        _said = True
    except (OSError, ValueError, AttributeError):   # stderr closed or gone: nothing to say it on
        pass


class BadArguments(Exception):
    """Arguments argparse refused: says so as `<prog>: <what>; see `<prog> --help``."""


def need_root(what):
    if os.geteuid() != 0:
        raise EnvironmentProblem(f"{what} needs root (eBPF programs and network namespaces); "
                                 "run it with sudo, e.g. `sudo .venv/bin/pktlab ...`; "
                                 "`pktlab cast` works without root")


_MAIN_PID = None
_SIGNALLED = None        # the first SIGINT/SIGTERM this run received


def begin():
    """A run starts: this process is the one whose `with` blocks unwind on a signal; nothing
    received, nothing said yet. Returns the signal handlers it replaced."""
    global _MAIN_PID, _SIGNALLED, _said, _prev_unraisable
    _MAIN_PID, _SIGNALLED, _said = os.getpid(), None, False
    if sys.unraisablehook is not _unraisable:
        _prev_unraisable = sys.unraisablehook
        sys.unraisablehook = _unraisable
    return set_signals({signal.SIGINT: _on_signal, signal.SIGTERM: _on_signal})


_prev_unraisable = sys.unraisablehook


def _unraisable(info):
    """A KeyboardInterrupt that Python could not raise: the signal landed inside a callback
    whose exceptions Python only reports (an at-fork handler such as logging's, run when a
    library forks in this thread). Unreported, the run would go on as if no signal had come:
    deliver the signal again, to land once the callback is over."""
    global _SIGNALLED
    if issubclass(info.exc_type, KeyboardInterrupt) and _SIGNALLED is not None \
            and os.getpid() == _MAIN_PID:
        signum, _SIGNALLED = _SIGNALLED, None
        # from another thread, a moment later: sent from here it would land in this hook
        import threading
        t = threading.Timer(0.01, os.kill, (os.getpid(), signum))
        t.daemon = True
        t.start()
        return
    _prev_unraisable(info)


def interrupted():
    """The signal this run received, or None."""
    return _SIGNALLED


def said():
    """Has this run said its one line on stderr?"""
    return _said


def _on_signal(signum, frame):
    """SIGINT and SIGTERM: unwind through every `with` (labs and attachments are removed),
    once. Later ones are ignored, so that the cleanup runs to its end and the run says one
    line."""
    # pyroute2 forks helper processes (netns sockets) and ends them with SIGTERM, and Ctrl-C
    # reaches the whole process group: a forked child must just die, never unwind the
    # parent's `with` blocks (that would tear the lab down). Not SIG_IGN for the repeats:
    # children forked during the cleanup inherit it, and must still die on SIGTERM.
    if os.getpid() != _MAIN_PID:
        os._exit(128 + signum)
    global _SIGNALLED
    if _SIGNALLED is not None:
        return
    _SIGNALLED = signum
    raise KeyboardInterrupt


def quiet_stdout():
    """The reader of stdout is gone: point fd 1 at /dev/null, so that nothing (our last
    writes, the interpreter's flush at exit) fails on it again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def failed(e):
    """The exit status for what ended a run, said in one line on stderr."""
    if isinstance(e, KeyboardInterrupt) or _SIGNALLED:
        if isinstance(e, KeyboardInterrupt):
            err("interrupted; everything this run made has been removed")
        else:
            err(f"interrupted ({type(e).__name__} on the way out: {str(e)[:200]}); "
                 "`pktlab lab clean` removes anything left behind")
        return EXIT_INTERRUPTED
    if isinstance(e, BrokenPipeError):
        quiet_stdout()
        return EXIT_PIPE
    if isinstance(e, BadArguments):
        err(str(e), prefix="")
        return EXIT_BAD
    if isinstance(e, (FileNotFoundError, ValueError, EnvironmentProblem)):
        err(str(e))
        return EXIT_BAD
    if isinstance(e, PktlabError):
        err(str(e))
        log = getattr(e, "log", "")
        if log:
            print(log.rstrip()[-3000:], file=sys.stderr)
        return EXIT_BAD
    raise e                     # a bug in pktlab: its traceback is the useful report


def set_signals(handlers):
    """Install {signum: handler}; returns the handlers they replace. Only the main thread may
    (main() called from another thread leaves signals alone)."""
    old = {}
    for signum, handler in handlers.items():
        try:
            old[signum] = signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        except ValueError:
            pass
    return old
