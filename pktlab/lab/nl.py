"""Netlink that works everywhere pktlab runs, a Jupyter kernel included.

pyroute2 0.9 drives its sockets with asyncio and runs its own event loop in the calling thread;
in a thread that already runs a loop (a Jupyter kernel's main thread does) that fails with
"This event loop is already running". IPRoute() here is pyroute2's IPRoute when the calling
thread has no running loop, and otherwise a proxy whose every call runs on one long-lived
worker thread (one, so that calls stay in order and each IPRoute object is only ever used from
the thread that made it).
"""

import asyncio
import threading

_worker = None
_worker_lock = threading.Lock()


def _loop_running():
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


def _executor():
    global _worker
    with _worker_lock:
        if _worker is None:
            from concurrent.futures import ThreadPoolExecutor
            _worker = ThreadPoolExecutor(1, thread_name_prefix="pktlab-netlink")
        return _worker


def call(fn, *args, **kwargs):
    """fn(*args, **kwargs) where netlink works: here, or on the worker thread."""
    if not _loop_running() or threading.current_thread().name.startswith("pktlab-netlink"):
        return fn(*args, **kwargs)
    return _executor().submit(fn, *args, **kwargs).result()


def _netns_args(netns):
    # flags=0: a namespace that is not there is an error (FileNotFoundError), never made.
    # pyroute2's default (O_CREAT) creates it, which hands a vanished lab's name to a new
    # namespace that no state file records (pktlab/lab.py: ownership is proven, not named).
    return {} if netns is None else {"netns": netns, "flags": 0}


class _Proxy:
    def __init__(self, netns):
        from pyroute2 import IPRoute as _IPRoute
        self._ipr = _executor().submit(_IPRoute, **_netns_args(netns)).result()

    def __getattr__(self, name):
        attr = getattr(self._ipr, name)
        if not callable(attr):
            return attr

        def method(*args, **kwargs):
            return _executor().submit(attr, *args, **kwargs).result()
        return method

    def close(self):
        _executor().submit(self._ipr.close).result()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def IPRoute(netns=None):
    """pyroute2.IPRoute(netns=...), usable from any thread (see the module docstring)."""
    if _loop_running():
        return _Proxy(netns)
    from pyroute2 import IPRoute as _IPRoute
    return _IPRoute(**_netns_args(netns))
