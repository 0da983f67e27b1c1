"""Put frames on a lab's wire: an AF_PACKET socket on the src end of the veth.

The socket is made inside the src namespace and keeps it, so the sender never touches the
host's interfaces. It goes through the qdisc layer (no PACKET_QDISC_BYPASS), so TC egress on src
sees every frame, as it would see a real application's.
"""

import errno
import socket

from . import netns
from .errors import LabError

ETH_HLEN = 14


class Injector:
    """Send frames out of the lab's src interface. A context manager; close() is idempotent."""

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
        self.closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

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
        """Send frames in order (the fast path of a replay: no per-frame checks)."""
        send = self.sock.send
        n = 0
        try:
            for f in frames:
                send(f)
                n += 1
        except OSError:
            # slow path for the one that failed (buffer full: retry; else a clear error)
            self.sent += n
            rest = list(frames)[n:]
            for f in rest:
                self.send(f)
            return
        self.sent += n

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.sock.close()
