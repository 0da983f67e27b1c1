"""Netlink that works everywhere pktlab runs, a Jupyter kernel included.

pyroute2 0.9 drives its sockets with asyncio and runs its own event loop in the calling thread;
in a thread that already runs a loop (a Jupyter kernel's main thread does) that fails with
"This event loop is already running". IPRoute() here is pyroute2's IPRoute when the calling
thread has no running loop, and otherwise a proxy whose every call runs on one long-lived
worker thread (one, so that calls stay in order and each IPRoute object is only ever used from
the thread that made it).

A socket in a lab's namespace is made here, not by pyroute2: pyroute2 0.9 forks a child
process for every one (the child enters the namespace, makes the socket and sends it back),
which costs tens of milliseconds in a process as large as a notebook kernel or a test run with
bcc loaded (measured: 43 ms each on average in tests/test_lab.py, 84-215 ms in a 300 MB
process). Here a short-lived thread enters the namespace (setns(2) with CLONE_NEWNET moves the
calling thread only), makes the socket and ends; the socket keeps that namespace, and pyroute2
is handed it (fileno=) to use exactly as it would its own. Errors are pyroute2's: a missing
namespace is FileNotFoundError (never created), a path that is not one an OSError.
"""

import asyncio
import ctypes
import os
import socket
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


CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/var/run/netns"        # where pyroute2 looks a namespace's name up
NETLINK_ROUTE = 0
_libc = None


def _socket_in(netns):
    """A NETLINK_ROUTE socket's fd made in namespace `netns` (a name, or a path as pyroute2
    takes it). The namespace is never created: a vanished lab's name must not become a new
    namespace that no state file records (pktlab/lab.py: ownership is proven, not named)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    where = netns if os.path.dirname(netns) else os.path.join(NETNS_RUN_DIR, netns)
    box = {}

    def make():                     # in its own thread: only that thread enters the namespace
        try:
            try:
                nsfd = os.open(where, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:    # as pyroute2's child reports it (no file name)
                raise type(e)(e.errno, e.strerror) from None
            try:
                if _libc.setns(nsfd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "failed to open netns")
            finally:
                os.close(nsfd)
            box["fd"] = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM,
                                      NETLINK_ROUTE).detach()
        except BaseException as e:  # noqa: B902 -- handed to the caller's thread
            box["error"] = e

    t = threading.Thread(target=make, name="pktlab-netns-socket", daemon=True)
    t.start()
    try:
        t.join()
    except BaseException:           # interrupted while it ran: it ends by itself; no fd kept
        t.join()
        if "fd" in box:
            os.close(box["fd"])
        raise
    if "error" in box:
        raise box["error"]
    return box["fd"]


def _make(netns):
    """pyroute2's IPRoute, on a socket in namespace `netns` (None: this thread's own)."""
    from pyroute2 import IPRoute as _IPRoute
    if netns is None:
        return _IPRoute()
    # the fd is pyroute2's from here (its socket object closes it, on a failure too)
    return _IPRoute(fileno=_socket_in(netns))


class _Proxy:
    def __init__(self, netns):
        self._ipr = _executor().submit(_make, netns).result()

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
    return _make(netns)
