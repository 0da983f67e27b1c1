"""Lesson 05's exercises: the order of the dut-side hooks with native XDP (measured in a lab of
its own), and which leg of the path costs more (measured on the learner's lab: lab.gaps())."""

from ..here import HOOKS, hook_available, in_lab_thread, why_not
from ..html import NotHere, esc
from ..live import LiveLab
from .common import CheckResult, guarded, norm, sample_frame

from ..results import LEGS


@guarded
def check_native_xdp_order(answer):
    """Lesson 05: with native XDP, the order in which the dut-side hooks see a packet.

    Measured, not looked up: a throwaway lab with XDP in native mode follows one frame."""
    try:
        got = [norm(a) for a in (answer or ())]
    except TypeError:
        got = [norm(answer)]
    if "tc-egress" in got:
        return CheckResult(False, "leave tc-egress out: it runs on src, before the packet "
                                  "crosses; the question is the order of the hooks on dut")
    return in_lab_thread(_check_native_xdp_order, got)


def _check_native_xdp_order(got):
    hooks = [h for h in HOOKS if hook_available(h)]
    if "xdp" not in hooks:
        return NotHere("checking the native XDP order", why_not("xdp"))
    frame = sample_frame()
    lab = LiveLab(hooks, xdp_mode="native")     # the checker's own lab, closed below
    try:
        if not lab:
            return NotHere("checking the native XDP order", lab.why())
        belt = lab.follow(frame)
        order = [h for h in belt.order() if h != "tc-egress"]
    finally:
        lab.close()
    if got == order:
        return CheckResult(True, "measured: " + " → ".join(order) + ". Native XDP runs in the "
                           "veth driver's NAPI poll, before the stack (and its tracepoint) "
                           "gets an skb")
    if sorted(got) != sorted(order):
        return CheckResult(False, f"{' → '.join(got) or '(no answer)'}: give the dut-side hooks "
                                  f"attached here, each once ({', '.join(sorted(order))})")
    return CheckResult(False, f"{' → '.join(got)}: not what the lab measured (open a lab with "
                              "xdp_mode='native' and follow a packet)")


@guarded
def check_longer_leg(answer, lab):
    """Lesson 05, exercise 2: which leg is longer, tc-egress → xdp or xdp → tc-ingress.
    Measured on the learner's lab (20 packets, the medians)."""
    need = {"tc-egress", "xdp", "tc-ingress"}
    if not lab:
        return NotHere("checking the legs", lab.why() if hasattr(lab, "why") else "no lab")
    if not need <= set(lab.hooks):
        return NotHere("checking the legs", "the lab needs tc-egress, xdp and tc-ingress "
                       f"attached (it has {', '.join(lab.hooks)})")
    g = lab.gaps()
    med = {leg: g.median(*leg) for leg in LEGS}
    if None in med.values():
        return NotHere("checking the legs", "a hook recorded nothing for some packets")
    longer = max(LEGS, key=lambda leg: med[leg])
    a = [norm(x) for x in str(answer or "").replace("→", "->").split("->")]
    if tuple(a) not in LEGS:
        return CheckResult(False, f"{answer!r}: write the leg as \"tc-egress -> xdp\" or "
                                  "\"xdp -> tc-ingress\"")
    if tuple(a) == longer:
        return CheckResult(True, f"measured on your lab: {' → '.join(longer)} takes "
                                 f"{med[longer]:.1f} µs (median of 20), the other "
                                 f"{min(med.values()):.1f} µs. Crossing the veth hands the "
                                 "skb to a queue and a softirq; the dut side is a few calls "
                                 "in the same softirq")
    return CheckResult(False, f"{' → '.join(a)}: not the longer leg on your lab: "
                              "look at the medians of lab.gaps()",
                       f"<p class='pll-note'>{esc('(one packet can mislead: compare medians)')}"
                       "</p>")
