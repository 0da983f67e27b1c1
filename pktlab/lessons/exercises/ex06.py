"""Lesson 06's exercises: the cheapest program in the learner's bench results, and where
netfilter's drop point sits on a packet's way through the receive path."""

from ..html import NotHere
from .common import CheckResult, guarded, norm


def _results(results):
    """The results dict of a bench run: the panel's latest when given the panel's results."""
    latest = getattr(results, "latest", None)
    return latest() if callable(latest) else results


@guarded
def check_cheapest_hook(answer, results):
    """Lesson 06: the program that costs least per packet in these bench results (the micro
    table). Wrong answers say how to read the table, never its figures."""
    micro = (_results(results) or {}).get("micro") or {}
    costs = {k: v.get("ns_per_pkt") for k, v in micro.items()
             if isinstance(v, dict) and v.get("ns_per_pkt") is not None}
    if not costs:
        return NotHere("checking the cheapest hook", "no micro-benchmark results to read")
    best = min(costs, key=costs.get)
    a = norm(answer)
    if a == norm(best):
        return CheckResult(True, f"{best}: {costs[best]:.0f} ns per packet in these results: "
                                 "an empty program plus nothing it must write")
    if a not in {norm(k) for k in costs}:
        return CheckResult(False, f"{answer!r}: give a program's name as the panel's table "
                                  "of program costs writes it (its first column)")
    return CheckResult(False, f"{answer!r} is not the cheapest in your results: compare the "
                              "ns per packet of every program, the empty ones included")


#: the drop points on a packet's way in, earliest first (pktlab.bench.spec.POINTS' order)
def _drop_ladder():
    from ...bench.spec import DROP_POINTS, POINTS
    return [(p, POINTS[p][1]) for p in DROP_POINTS]


def _point(text):
    """A learner's name for a drop point (its key or its label, any case) -> the key."""
    t = norm(text)
    for key, label in _drop_ladder():
        if t in (norm(key), norm(label)):
            return key
    return None


@guarded
def check_netfilter_place(before, after):
    """Lesson 06, exercise 2: the drop points right before and right after netfilter's on a
    packet's way through the receive path (names as the panel writes them, or their keys)."""
    ladder = [k for k, _ in _drop_ladder()]
    i = ladder.index("nft_drop")
    want = (ladder[i - 1], ladder[i + 1])
    got = (_point(before), _point(after))
    labels = dict(_drop_ladder())
    if None in got:
        return CheckResult(False, "name two of the panel's drop points, as its checkboxes "
                                  "write them: " + ", ".join(labels.values()))
    if got == want:
        return CheckResult(True, f"{labels[want[0]]}, then netfilter, then "
                                 f"{labels[want[1]]}: the nft netdev ingress hook runs in "
                                 "__netif_receive_skb_core right after TC ingress, on the skb, "
                                 "before the IP layer and the socket lookup")
    hints = []
    if got[0] != want[0]:
        hints.append("the point before it: netfilter's netdev ingress hook gets an skb, in "
                     "__netif_receive_skb_core; which other drop point runs there, just before?")
    if got[1] != want[1]:
        hints.append("the point after it: what must still happen to a packet that netfilter "
                     "lets through before the application can read it?")
    return CheckResult(False, "not yet: " + "; ".join(hints))
