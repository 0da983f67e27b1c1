"""Put frames on a lab's wire: an AF_PACKET socket on the src end of the veth.

The socket is made inside the src namespace and keeps it, so the sender never touches the
host's interfaces. It goes through the qdisc layer (no PACKET_QDISC_BYPASS), so TC egress on src
sees every frame, as it would see a real application's.
"""

import ctypes
import errno
import os
import socket

import numpy as np

from . import netns
from ..errors import LabError
from ..owned import Owned

ETH_HLEN = 14
#: sendmmsg() takes at most UIO_MAXIOV messages per call
MMSG_MAX = 1024

# struct mmsghdr on 64-bit Linux: struct msghdr (56 bytes) + unsigned msg_len, padded to 64
_MMSGHDR = np.dtype([("name", "<u8"), ("namelen", "<u4"), ("_p0", "<u4"), ("iov", "<u8"),
                     ("iovlen", "<u8"), ("control", "<u8"), ("controllen", "<u8"),
                     ("flags", "<i4"), ("_p1", "<u4"), ("len", "<u4"), ("_p2", "<u4")])
_libc = None


def _sendmmsg():
    """libc's sendmmsg through ctypes: the GIL is released for the whole call."""
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)      # the C library Python already uses
        fn = lib.sendmmsg
        fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        fn.restype = ctypes.c_int
        _libc = fn
    return _libc


class Injector(Owned):
    """Send frames out of the lab's src interface (pktlab.owned.Owned: close() once)."""

    def __init__(self, lab, side="src"):
        self.lab = lab
        self.ifname = lab.ifname(side)
        with netns.enter(lab.ns(side)):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)   # protocol 0: send only
            try:
                s.bind((self.ifname, 0))
            except OSError as e:
                s.close()
                raise LabError(e.errno, f"bind AF_PACKET to {self.ifname}: {e.strerror}") from e
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.sock = s
        self.max_frame = lab.mtu + ETH_HLEN
        self.sent = 0
        self._hold()

    def can_send(self, frame):
        """None when the lab can carry the frame, else the reason it cannot."""
        n = len(frame)
        if n < ETH_HLEN:
            return (f"{n} bytes: shorter than an Ethernet header; the kernel refuses to send it "
                    "(parsed in Python only)")
        # packet_snd() allows 4 bytes more for a frame that carries a VLAN tag
        tagged = n >= ETH_HLEN and frame[12:14] in (b"\x81\x00", b"\x88\xa8")
        if n > self.max_frame + (4 if tagged else 0):
            return (f"{n} bytes: larger than the lab's MTU ({self.lab.mtu}) allows; "
                    "raise it with Lab(mtu=...) / --mtu")
        return None

    def sendable(self, frames, tagged=None):
        """can_send() for a batch at once: (bool array, {index: reason} for the others).

        ``tagged``: indexes of the frames whose EtherType is a VLAN TPID, when known."""
        n = len(frames)
        lens = np.fromiter(map(len, frames), dtype=np.int64, count=n)
        limit = np.full(n, self.max_frame, dtype=np.int64)
        if tagged is None:
            tagged = [i for i, f in enumerate(frames) if f[12:14] in (b"\x81\x00", b"\x88\xa8")]
        limit[list(tagged)] += 4
        ok = (lens >= ETH_HLEN) & (lens <= limit)
        reasons = {int(i): self.can_send(frames[i]) for i in np.flatnonzero(~ok)}
        return ok, reasons

    def send(self, frame):
        """Send one frame; retries briefly when the socket buffer is full."""
        send = self.sock.send
        for _ in range(1000):
            try:
                send(frame)
                self.sent += 1
                return
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    continue
                raise LabError(e.errno, f"send {len(frame)}-byte frame on {self.ifname}: "
                                        f"{e.strerror}") from e
        raise LabError(errno.ENOBUFS, f"send on {self.ifname}: socket buffer stayed full")

    def send_many(self, frames):
        """Send frames in order, up to 1024 per sendmmsg() call (the fast path of a replay: no
        per-frame checks, and no Python between the frames of a call, so the GIL is free for
        the rest of pktlab while the kernel runs the veth and every hook)."""
        frames = frames if isinstance(frames, list) else list(frames)
        for start in range(0, len(frames), MMSG_MAX):
            self._sendmmsg(frames[start:start + MMSG_MAX])

    def _sendmmsg(self, frames):
        n = len(frames)
        if n == 0:
            return
        buf = b"".join(frames)
        lens = np.fromiter(map(len, frames), dtype=np.uint64, count=n)
        base = np.frombuffer(buf, dtype=np.uint8).ctypes.data if buf else 0
        iov = np.empty((n, 2), dtype=np.uint64)
        iov[:, 1] = lens
        iov[:, 0] = base + np.cumsum(lens) - lens
        msgs = np.zeros(n, dtype=_MMSGHDR)
        msgs["iov"] = iov.ctypes.data + 16 * np.arange(n, dtype=np.uint64)
        msgs["iovlen"] = 1
        fn, fd = _sendmmsg(), self.sock.fileno()
        done = 0
        while done < n:
            rc = fn(fd, msgs.ctypes.data + done * _MMSGHDR.itemsize, n - done, 0)
            if rc > 0:
                done += rc
                self.sent += rc
                continue
            err = ctypes.get_errno()
            if err in (errno.ENOBUFS, errno.EAGAIN, errno.EINTR):
                # the one that failed, with send()'s bounded retries and its clear error
                self.send(frames[done])
                done += 1
                continue
            raise LabError(err, f"send {len(frames[done])}-byte frame on {self.ifname}: "
                                f"{os.strerror(err)}")
        del buf      # referenced by iov until here

    def _release(self):
        self.sock.close()
