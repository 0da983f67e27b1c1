"""Lesson 05's exercise: the order of the dut-side hooks with native XDP, measured in a lab."""

from ..here import HOOKS, hook_available, in_lab_thread, why_not
from ..html import NotHere
from ..live import open_lab
from .common import CheckResult, norm, sample_frame


def check_native_xdp_order(answer):
    """Lesson 05: with native XDP, the order in which the dut-side hooks see a packet.

    Measured, not looked up: a throwaway lab with XDP in native mode follows one frame."""
    return in_lab_thread(_check_native_xdp_order, answer)


def _check_native_xdp_order(answer):
    hooks = [h for h in HOOKS if hook_available(h)]
    if "xdp" not in hooks:
        return NotHere("checking the native XDP order", why_not("xdp"))
    frame = sample_frame()
    lab = open_lab(hooks, xdp_mode="native")
    try:
        if not lab:
            return NotHere("checking the native XDP order", lab.why())
        belt = lab.follow(frame)
        order = [h for h in belt.order() if h != "tc-egress"]
    finally:
        lab.close()
    got = [norm(a) for a in (answer or ())]
    if got == order:
        return CheckResult(True, "measured: " + " → ".join(order) + ". Native XDP runs in the "
                           "veth driver's NAPI poll, before the stack (and its tracepoint) "
                           "gets an skb")
    return CheckResult(False, f"{' → '.join(got) or '(no answer)'}: not what the lab measured "
                              "(open a lab with xdp_mode='native' and follow a packet)")
