"""Lesson 08's exercises: the end of the belt.

    check_belt_order(answer)            the order one request meets the eight hooks
    check_only_above(field)             a record field cgroup-ingress fills and socket-filter
                                        cannot (the walker entered at each layer says)
    check_insert_moment(op)             the sock_ops callback that must put a server's socket
                                        in the sockmap: measured, with the learner's callback
                                        compiled into the sk-skb program, on a real lab
"""

import re
import struct

from ..here import hook_available, in_lab_thread, why_not
from ..html import NotHere
from .common import CheckResult, norm
from ...sockets.sockmap import SOCK_OPS


def _request():
    """The frame the field checker walks: a TCP segment carrying an HTTP GET, as the belt's
    client sends it (timestamps option, PSH|ACK)."""
    payload = b"GET /pktlab HTTP/1.0\r\nHost: dut\r\n\r\n"
    tcp = struct.pack("!HHIIBBHHH", 50000, 8080, 1, 1, 8 << 4, 0x18, 502, 0, 0) + \
        bytes.fromhex("0101080a0000000100000002")
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0xABCD, 0x4000,
                     64, 6, 0, bytes([10, 200, 0, 1]), bytes([10, 200, 0, 2]))
    return bytes.fromhex("020000000002020000000001" "0800") + ip + tcp + payload


def check_belt_order(answer):
    """The eight hooks in the order one request meets them, src's wire to dut's app."""
    from ...sockets.belt import KERNEL_ORDER
    got = [norm(a) for a in (answer or ())]
    if got == list(KERNEL_ORDER):
        return CheckResult(True, " → ".join(KERNEL_ORDER) + ": the wire (TC egress on src), "
                           "dut's receive path (the tracepoint, XDP, TC ingress), then the "
                           "socket: its cgroup's filter, its own filter, the sockmap's verdict, "
                           "and last the application's recv()")
    missing = [h for h in KERNEL_ORDER if h not in got]
    hint = (f"missing: {', '.join(missing)}" if missing else
            "compare with the order on the belt you measured above (run.order())")
    return CheckResult(False, f"{' → '.join(got) or '(no answer)'}: not the kernel's order; "
                              + hint)


def _fields_at(hook):
    from ...sockets.expect import expected
    return expected(hook, _request()).to_dict()


def check_only_above(field, above="cgroup-ingress", below="socket-filter"):
    """A record field that `above` fills for the request and `below` cannot (zero there,
    because the header it comes from lies before `below`'s view)."""
    name = str(field).strip()
    a, b = _fields_at(above), _fields_at(below)
    if name not in a or name.startswith("_") or name in ("ts_ns", "ifindex", "hook"):
        return CheckResult(False, f"{name!r} is not a field of the record (see "
                                  "pl.record.field_comments())")
    from ...packet.record import Record
    va, vb, empty = a[name], b[name], Record().to_dict()[name]
    filled = (lambda v: v != empty)
    if filled(va) and not filled(vb):
        return CheckResult(True, f"{name}: {va!r} at {above}, nothing at {below}: it comes from "
                                 f"a header {below} never sees (its view starts at the "
                                 "transport header)")
    if not filled(va):
        return CheckResult(False, f"{name} is empty at {above} too (look for a field of the IP "
                                  "header)")
    return CheckResult(False, f"{name} is filled at {below} as well ({vb!r}): it comes from "
                              "the TCP header or the payload, which both hooks see")


def check_insert_moment(op):
    """Which sock_ops callback must put the server's socket into the sockmap? Measured: the
    sk-skb program is compiled with that callback, a real request goes to a real TCP echo
    server in a lab, and the verdict program must see it (and the echo come back)."""
    name = re.sub(r"^BPF_SOCK_OPS_", "", str(op).strip().upper())
    if name not in SOCK_OPS:
        return CheckResult(False, f"{op!r}: not a sock_ops callback; they are BPF_SOCK_OPS_ + "
                                  f"one of {', '.join(SOCK_OPS[1:])}")
    from ..remote import through_daemon
    if through_daemon():
        from ...workshop.client import Client
        with Client() as c:
            return _verdict(name, c.call("insert_moment", {"op": name})[0])
    if not hook_available("sk-skb"):
        return NotHere("checking the sockmap insertion", why_not("sk-skb"))
    from ...sockets.sockmap import insert_moment
    return _verdict(name, in_lab_thread(insert_moment, name))


def _verdict(name, got):
    """The checker's words for sockmap.insert_moment's answer (measured here or by pktlabd)."""
    if got["error"]:
        return CheckResult(False, f"BPF_SOCK_OPS_{name}: the request did not get through (the "
                                  f"server never answered: a socket in the map too early or "
                                  f"too late hangs its reader): {got['error']}")
    if got["seen"] and got["agree"]:
        return CheckResult(True, f"BPF_SOCK_OPS_{name}: the socket was in the map before its "
                                 "first byte arrived, and the verdict program saw the request "
                                 "(the echo came back): the end of the handshake, before "
                                 "accept() returns, so before any read")
    return CheckResult(False, f"BPF_SOCK_OPS_{name}: the verdict program never saw the request: "
                              "no socket of this connection was in the map when its bytes "
                              "came (that callback does not run for the server's accepted "
                              "socket, or not before its data)")
