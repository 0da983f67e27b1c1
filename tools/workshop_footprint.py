#!/usr/bin/env python3
"""What a workshop costs in memory and time on this machine: the figures behind README's
"How big a VM".

    sudo .venv/bin/python tools/workshop_footprint.py [--learners 3] [--json]

A real `pktlab workshop up` on 127.0.0.1 (learner accounts pkt<hex>-N and a state directory of
its own, removed after by `workshop down --remove-learners`, whatever happens), driven as
tests/test_workshop_hub.py drives it. Reported: the time until up answers; the memory (PSS:
shared pages counted once, split between their users) of the hub, the proxy and pktlabd; every
learner's server started at once through the hub's REST API (the time until all are ready) and
its memory idle; one learner's kernel running lesson 01's first cells (the time) and that
learner's memory then; the time of `workshop status` and `workshop down`. The kernel work's
load (labs and replays of many learners at once) is tools/bench_workshop.py's.
"""

import argparse
import json
import os
import pathlib
import pwd
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))


def pss_mb(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except OSError:
            pass
    return round(total / 1024, 1)


def pids_of_uid(uid):
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                if f"Uid:\t{uid}\t" in f.read():
                    out.append(int(pid))
        except OSError:
            pass
    return out


def pgrep(pattern):
    r = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


def measure(learners):
    import test_workshop_hub as T
    out = {"learners": learners}
    t = time.monotonic()
    up = T.Up(pathlib.Path(tempfile.mkdtemp(prefix="pktlab-footprint-")), learners)
    out["up_ready_s"] = round(time.monotonic() - t, 1)
    try:
        rec = json.load(open(os.path.join(up.state, "running.json")))
        out["hub_mb"] = pss_mb(pgrep(f"jupyterhub -f {up.state}"))
        out["proxy_mb"] = pss_mb(pgrep(f"configurable-http-proxy --ip 127.0.0.1 --port {up.port} "))
        out["daemon_mb"] = pss_mb([rec["daemon_pid"]])
        t = time.monotonic()
        T._start_servers(up, up.names)
        out["servers_ready_s"] = round(time.monotonic() - t, 1)
        out["server_idle_mb"] = [pss_mb(pids_of_uid(pwd.getpwnam(n).pw_uid)) for n in up.names]
        me = up.names[0]
        kid = T._start_kernel(up, me)
        nb = json.load(open(os.path.join(pwd.getpwnam(me).pw_dir, "lessons", T.LESSON)))
        t = time.monotonic()
        for code in ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"][:3]:
            _, error = T._execute(up, me, kid, code)
            if error:
                raise SystemExit(f"lesson 01's cell failed: {error}")
        out["lesson01_first_cells_s"] = round(time.monotonic() - t, 1)
        out["server_with_kernel_mb"] = pss_mb(pids_of_uid(pwd.getpwnam(me).pw_uid))
        t = time.monotonic()
        T._pktlab(up.env, "status", "--json")
        out["status_s"] = round(time.monotonic() - t, 2)
    finally:
        t = time.monotonic()
        r = up.down("--remove-learners")
        out["down_s"] = round(time.monotonic() - t, 1)
        out["leftovers"] = json.loads(r.stdout)["leftovers"] if r.returncode in (0, 1) else r.stderr
        up.finish()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--learners", type=int, default=3)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("workshop_footprint: needs root (it runs `pktlab workshop up`)")
    out = measure(a.learners)
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:<26} {v}")
    return 0 if out["leftovers"] == [] else 1


if __name__ == "__main__":
    sys.exit(main())
