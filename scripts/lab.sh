#!/usr/bin/env bash
# Start JupyterLab on the lessons (localhost only; the token is printed). JupyterLab, its
# kernels and terminals run as you (SUDO_USER), never as root; started as root itself, as
# pktlab's own unprivileged account pktlab-lab. The kernel work (labs, hooks, learners'
# programs) goes through a pktlabd of this lab alone (`pktlab workshop solo`: root asked once,
# with sudo, to start it). Ctrl-C ends everything.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
port=${1:-8888}
[ "$(id -u)" -eq 0 ] || exec sudo -E "$0" "$@"
export PKTLAB_PCAPS=${PKTLAB_PCAPS:-$here/pcaps}
# a copy made by an older lab.sh (as root) took the solutions along: the files that are still
# as shipped go (a learner's own edits stay, and are named); never through a link
work=${PKTLAB_WORKDIR:-$here/work}
for d in solutions instructor; do
  [ -d "$work/$d" ] && [ ! -L "$work/$d" ] || continue
  for f in "$here/notebooks/$d"/*; do
    [ -f "$work/$d/$(basename "$f")" ] && cmp -s "$f" "$work/$d/$(basename "$f")" &&
      rm -f "$work/$d/$(basename "$f")"
  done
  rmdir "$work/$d" 2>/dev/null ||
    echo "[lab] $work/$d holds files that are not as shipped: left there" >&2
done
"$here/.venv/bin/pktlab" lab clean >/dev/null || true
exec "$here/.venv/bin/pktlab" workshop solo --port "$port"
