"""`pktlab bench [--json] [--plot FILE] [--long] [--only ...]`: the command's work (the CLI
checks its arguments and root, then calls cli() here, which returns the exit status).
"""

import json
import math
import os
import sys

from .chart import plot
from .report import failures, format_text
from .spec import POINTS, SIZES
from .suite import plan, run


def parse_only(only):
    """--only: 'micro', 'live', or a comma list of live points (may include 'micro')."""
    if not only:
        return True, True, None
    items = [i.strip().replace("-", "_") for i in only.split(",") if i.strip()]
    micro_on = "micro" in items
    live_all = "live" in items
    pts = [i for i in items if i not in ("micro", "live")]
    bad = [p for p in pts if p not in POINTS]
    if bad:
        raise ValueError(f"--only {only}: {', '.join(bad)} is not a part of the bench; use "
                         f"micro, live, or live points: {', '.join(POINTS)}")
    return micro_on, bool(live_all or pts), (pts or None)


def cli(args, measure=None):
    """`pktlab bench [--json] [--plot FILE] [--long] [--only ...]`; returns the exit status.

    measure: where the measuring happens when not here, measure(micro_on, live_on, points,
    long) -> the results dict (pktlab.cli.remote's, through the workshop daemon: it answers
    once, at the end, so there is no progress bar, only a line saying so)."""
    micro_on, live_on, points = parse_only(getattr(args, "only", None))
    if args.plot:
        d = os.path.dirname(os.path.abspath(args.plot))
        if not os.path.isdir(d):
            raise FileNotFoundError(f"--plot {args.plot}: directory {d} does not exist")
    if measure is not None:
        if sys.stderr.isatty():
            print("pktlab: bench: measuring in pktlabd (the workshop daemon), one bench at a "
                  "time on this machine; the figures come when it is done", file=sys.stderr)
        results = measure(micro_on, live_on, points, args.long)
    else:
        results = _measure_here(micro_on, live_on, points, args.long)
    if args.plot:
        fig = plot(results)
        fig.savefig(args.plot, dpi=110)
        results["plot"] = args.plot
    if args.json:
        print(json.dumps(results, indent=2, default=_json_default))
    else:
        print(format_text(results))
        if args.plot:
            print(f"\nchart written to {args.plot}")
    fails = failures(results)
    if fails:
        for f in fails:
            print(f"pktlab: bench: {f}", file=sys.stderr)
        return 1
    return 0


def _measure_here(micro_on, live_on, points, long):
    bar = None
    if sys.stderr.isatty():
        from ..progress import TextBar
        bar = TextBar(plan(points, SIZES, micro_on, live_on, long), label="bench")

    def progress(done, total, label):
        if bar is not None:
            bar.label = f"bench {label[:24]:<24}"
            bar.update(done)
    try:
        return run(micro_on=micro_on, live_on=live_on, points=points, long=long,
                   progress=progress)
    finally:
        if bar:
            bar.close()


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, float) and math.isnan(o):
        return None
    raise TypeError(f"not JSON-serializable: {type(o).__name__}")
