"""The whole bench: micro and live in one run, one JSON-able dict (DESIGN.md names its keys),
and how many steps a run has (for progress bars).

    results = bench.run(micro_on=True, live_on=True)    # the JSON-able dict
"""

import os
import time

from .live import live
from .micro import micro
from .report import explain
from .spec import DEFAULTS, SIZES, _check_points, _progress_noop


def plan(points=None, sizes=SIZES, micro_on=True, live_on=True, long=False):
    """How many steps a run has (for progress bars)."""
    cfg = DEFAULTS["long" if long else "short"]
    points = _check_points(points)
    n = cfg["rounds"] if micro_on else 0
    if live_on and points:
        n += len(sizes) * (1 + len(points) + (1 if "tc_egress_parse" in points else 0))
        n += len(cfg["compare"])
    return n


def run(micro_on=True, live_on=True, points=None, sizes=SIZES, long=False, progress=None,
        lab=None):
    """Micro and live benches; returns one JSON-able dict (see DESIGN.md for the keys). lab:
    the live ladder runs there (the caller made it, and removes it) instead of in its own."""
    cfg = DEFAULTS["long" if long else "short"]
    points = _check_points(points)
    total = plan(points, sizes, micro_on, live_on, long)
    progress = progress or _progress_noop
    state = {"done": 0}

    def step(label):
        state["done"] += 1
        progress(state["done"], total, label)

    t0 = time.monotonic()
    out = {"machine": _machine(), "mode": "long" if long else "default"}
    if micro_on:
        out["micro"] = micro(rounds=cfg["rounds"], repeat=cfg["repeat"],
                             progress=lambda d, t, lbl: step(f"micro round {d}/{t}"))
    if live_on and points:
        out["live"] = live(points, sizes, duration=cfg["duration"], warmup=cfg["warmup"],
                           slices=cfg["slices"], compare=cfg["compare"],
                           progress=lambda d, t, lbl: step(lbl), lab=lab)
    out["elapsed_s"] = time.monotonic() - t0
    out["explanation"] = explain(out)
    return out


def _machine():
    import platform
    return {"kernel": platform.release(), "cpus": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0))}

