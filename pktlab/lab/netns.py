"""Network namespace plumbing: create, identify, enter, remove, and find who is inside.

setns(2) with CLONE_NEWNET changes the namespace of the calling *thread* only, so entering one
for the length of a `with` block is safe in a threaded program, as long as the block does not
hand work to another thread. Sockets keep the namespace they were created in, which is how the
injector and the sysctl writes reach the lab.

A namespace's name (/run/netns/NAME, a bind mount, as `ip netns` makes them) says nothing about
who made it: anyone can `ip netns add` a name that looks like a lab. Its identity is its netns
cookie (SO_NETNS_COOKIE, kernel 5.14+): a 64-bit number the kernel gives each namespace once and
never reuses while it runs, unlike inode numbers, which come back once a namespace is gone.
create() hands the cookie to the caller *before* the name exists, so a caller that records it
(lab.py's state file) never leaves a named namespace it has not recorded; remove() removes a
name only when the namespace behind it still has the cookie the caller recorded.
"""

import contextlib
import ctypes
import errno
import os
import socket
import stat
import struct
import subprocess
import threading

from ..errors import LabError

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"
SO_NETNS_COOKIE = 71          # <asm-generic/socket.h>, Linux 5.14
MS_BIND, MS_REC, MS_SHARED = 0x1000, 0x4000, 1 << 20
MNT_DETACH = 2

_libc = None
_run_dir_ready = False
_run_dir_lock = threading.Lock()


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _setns(fd, name):
    if _c().setns(fd, CLONE_NEWNET) != 0:
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


# identity --------------------------------------------------------------------------------------
def _nsfs_dev():
    """The device number of the kernel's namespace filesystem (nsfs)."""
    return os.stat("/proc/self/ns/net").st_dev


def open_fd(name):
    """An O_RDONLY fd on namespace `name` (holding it alive), or None when `name` is missing or
    is not a namespace (an empty file left where a bind mount was never made, or lost on a
    reboot). The caller closes it."""
    try:
        fd = os.open(path(name), os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if os.fstat(fd).st_dev != _nsfs_dev():
        os.close(fd)
        return None
    return fd


def _cookie_here():
    """The cookie of the calling thread's network namespace (asked of a socket made in it)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        raw = s.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8)
    except OSError as e:
        if e.errno == errno.ENOPROTOOPT:
            raise LabError(e.errno, "this kernel has no SO_NETNS_COOKIE (Linux 5.14 or newer "
                                    "has it); pktlab needs it to tell the namespaces it made "
                                    "from others named alike. Use a newer kernel") from e
        raise
    finally:
        s.close()
    return struct.unpack("=Q", raw)[0]


@contextlib.contextmanager
def _entered_fd(fd, name):
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd, name)
        try:
            yield
        finally:
            _setns(orig, "of this process")
    finally:
        os.close(orig)


def cookie_of_fd(fd, name="(by fd)"):
    """The netns cookie of the namespace `fd` refers to."""
    with _entered_fd(fd, name):
        return _cookie_here()


def cookie(name):
    """The netns cookie of namespace `name`, or None when there is no such namespace."""
    fd = open_fd(name)
    if fd is None:
        return None
    try:
        return cookie_of_fd(fd, name)
    finally:
        os.close(fd)


def my_cookie():
    """The cookie of the namespace this thread is in (the host's, outside any lab)."""
    return _cookie_here()


# enter -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def enter(name):
    """Run the block with this thread in network namespace `name`, then come back."""
    try:
        target = os.open(path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise LabError(errno.ENOENT, f"network namespace {name} does not exist; "
                                     "was its lab closed? (`pktlab lab status`)") from None
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
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


# create ----------------------------------------------------------------------------------------
def _mounted(where):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == where for line in f)


def _prepare_run_dir():
    """/run/netns as `ip netns add` leaves it: a mount point of its own with shared propagation,
    so a name made here is seen by processes in other mount namespaces (`ip netns exec`)."""
    global _run_dir_ready
    with _run_dir_lock:
        if _run_dir_ready:
            return
        os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
        libc = _c()
        d = NETNS_RUN_DIR.encode()
        if not _mounted(NETNS_RUN_DIR) and libc.mount(d, d, b"none", MS_BIND | MS_REC, None):
            err = ctypes.get_errno()
            raise LabError(err, f"bind-mount {NETNS_RUN_DIR} onto itself: {os.strerror(err)}; "
                                "pktlab needs root")
        if libc.mount(b"", d, b"none", MS_SHARED | MS_REC, None):
            err = ctypes.get_errno()
            raise LabError(err, f"make {NETNS_RUN_DIR} a shared mount: {os.strerror(err)}")
        _run_dir_ready = True


def _new_namespace():
    """A new, nameless network namespace: (fd holding it, its cookie).

    Made on a throwaway thread: unshare(CLONE_NEWNET) moves only the calling thread, and that
    thread ends right after, so no thread of ours is ever left in the wrong namespace."""
    box = {}

    def make():
        try:
            if _c().unshare(CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                box["error"] = LabError(err, f"create a network namespace: {os.strerror(err)}; "
                                             "pktlab needs root (CAP_SYS_ADMIN)")
                return
            fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            box["fd"] = fd
            box["cookie"] = _cookie_here()
        except BaseException as e:      # reported in the caller's thread
            box["error"] = e

    t = threading.Thread(target=make, name="pktlab-netns-create")
    t.start()
    t.join()
    if "error" in box:
        if "fd" in box:
            os.close(box["fd"])
        raise box["error"]
    return box["fd"], box["cookie"]


def _bind(fd, name):
    """Give the namespace behind `fd` the name /run/netns/`name` (a bind mount, as iproute2)."""
    p = path(name)
    try:
        # O_EXCL: a name that exists, whoever made it, is never taken over
        os.close(os.open(p, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
    except FileExistsError:
        raise LabError(errno.EEXIST, f"create network namespace {name}: the name is taken "
                                     f"({p} exists); pick another name") from None
    if _c().mount(f"/proc/self/fd/{fd}".encode(), p.encode(), b"none", MS_BIND, None) != 0:
        err = ctypes.get_errno()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
        raise LabError(err, f"create network namespace {name}: bind mount on {p}: "
                            f"{os.strerror(err)}; pktlab needs root")


def create(name, record=None):
    """Create network namespace `name` (iproute2 sees it: `ip netns list`); returns its cookie.

    record(cookie) runs after the namespace exists and before it has a name: a caller that
    writes the cookie down there never leaves a named namespace it has not recorded, whatever
    moment it dies at. If record raises, the namespace is gone with its last fd."""
    _prepare_run_dir()
    fd, ck = _new_namespace()
    try:
        if record is not None:
            record(ck)
        _bind(fd, name)
    finally:
        os.close(fd)
    return ck


# remove ----------------------------------------------------------------------------------------
def remove(name, expected_cookie):
    """Remove namespace `name` if it is the one whose cookie is `expected_cookie`.

    Returns True when removed, False when `name` is missing or is another namespace (left
    alone: pktlab cannot prove it made it). The fd held meanwhile keeps the checked namespace
    alive, so its inode cannot be reused before the name is checked against it once more."""
    fd = open_fd(name)
    if fd is None:
        return False
    try:
        if cookie_of_fd(fd, name) != expected_cookie:
            return False
        st, held = os.stat(path(name)), os.fstat(fd)
        if (st.st_dev, st.st_ino) != (held.st_dev, held.st_ino):
            return False      # the name was removed and made again since we opened it
        if _c().umount2(path(name).encode(), MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err in (errno.EINVAL, errno.ENOENT):
                return False  # another remover was first
            raise LabError(err, f"remove network namespace {name}: {os.strerror(err)}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path(name))
        return True
    finally:
        os.close(fd)


def remove_placeholder(name):
    """Remove /run/netns/`name` if it is an empty file and not a namespace: what create() leaves
    when its process dies between making the file and mounting on it (or what a reboot leaves
    of every name). The caller has proven the name is its own (lab.py: the state file)."""
    p = path(name)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != 0 or st.st_dev == _nsfs_dev():
        return False
    fd = open_fd(name)
    if fd is not None:          # it became a namespace meanwhile
        os.close(fd)
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(p)
    return True


# processes -------------------------------------------------------------------------------------
def pids_in(fds):
    """{pid: fd} of the processes whose network namespace (their main thread's) is one of the
    namespaces behind `fds`. The fds hold those namespaces alive, so inode numbers compare
    exactly. Kernel threads and zombies have none and are never listed."""
    want = {}
    for fd in fds:
        st = os.fstat(fd)
        want[(st.st_dev, st.st_ino)] = fd
    found = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{d}/ns/net")
        except OSError:
            continue
        fd = want.get((st.st_dev, st.st_ino))
        if fd is not None:
            found[int(d)] = fd
    return found


def in_namespace(pid, fd):
    """True if process `pid` (still) lives in the namespace behind `fd`."""
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


# run / sysctl ----------------------------------------------------------------------------------
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
