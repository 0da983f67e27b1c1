"""Lesson 00's exercises: the hooks in the order a packet meets them, and what a lab attaches
on a machine without the kprobe hook (PKTLAB_PRETEND_MISSING=kprobe)."""

from ..html import esc
from .common import CheckResult, guarded, norm

#: one hint per kind of mistake: each says where to look, none says the order
_ORDER_HINTS = (
    (lambda got: got.index("tc-egress") != 0,
     "tc-egress sits on src's veth, the side that sends: can any hook on dut see the packet "
     "before src has sent it?"),
    (lambda got: got.index("xdp") < got.index("kprobe"),
     "look at the mechanism table: where in __netif_receive_skb_core does the kprobe hook's "
     "mechanism fire, and where does generic XDP run (do_xdp_generic)?"),
    (lambda got: got.index("tc-ingress") < got.index("xdp"),
     "TC ingress works on the skb the stack has prepared (the VLAN tag already moved to "
     "metadata); generic XDP sees the packet as it arrived. Which comes first?"),
    (lambda got: got.index("tc-ingress") < got.index("kprobe"),
     "the kprobe hook fires as __netif_receive_skb_core begins; TC ingress runs inside it, "
     "later"),
)


@guarded
def check_wire_order(answer):
    """Lesson 00: the hooks in the order a packet meets them, from src to dut (generic XDP).
    Wrong answers get a hint about the first mistake, never the order."""
    from ...kernel.hooks import WIRE_ORDER
    try:
        got = [norm(a) for a in (answer or ())]
    except TypeError:
        got = [norm(answer)]
    if tuple(got) == WIRE_ORDER:
        return CheckResult(True, " → ".join(WIRE_ORDER) + ": lesson 05 shows it on a timeline")
    shown = " → ".join(got) or "(no answer)"
    if sorted(got) != sorted(WIRE_ORDER):
        return CheckResult(False, f"{shown}: give the four hooks, each once, named as in the "
                                  "hooks table (kprobe, tc-egress, tc-ingress, xdp)")
    right = sum(a == b for a, b in zip(got, WIRE_ORDER))
    hint = next(h for test, h in _ORDER_HINTS if test(got))
    return CheckResult(False, f"{shown}: not the order ({right} of 4 in their place)",
                       f"<p class='pll-note'>hint: {esc(hint)}</p>")


@guarded
def check_pretend(answer):
    """Lesson 00, exercise 2: the hooks pl.open_lab("all") attaches while the notebook pretends
    the kprobe hook is missing (PKTLAB_PRETEND_MISSING=kprobe). The answer follows the doctor's
    report of this machine: every hook it proved, but kprobe."""
    from ..here import HOOKS, doctor
    rep = doctor()
    want = {h for h in HOOKS if h != "kprobe" and (rep["hooks"][h]["available"] or
                                                   "pretending" in rep["hooks"][h]["why"])}
    try:
        got = {norm(a) for a in (answer or ())}
    except TypeError:
        got = {norm(answer)}
    if got == want:
        return CheckResult(True, f"{', '.join(sorted(want))}: a lab attaches only the hooks "
                                 "the doctor proved, and says why the others are missing. "
                                 "Set PKTLAB_PRETEND_MISSING back to nothing and refresh the "
                                 "doctor before the next lesson")
    if "kprobe" in got:
        return CheckResult(False, f"{', '.join(sorted(got))}: while the kprobe hook is "
                                  "'missing', would a lab attach it? Look at the hooks table "
                                  "with the variable set")
    return CheckResult(False, f"{', '.join(sorted(got)) or '(no answer)'}: not the hooks a lab "
                              "would attach: which hooks does the hooks table say are "
                              "available, with the variable set?")
