"""What keeps a bench run from leaving anything behind, also on Ctrl-C or SIGKILL.

Its child processes (trafgen, tcpreplay, the socket reader) are started by spawn(), noted by
session (so that the load measurement leaves them out) and stopped by process group; what the
teardown paths import lazily is imported before anything is made; and Ctrl-C is held back
across the few statements between making a thing and registering its cleanup.
"""

import contextlib
import signal
import threading

from ..lab import spawn


# Children (trafgen, tcpreplay, the socket reader) are started by spawn(): they die with this
# process even when it is SIGKILLed, trafgen's forked workers included (pktlab/lab/spawn.py).


def _stop_process_group(proc, sig=signal.SIGINT, timeout=3.0):
    spawn.stop(proc, sig, timeout)


_OUR_SESSIONS = set()      # sessions of the processes the bench started (reader, trafgen)


def _preload():
    """Import now, before anything exists to clean up, what the teardown paths import lazily:
    a Ctrl-C that lands inside a module's first import leaves it half-initialized in
    sys.modules, and the cleanup that imports it next then fails (seen: asyncio, through the
    lab's netlink helper), which would leave the lab behind."""
    import importlib
    importlib.import_module("asyncio")
    for mod in ("pyroute2", "pyroute2.netlink.exceptions", "pktlab.lab.nl", "pktlab.lab.labs",
                "pktlab.kernel.attach", "pktlab.kernel.hooks", "pktlab.kernel.ringbuf", "pktlab.packet.record"):
        try:
            importlib.import_module(mod)
        except ImportError:
            pass


@contextlib.contextmanager
def _signals_deferred(signums=(signal.SIGINT, signal.SIGTERM)):
    """Hold Ctrl-C (and SIGTERM) back across a few statements, and deliver it right after.

    Lab.up() already holds signals while it builds; this covers what the live bench makes
    right after the lab and before its cleanup is registered on the ExitStack (the link
    counters), so that an interrupt in that window cannot leave them behind. Only in the main
    thread (where handlers live).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved, hits = {}, []
    for signum in signums:
        old = signal.getsignal(signum)
        if callable(old):
            saved[signum] = old
            signal.signal(signum, lambda s, f: hits.append(s))
    try:
        yield
    finally:
        for signum, old in saved.items():
            signal.signal(signum, old)
        if hits:
            saved[hits[0]](hits[0], None)      # e.g. default_int_handler: KeyboardInterrupt

