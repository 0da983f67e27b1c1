#!/usr/bin/env python3
"""Real learner servers under load: a real `pktlab workshop up`, N learners' servers started
through the hub's REST API, each driven through one lesson over its kernel's websocket (as
JupyterLab drives it), pktlabd behind them (issue 16, item 4).

    sudo .venv/bin/python tools/bench_hub_lesson.py [--learners 3] [--lesson 05] [--json]

In one run: the workshop is brought up with N learner accounts (a fresh prefix, removed after
with `workshop down --remove-learners`, whatever happens); every learner's server is started
(POST /hub/api/users/NAME/server) and a kernel in it; then

1. the first learner runs every code cell of the lesson alone (the others' servers idle): the
   time of the lesson with nobody else working;
2. every learner runs the lesson at once, each in a fresh kernel of theirs (threads, one per
   learner, started together): each learner's time, its ratio to the time alone.

Reported: per learner the cells that raised (none expected), the cells whose output says
root is needed (none expected), the time and its ratio to the one-learner time, the labs the
daemon held at the peak (a lesson's labs are the learner's own), and memory: each learner's
processes (server + kernel, PSS), the hub, the proxy and pktlabd (main + sessions). Exit 0 when
no cell of any learner raised or asked for root.
"""

import argparse
import json
import os
import pathlib
import pwd
import statistics
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))
from workshop_footprint import pids_of_uid, pss_mb  # noqa: E402  (tools/, beside this)


def lesson_cells(nn):
    import nbformat
    [path] = sorted(pathlib.Path(REPO, "notebooks").glob(f"{nn}-*.ipynb"))
    nb = nbformat.read(str(path), as_version=4)
    return path.name, [c.source for c in nb.cells if c.cell_type == "code"]


def drive(T, up, user, cells):
    """Every cell in a fresh kernel of `user`'s: {"s", "errors", "says_root"}."""
    kid = T._start_kernel(up, user)
    errors, root = [], []
    t0 = time.monotonic()
    for i, code in enumerate(cells):
        out, error = T._execute(up, user, kid, code, timeout=600)
        if error:
            errors.append([i, error[:200]])
        if "needs root" in out or "need root" in out:
            root.append(i)
    took = time.monotonic() - t0
    T.requests.delete(f"{up.url}user/{user}/api/kernels/{kid}", timeout=60,
                      headers={"Authorization": f"token {up.token}"})
    return {"user": user, "s": round(took, 2), "errors": errors, "says_root": root}


def pids_named(T, word):
    return [pid for pid, _cmd in T._processes_naming(word)]


def bench(args):
    import test_workshop_hub as T
    name, cells = lesson_cells(args.lesson)
    up = T.Up(pathlib.Path(tempfile.mkdtemp(prefix="pktlab-bench-hub-")), args.learners)
    try:
        t0 = time.monotonic()
        T._start_servers(up, up.names)
        started = time.monotonic() - t0
        alone = drive(T, up, up.names[0], cells)
        peak = {"labs": 0}
        stop = threading.Event()

        def watch():
            from pktlab.workshop.labs import daemon_labs
            while not stop.is_set():
                peak["labs"] = max(peak["labs"], len(daemon_labs()))
                time.sleep(0.25)
        results = [None] * len(up.names)

        def one(i, user):
            results[i] = drive(T, up, user, cells)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        threads = [threading.Thread(target=one, args=(i, u)) for i, u in enumerate(up.names)]
        for t in threads:
            t.start()
        mem_mid = {u: pss_mb(pids_of_uid(pwd.getpwnam(u).pw_uid)) for u in up.names}
        for t in threads:
            t.join()
        stop.set()
        memory = {"learners_mb": mem_mid,
                  "hub_mb": pss_mb(pids_named(T, "jupyterhub -f")),
                  "proxy_mb": pss_mb(pids_named(T, "configurable-http-proxy")),
                  "pktlabd_mb": pss_mb(pids_named(T, "pktlabd --socket " + up.sock))}
        for r in results:
            r["ratio"] = round(r["s"] / alone["s"], 2) if alone["s"] else None
        times = [r["s"] for r in results]
        return {"lesson": name, "cells": len(cells), "learners": args.learners,
                "servers_started_s": round(started, 1), "alone": alone, "together": results,
                "p50_s": statistics.median(times), "max_s": max(times),
                "p50_ratio": round(statistics.median(times) / alone["s"], 2),
                "peak_daemon_labs": peak["labs"], "memory": memory,
                "ok": not any(r["errors"] or r["says_root"] for r in [alone, *results])}
    finally:
        up.finish()


def text(doc):
    lines = [f"lesson {doc['lesson']} ({doc['cells']} code cells), {doc['learners']} learners' "
             f"servers through the hub (started in {doc['servers_started_s']} s)",
             f"  alone: {doc['alone']['user']} {doc['alone']['s']} s"]
    for r in doc["together"]:
        lines.append(f"  together: {r['user']} {r['s']} s (x{r['ratio']}), "
                     f"{len(r['errors'])} errors, {len(r['says_root'])} cells say root")
    m = doc["memory"]
    lines.append(f"  p50 {doc['p50_s']} s (x{doc['p50_ratio']} the time alone); daemon labs at "
                 f"the peak {doc['peak_daemon_labs']}")
    lines.append("  memory (PSS, MB): learners " + ", ".join(f"{u} {v}" for u, v in
                                                            m["learners_mb"].items())
                 + f"; hub {m['hub_mb']}, proxy {m['proxy_mb']}, pktlabd {m['pktlabd_mb']}")
    for r in [doc["alone"], *doc["together"]]:
        for i, e in r["errors"]:
            lines.append(f"  {r['user']} cell {i}: {e}")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--learners", type=int, default=3)
    p.add_argument("--lesson", default="05", help="the lesson's number (default 05)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_hub_lesson: needs root (it runs `pktlab workshop up`)")
    if not 1 <= a.learners <= 30:
        raise SystemExit("bench_hub_lesson: --learners 1..30")
    doc = bench(a)
    print(json.dumps(doc, indent=2) if a.json else text(doc))
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
