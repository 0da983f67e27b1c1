"""The frames leaving src, as they went on the wire: an AF_PACKET socket in the lab's src
namespace, bound to its veth, keeping the outgoing frames.

    with SrcCapture(lab) as cap:
        ... a client in src sends ...
        frames = cap.read()        # [bytes] of every frame src sent since the capture opened

The socket is made inside the namespace (pktlab.lab.netns.enter): an AF_PACKET socket sees the
interfaces of the namespace it was made in, whatever thread reads it later. The kernel hands a
packet socket the whole frame, page fragments included (skb_copy_bits), after TC egress: what
the dut's hooks get. The walker computes each hook's expected record from these bytes.
"""

import errno
import socket

from ..errors import LabError
from ..lab import netns
from ..owned import Owned

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
#: one frame of the largest size a lab carries (jumbo MTU, or GSO's 64 KiB before segmentation)
FRAME_MAX = 65536 + 64
RCVBUF = 4 << 20


class SrcCapture(Owned):
    """Outgoing frames on one side's veth (src unless told); see the module docstring."""

    def __init__(self, lab, side="src"):
        self.ifname = lab.ifname(side)
        self.ns = lab.ns(side)
        with netns.enter(self.ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            self.sock.bind((self.ifname, ETH_P_ALL))
            self.sock.setblocking(False)
        except OSError as e:
            self.sock.close()
            raise LabError(e.errno or errno.EIO, f"capture on {self.ns}/{self.ifname}: "
                                                 f"{e.strerror}") from None
        self._hold()

    def read(self, direction="outgoing"):
        """Every frame waiting (outgoing only unless direction=None), oldest first."""
        out = []
        while True:
            try:
                data, addr = self.sock.recvfrom(FRAME_MAX)
            except (BlockingIOError, InterruptedError):
                return out
            if direction is None or addr[2] == PACKET_OUTGOING:
                out.append(data)

    def _release(self):
        self.sock.close()
