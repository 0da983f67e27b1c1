#!/usr/bin/env python3
"""Every lesson executed top to bottom as a workshop learner: what runs through pktlabd, what
still needs root. The evidence for whether `make lab` can run JupyterLab as an unprivileged
user yet (issue 16, item 2).

    sudo .venv/bin/python tools/lessons_as_learner.py [NN ...] [--json]

A real `pktlab workshop up` with one learner (pkt<hex>-1, removed after with `workshop down
--remove-learners`, whatever happens), then each lesson of the learner's ~/lessons executed by
nbclient as that learner (their uid, their groups: the daemon's socket), errors allowed. For
each lesson: its code cells, the cells that raised (name, message), the cells whose output
says root is needed, and the time. Exit 0 when every lesson ran with no error and no cell
asked for root.
"""

import argparse
import json
import os
import pathlib
import pwd
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

_AS_LEARNER = r"""
import glob, json, os, sys, time
import nbformat
from nbclient import NotebookClient
want = sys.argv[1:]
for path in sorted(glob.glob(os.path.expanduser("~/lessons/[0-9][0-9]-*.ipynb"))):
    name = os.path.basename(path)
    if want and name[:2] not in want:
        continue
    nb = nbformat.read(path, as_version=4)
    t = time.monotonic()
    try:
        NotebookClient(nb, timeout=300, allow_errors=True, kernel_name="python3",
                       resources={"metadata": {"path": os.path.dirname(path)}}).execute()
    except Exception as e:
        print(json.dumps({"lesson": name, "fatal": f"{type(e).__name__}: {e}"[:300]}), flush=True)
        continue
    errors, root, n = [], [], 0
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        n += 1
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                errors.append([i, o["ename"], o["evalue"][:200]])
            text = json.dumps(o.get("data", {})) + o.get("text", "")
            if "needs root" in text or "need root" in text:
                root.append(i)
    print(json.dumps({"lesson": name, "code_cells": n, "errors": errors,
                      "says_root": sorted(set(root)), "s": round(time.monotonic() - t, 1)}),
          flush=True)
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("lessons", nargs="*", metavar="NN")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("lessons_as_learner: needs root (it runs `pktlab workshop up`)")
    import test_workshop_hub as T
    up = T.Up(pathlib.Path(tempfile.mkdtemp(prefix="pktlab-as-learner-")), 1)
    try:
        pw = pwd.getpwnam(up.names[0])
        env = {"HOME": pw.pw_dir, "USER": pw.pw_name, "PATH": f"{REPO}/.venv/bin:/usr/bin:/bin",
               "PKTLAB_SOCKET": up.sock, "PKTLAB_WORKDIR": os.path.join(pw.pw_dir, "lessons"),
               "PKTLAB_PCAPS": os.path.join(REPO, "pcaps")}
        r = subprocess.run([os.path.join(REPO, ".venv", "bin", "python"), "-c", _AS_LEARNER,
                            *a.lessons], user=pw.pw_uid, group=pw.pw_gid,
                           extra_groups=os.getgrouplist(pw.pw_name, pw.pw_gid), env=env,
                           cwd=pw.pw_dir, capture_output=True, text=True, timeout=3600)
        rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    finally:
        up.finish()
    if a.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            if "fatal" in row:
                print(f"{row['lesson']:<28} FATAL {row['fatal']}")
                continue
            print(f"{row['lesson']:<28} {row['code_cells']:>3} cells  {len(row['errors'])} "
                  f"errors  {len(row['says_root'])} say root  {row['s']} s")
            for i, name, msg in row["errors"]:
                print(f"    cell {i}: {name}: {msg}")
    ok = rows and all(not r.get("fatal") and not r["errors"] and not r["says_root"]
                      for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
