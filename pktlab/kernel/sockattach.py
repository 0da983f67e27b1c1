"""Attachments at the socket end, each removing exactly what it attached (Owned, like those
in attach.py):

    CgroupAttachment(prog_fd, cgroup, "inet_ingress" | "sock_ops")
        a program on the lab's cgroup v2 (BPF_F_ALLOW_MULTI: it never replaces another's)
    SocketFilterAttachment(prog_fd, pid, fd, netns_cookie)
        SO_ATTACH_BPF on a socket of a running, unmodified server: pidfd_getfd(2) duplicates
        its fd here, the option is set on the duplicate (they share the socket), the duplicate
        is closed; close() does the same with SO_DETACH_BPF while the server lives. The socket
        must be in the lab's namespace (its SO_NETNS_COOKIE), as check_interface wants for
        interfaces
    SockmapAttachment(prog_fd, map_fd)
        an SK_SKB stream verdict program on a sockhash
    TracepointAttachment(bpf, "category:event", fn_name)
        a tracepoint program (bcc)

socket_cookie(pid, fd) and insert_socket(map_fd, pid, fd) put a socket in a sockhash by hand
(lesson 08: a socket inserted while its reader waits in recv()).
"""

import ctypes
import errno
import os
import socket

from ..errors import LabError
from .attach import Attachment

BPF_F_ALLOW_MULTI = 2
SO_ATTACH_BPF, SO_DETACH_BPF = 50, 27        # SO_DETACH_BPF == SO_DETACH_FILTER
SO_COOKIE = 57
SO_NETNS_COOKIE = 71
_SYS_PIDFD_GETFD = 438
#: bpf_attach_type (uapi/linux/bpf.h) by the names used here
ATTACH_TYPES = {"inet_ingress": 0, "sock_ops": 3, "stream_verdict": 5}

_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _lib():
    from .bpf import bcc
    return bcc().libbcc.lib


def _err(rc):
    """The errno of a failed libbpf call (it returns -errno)."""
    return -rc if rc < -1 else (ctypes.get_errno() or errno.EINVAL)


def grab(pid, fd, pidfd=None):
    """A socket object for a duplicate of process `pid`'s file descriptor `fd`
    (pidfd_getfd(2): needs PTRACE_MODE_ATTACH over it, i.e. root here)."""
    own = pidfd is None
    if own:
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            raise LabError(errno.ESRCH, f"process {pid} is gone; its socket cannot be "
                                        "reached") from None
    try:
        dup = _c().syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0)
        if dup < 0:
            e = ctypes.get_errno()
            raise LabError(e, f"pidfd_getfd(process {pid}, fd {fd}): {os.strerror(e)}; pktlab "
                              "needs root (PTRACE_MODE_ATTACH) to reach a server's socket")
    finally:
        if own:
            os.close(pidfd)
    try:
        return socket.socket(fileno=dup)
    except OSError as e:
        os.close(dup)
        raise LabError(e.errno or errno.ENOTSOCK, f"process {pid}, fd {fd}: not a socket "
                                                  f"({e.strerror})") from None


def _cookie(sock, opt):
    return int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, opt, 8), "little")


def socket_cookie(pid, fd):
    """The socket cookie of process `pid`'s socket `fd` (a sockhash's key here)."""
    with grab(pid, fd) as s:
        return _cookie(s, SO_COOKIE)


def insert_socket(map_fd, pid, fd):
    """Put process `pid`'s socket `fd` into the sockhash `map_fd`, keyed by its cookie.
    Returns the cookie."""
    with grab(pid, fd) as s:
        cookie = _cookie(s, SO_COOKIE)
        k, v = ctypes.c_uint64(cookie), ctypes.c_uint32(s.fileno())
        rc = _lib().bpf_update_elem(map_fd, ctypes.byref(k), ctypes.byref(v), 0)
        if rc < 0:
            e = _err(rc)
            raise LabError(e, f"put process {pid}'s socket (fd {fd}) in the sockhash: "
                              f"{os.strerror(e)}")
    return cookie


class CgroupAttachment(Attachment):
    """A program attached to a cgroup v2 (cgroup_skb ingress, sock_ops)."""

    def __init__(self, prog_fd, cgroup, kind):
        if kind not in ("inet_ingress", "sock_ops"):
            raise ValueError(f"cgroup attach {kind!r}: inet_ingress or sock_ops")
        self.prog_fd, self.kind = prog_fd, kind
        self.path = cgroup.path
        self.description = f"{kind} program on cgroup {self.path}"
        # our own fd: the attachment may outlive the caller's, and detach needs one
        self.cg_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        rc = _lib().bpf_prog_attach(prog_fd, self.cg_fd, ATTACH_TYPES[kind], BPF_F_ALLOW_MULTI)
        if rc < 0:
            e = _err(rc)
            os.close(self.cg_fd)
            raise LabError(e, f"attach the {self.description}: {os.strerror(e)}; see "
                              "`pktlab doctor` (cgroup v2)")
        self._hold()

    def _release(self):
        try:
            rc = _lib().bpf_prog_detach2(self.prog_fd, self.cg_fd, ATTACH_TYPES[self.kind])
            # ENOENT: the cgroup was removed first, which detached it
            if rc < 0 and _err(rc) not in (errno.ENOENT, errno.ENODEV):
                raise LabError(_err(rc), f"detach the {self.description}: "
                                         f"{os.strerror(_err(rc))}")
        finally:
            os.close(self.cg_fd)


class SocketFilterAttachment(Attachment):
    """SO_ATTACH_BPF on a socket of a running process (see the module docstring)."""

    def __init__(self, prog_fd, pid, fd, netns_cookie=None):
        self.pid, self.fd = pid, fd
        self.description = f"socket filter on process {pid}'s fd {fd}"
        try:
            self.pidfd = os.pidfd_open(pid)     # kept: close() finds the same process
        except ProcessLookupError:
            raise LabError(errno.ESRCH, f"attach the {self.description}: the process is "
                                        "gone") from None
        try:
            with grab(pid, fd, self.pidfd) as s:
                if netns_cookie is not None and _cookie(s, SO_NETNS_COOKIE) != netns_cookie:
                    raise LabError(errno.EPERM, f"attach the {self.description}: the socket "
                                                "is not in the lab's namespace; pktlab attaches "
                                                "only to its own labs' sockets")
                s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, prog_fd)
        except OSError as e:
            os.close(self.pidfd)
            if isinstance(e, LabError):
                raise
            raise LabError(e.errno, f"attach the {self.description}: {e.strerror}") from None
        self._hold()

    def _release(self):
        try:
            with grab(self.pid, self.fd, self.pidfd) as s:
                s.setsockopt(socket.SOL_SOCKET, SO_DETACH_BPF, 0)
        except LabError as e:
            # the server ended (its sockets, and their filters, went with it), or the fd
            # was closed: nothing of ours is left to detach
            if e.errno not in (errno.ESRCH, errno.EBADF, errno.ENOTSOCK):
                raise
        except OSError as e:
            if e.errno != errno.ENOENT:         # no filter there any more
                raise LabError(e.errno, f"detach the {self.description}: {e.strerror}") from None
        finally:
            os.close(self.pidfd)


class SockmapAttachment(Attachment):
    """An SK_SKB stream verdict program on a sockhash (no stream parser: see sk_skb.bpf.c)."""

    def __init__(self, prog_fd, map_fd):
        self.prog_fd, self.map_fd = prog_fd, map_fd
        self.description = "sk_skb stream verdict on the lab's sockhash"
        rc = _lib().bpf_prog_attach(prog_fd, map_fd, ATTACH_TYPES["stream_verdict"], 0)
        if rc < 0:
            raise LabError(_err(rc), f"attach the {self.description}: {os.strerror(_err(rc))}")
        self._hold()

    def _release(self):
        rc = _lib().bpf_prog_detach2(self.prog_fd, self.map_fd, ATTACH_TYPES["stream_verdict"])
        if rc < 0 and _err(rc) not in (errno.ENOENT, errno.EBADF):
            raise LabError(_err(rc), f"detach the {self.description}: {os.strerror(_err(rc))}")


class TracepointAttachment(Attachment):
    """A tracepoint program of a bcc module (`tp` as "category:event")."""

    def __init__(self, bpf, tp, fn_name):
        self.bpf, self.tp = bpf, tp
        self.description = f"tracepoint {tp}"
        try:
            bpf.attach_tracepoint(tp=tp.encode(), fn_name=fn_name.encode())
        except Exception as e:
            raise LabError(errno.EINVAL, f"attach the {self.description}: {e}; is tracefs "
                                         "mounted? (`pktlab doctor`)") from None
        self._hold()

    def _release(self):
        self.bpf.detach_tracepoint(tp=self.tp.encode())
