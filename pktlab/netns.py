"""Network namespace plumbing: enter a namespace on this thread, run a command in one.

setns(2) with CLONE_NEWNET changes the namespace of the calling *thread* only, so entering one
for the length of a `with` block is safe in a threaded program, as long as the block does not
hand work to another thread. Sockets keep the namespace they were created in, which is how the
injector and the sysctl writes reach the lab.
"""

import contextlib
import ctypes
import errno
import os
import subprocess

from .errors import LabError

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

_libc = None


def _setns(fd, name):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise LabError(err, f"enter network namespace {name}: {os.strerror(err)}; "
                            "pktlab needs root (CAP_SYS_ADMIN) for namespaces")


def path(name):
    return os.path.join(NETNS_RUN_DIR, name)


def exists(name):
    return os.path.exists(path(name))


def inode(name):
    """The namespace's inode number: what the kernel calls net->ns.inum (the kprobe filter)."""
    return os.stat(path(name)).st_ino


def list_names():
    try:
        return sorted(os.listdir(NETNS_RUN_DIR))
    except FileNotFoundError:
        return []


@contextlib.contextmanager
def enter(name):
    """Run the block with this thread in network namespace `name`, then come back."""
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        try:
            target = os.open(path(name), os.O_RDONLY)
        except FileNotFoundError:
            raise LabError(errno.ENOENT, f"network namespace {name} does not exist; "
                                         "was its lab closed? (`pktlab lab status`)") from None
        try:
            _setns(target, name)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(orig, "of this process")
    finally:
        os.close(orig)


def create(name):
    """Create a named namespace the way `ip netns add` does (so iproute2 sees it too)."""
    from pyroute2 import netns as pr_netns
    try:
        pr_netns.create(name)
    except OSError as e:
        raise LabError(e.errno, f"create network namespace {name}: {e.strerror or e}; "
                                "pktlab needs root") from e
    if not exists(name):
        raise LabError(errno.EIO, f"create network namespace {name}: it did not appear "
                                  f"in {NETNS_RUN_DIR}")


def remove(name):
    """Remove a named namespace; a missing one is not an error (close() runs twice)."""
    if not exists(name):
        return
    from pyroute2 import netns as pr_netns
    try:
        pr_netns.remove(name)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise LabError(e.errno, f"remove network namespace {name}: {e.strerror or e}") from e


def run(name, argv, check=True, timeout=30, **kw):
    """Run a command inside the namespace (ip netns exec), returning CompletedProcess."""
    try:
        return subprocess.run(["ip", "netns", "exec", name, *argv], check=check,
                              timeout=timeout, capture_output=kw.pop("capture_output", True),
                              text=kw.pop("text", True), **kw)
    except subprocess.CalledProcessError as e:
        raise LabError(errno.EIO, f"in namespace {name}: `{' '.join(argv)}` failed "
                                  f"({e.returncode}): {(e.stderr or '').strip()}") from e


def write_sysctl(name, key, value):
    """Write a net.* sysctl of namespace `name` (/proc/sys/net reflects the opener's netns)."""
    rel = key.replace(".", "/")
    with enter(name):
        with open(f"/proc/sys/{rel}", "w") as f:
            f.write(str(value))
