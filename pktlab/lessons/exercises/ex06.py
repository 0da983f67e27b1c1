"""Lesson 06's exercise: the cheapest hook, read from the bench's results."""

from ..html import NotHere
from .common import CheckResult, norm


def check_cheapest_hook(answer, results):
    """Lesson 06: the hook whose program costs least per packet in these bench results."""
    micro = (results or {}).get("micro") or {}
    costs = {k: v.get("ns_per_pkt") for k, v in micro.items() if v.get("ns_per_pkt") is not None}
    if not costs:
        return NotHere("checking the cheapest hook", "no micro-benchmark results to read")
    best = min(costs, key=costs.get)
    if norm(answer) == norm(best):
        return CheckResult(True, f"{best}: {costs[best]:.0f} ns per packet in these results")
    return CheckResult(False, f"{answer!r}: read the ns_per_pkt column again "
                              f"({', '.join(f'{k} {v:.0f}' for k, v in sorted(costs.items()))})")
