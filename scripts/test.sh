#!/usr/bin/env bash
# Every test: unit, kernel (real programs, real namespaces), notebooks, browser.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# strict skips in CI (tests/conftest.py): a kernel test may skip only where the doctor proved
# its feature missing on this machine; set before sudo -E so that it is carried over
if [ -n "${CI:-}" ]; then export PKTLAB_STRICT=1; fi
[ "$(id -u)" -eq 0 ] || exec sudo -E "$0" "$@"
cd "$here"
mkdir -p test-output
"$here/.venv/bin/pktlab" lab clean >/dev/null || true
set +e
"$here/.venv/bin/python" -m pytest -ra "$@"
rc=$?
set -e
# what the tests left behind (they must leave nothing): shown, and a failure if any
left=$(ip netns list | awk '{print $1}' | grep -E '^[a-z][a-z0-9]*[0-9a-f]{6}-(src|dut)$' || true)
if [ -n "$left" ]; then
  echo "tests left lab namespaces behind: $left" >&2
  "$here/.venv/bin/pktlab" lab clean --all >/dev/null || true
  [ $rc -eq 0 ] && rc=1
fi
exit $rc
