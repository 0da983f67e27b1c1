#!/usr/bin/env bash
# Start JupyterLab on the lessons (localhost only; the token is printed). Runs as root because
# the lessons load eBPF programs and make network namespaces.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
port=${1:-8888}
[ "$(id -u)" -eq 0 ] || exec sudo -E "$0" "$@"
export PKTLAB_PCAPS=${PKTLAB_PCAPS:-$here/pcaps}
# Learners work on a copy: JupyterLab saves outputs into the notebooks it serves, and the
# committed lessons must stay clean. Existing copies are kept (a learner's work is never
# overwritten); new lessons are added. PKTLAB_WORKDIR picks another place.
work=${PKTLAB_WORKDIR:-$here/work}
mkdir -p "$work"
cp -rn "$here/notebooks/." "$work/"
"$here/.venv/bin/pktlab" lab clean >/dev/null || true
echo "[lab] lessons: $work (a working copy of $here/notebooks)   captures: $PKTLAB_PCAPS"
echo "[lab] open the http://127.0.0.1:$port/lab?token=... address printed below"
exec "$here/.venv/bin/jupyter" lab --ip=127.0.0.1 --port="$port" --no-browser --allow-root \
  --ServerApp.root_dir="$work"
