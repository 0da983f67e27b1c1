"""Lesson 00's exercise: the hooks in the order a packet meets them."""

from ..html import esc
from .common import CheckResult, norm


def check_wire_order(answer):
    """Lesson 00: the hooks in the order a packet meets them, from src to dut (generic XDP)."""
    from ...kernel.hooks import WIRE_ORDER
    got = tuple(norm(a) for a in (answer or ()))
    if got == WIRE_ORDER:
        return CheckResult(True, " → ".join(WIRE_ORDER) + ": lesson 05 shows it on a timeline")
    hints = ["tc-egress runs on the sender (src), before the packet crosses the veth",
             "the kprobe hook sits at the start of __netif_receive_skb_core, where the "
             "netif_receive_skb tracepoint fires",
             "generic XDP runs inside __netif_receive_skb_core, after that tracepoint",
             "TC ingress comes after generic XDP (and after the VLAN untag)"]
    return CheckResult(False, f"{' → '.join(got) or '(no answer)'} is not the order",
                       "<ul>" + "".join(f"<li>{esc(h)}</li>" for h in hints) + "</ul>")
