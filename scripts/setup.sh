#!/usr/bin/env bash
# pktlab setup: everything a fresh Debian/Ubuntu machine needs, and nothing more. Idempotent:
# each step checks first and says "ok" when there is nothing to do, so a second run is fast.
#
#   scripts/setup.sh          the lab: system packages, kernel headers, tracefs, venv, pip install,
#                             the loader's account, the workshop's hub (jupyterhub, and
#                             configurable-http-proxy from npm into .node/)
#   scripts/setup.sh --test   the same plus what the tests need (chromium for the browser test)
#
# Runs as root, or re-executes itself with sudo.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
want_test=0
for a in "$@"; do
  case "$a" in
    --test) want_test=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "setup: unknown option $a (try --help)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then exec sudo -E "$0" "$@"; fi
  echo "setup: pktlab loads eBPF programs and makes network namespaces, so it needs root; run as root or install sudo" >&2
  exit 2
fi

say() { printf '[setup] %s\n' "$*"; }

# 1. System packages -------------------------------------------------------------------------
pkgs=(python3-bpfcc python3-venv bpftool iproute2 iputils-ping tcpreplay netsniff-ng nftables gcc ethtool openssl)
[ "$want_test" = 1 ] && pkgs+=(chromium tshark)   # tshark: the MPTCP oracle of tests/test_walker.py
if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "system packages: ok"
  fi
else
  say "no apt-get here: install bcc's Python bindings, bpftool, iproute2, tcpreplay, nftables, gcc yourself (README: other distributions)"
fi

# 2. Kernel headers for bcc -------------------------------------------------------------------
kver=$(uname -r)
moddir=/lib/modules/$kver
if [ -e "$moddir/build/Makefile" ] || [ -e /sys/kernel/kheaders.tar.xz ]; then
  say "kernel headers: ok"
else
  distro_hdr="linux-headers-$kver"
  if command -v apt-get >/dev/null 2>&1 && apt-cache show "$distro_hdr" >/dev/null 2>&1; then
    say "installing $distro_hdr"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$distro_hdr" >/dev/null
  else
    # The running kernel has no headers package (a custom VM kernel). bcc only needs a header
    # tree for the generic kernel types, so point /lib/modules/$kver at the newest Debian one.
    say "no headers exist for kernel $kver: using the Debian linux-headers-amd64 tree as a fallback"
    say "  (bcc programs read sk_buff offsets from BTF, not from these headers)"
    dpkg-query -W -f='${Status}' linux-headers-amd64 2>/dev/null | grep -q 'install ok installed' || \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-headers-amd64 >/dev/null
    arch_tree=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
    common_tree=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$arch_tree" ] || [ -z "$common_tree" ]; then
      echo "setup: could not find a Debian headers tree under /usr/src" >&2; exit 2
    fi
    mkdir -p "$moddir"
    ln -sfn "$arch_tree" "$moddir/build"
    ln -sfn "$common_tree" "$moddir/source"
    say "  $moddir/build -> $arch_tree"
    say "  $moddir/source -> $common_tree"
  fi
fi

# 3. tracefs (tracepoints and kprobes are found there) ------------------------------------------
if [ -e /sys/kernel/tracing/events ] || [ -e /sys/kernel/debug/tracing/events ]; then
  say "tracefs: ok"
else
  say "mounting tracefs at /sys/kernel/tracing"
  mount -t tracefs tracefs /sys/kernel/tracing
fi

# 4. Virtualenv from the system Python (bcc's bindings live in its dist-packages) ---------------
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import bcc' >/dev/null 2>&1; then
  say "creating $venv (system python, --system-site-packages so bcc imports)"
  rm -rf "$venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
else
  say "venv: ok"
fi

# 5. The package and its Python dependencies ------------------------------------------------------
extras=""
[ "$want_test" = 1 ] && extras="[dev]"
stamp="$venv/.pktlab-installed$extras"
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
  say "pip install -e .$extras"
  log=$(mktemp)
  if ! "$venv/bin/python" -m pip install -q -e "$here$extras" >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; echo "setup: pip install failed (above)" >&2; exit 2
  fi
  rm -f "$log"
  touch "$stamp"
else
  say "python packages: ok"
fi
# 6. The learner loader's account -----------------------------------------------------------------
# Learner programs are compiled and loaded by a fresh worker that runs as this system user, with
# CAP_BPF and CAP_NET_ADMIN only (pktlab/kernel/loader.py); it owns no files and cannot log in.
if id -u pktlab-loader >/dev/null 2>&1; then
  say "loader account: ok"
else
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin --comment "pktlab learner loader" pktlab-loader
  say "created the system account pktlab-loader (the learner loader's uid)"
fi
# 7. The workshop's hub (`pktlab workshop up`, `make workshop`) -------------------------------------
# JupyterHub in the venv; configurable-http-proxy (its proxy, a node program) from npm into the
# project's own .node/ (no global npm install): pktlab/workshop/hubconf.py looks for it there.
if "$venv/bin/python" -c 'import jupyterhub' >/dev/null 2>&1 && [ -x "$venv/bin/jupyterhub-singleuser" ]; then
  say "jupyterhub: ok"
else
  say "pip install jupyterhub (the workshop's hub)"
  log=$(mktemp)
  if ! "$venv/bin/python" -m pip install -q 'jupyterhub>=5,<7' >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; echo "setup: pip install jupyterhub failed (above)" >&2; exit 2
  fi
  rm -f "$log"
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    say "installing nodejs npm (configurable-http-proxy runs on node)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  else
    say "no node/npm here: install nodejs and npm for the workshop's proxy (make lab works without)"
  fi
fi
chp="$here/.node/node_modules/.bin/configurable-http-proxy"
if [ -x "$chp" ]; then
  say "configurable-http-proxy: ok"
elif command -v npm >/dev/null 2>&1; then
  say "npm install configurable-http-proxy into $here/.node"
  log=$(mktemp)
  if ! npm install --prefix "$here/.node" --no-audit --no-fund --loglevel=error \
      'configurable-http-proxy@>=4 <6' >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; echo "setup: npm install configurable-http-proxy failed (above)" >&2; exit 2
  fi
  rm -f "$log"
fi
say "done"
