#!/usr/bin/env bash
# Start JupyterLab on the lessons (localhost only; the token is printed). Runs as root because
# the lessons load eBPF programs and make network namespaces.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
port=${1:-8888}
[ "$(id -u)" -eq 0 ] || exec sudo -E "$0" "$@"
export PKTLAB_PCAPS=${PKTLAB_PCAPS:-$here/pcaps}
# Learners work on a copy: JupyterLab saves outputs into the notebooks it serves, and the
# committed lessons must stay clean. Only the lessons are copied (NN-topic.ipynb): never the
# solutions or the instructor's notes, and JupyterLab serves nothing above the copy. Existing
# copies are kept (a learner's work is never overwritten; `pktlab lessons reset NN` puts one
# back as shipped, a backup kept); new lessons are added. PKTLAB_WORKDIR picks another place.
work=${PKTLAB_WORKDIR:-$here/work}
mkdir -p "$work"
for nb in "$here"/notebooks/[0-9][0-9]-*.ipynb; do
  [ -e "$work/$(basename "$nb")" ] || cp "$nb" "$work/"
done
# a copy made by an older lab.sh took the solutions along: the files that are still as
# shipped go (a learner's own edits stay, and are named)
for d in solutions instructor; do
  [ -d "$work/$d" ] || continue
  for f in "$here/notebooks/$d"/*; do
    [ -f "$work/$d/$(basename "$f")" ] && cmp -s "$f" "$work/$d/$(basename "$f")" &&
      rm -f "$work/$d/$(basename "$f")"
  done
  rmdir "$work/$d" 2>/dev/null ||
    echo "[lab] $work/$d holds files that are not as shipped: left there, served to learners"
done
"$here/.venv/bin/pktlab" lab clean >/dev/null || true
echo "[lab] lessons: $work (a working copy of $here/notebooks)   captures: $PKTLAB_PCAPS"
echo "[lab] open the http://127.0.0.1:$port/lab?token=... address printed below"
exec "$here/.venv/bin/jupyter" lab --ip=127.0.0.1 --port="$port" --no-browser --allow-root \
  --ServerApp.root_dir="$work"
