"""pktlab's own hook programs through the learner loader: where they refuse, at file:line.

    sudo .venv/bin/python tools/learner_refusals.py [--snippets DIR] [--hooks xdp,tc-ingress]

Learner programs are loaded with CAP_BPF and CAP_NET_ADMIN only (pktlab/kernel/loader.py), and
everything a learner builds on (the parser header above all) must load that way too. This
loads bpf_snippets/xdp.bpf.c and tc.bpf.c (with the flags pktlab compiles them with, and the
learner build's own: the loader adds -DPL_NO_PERFMON) through the learner loader, each with its
pktlab headers inlined (so that the verifier's stop maps to a line of the header it is in, not
to the #include), and prints the verifier's complaint at the header's own file:line. The
verifier stops at the first refusal: fix it (in a copy, with --snippets) and run again for the
next. Exit 0 when every program loads.
"""

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def flatten(path, snippets, seen=None):
    """(text lines, [(file, line) of each]) with every "pktlab header" inlined once."""
    seen = set() if seen is None else seen
    lines, origin = [], []
    with open(path) as f:
        for n, line in enumerate(f.read().split("\n"), 1):
            m = _INCLUDE.match(line)
            inc = os.path.join(snippets, m.group(1)) if m else None
            if inc and os.path.exists(inc):
                if inc not in seen:
                    seen.add(inc)
                    sub, where = flatten(inc, snippets, seen)
                    lines += sub
                    origin += where
                continue
            lines.append(line)
            origin.append((os.path.basename(path), n))
    return lines, origin


def check(hook, snippets):
    from pktlab.kernel import bpf, loader, verifier
    from pktlab.kernel.progload import LoadRequest
    src, fn, ptype, flags = bpf.HOOK_PROGRAMS[hook]
    defines = tuple(f[2:] for f in (*flags, *bpf.transport_cflags()))
    lines, origin = flatten(os.path.join(snippets, src), snippets)
    text = "\n".join(lines).encode()
    a = loader.attempt(LoadRequest(text, src, ptype, fn, (), defines))
    report = verifier.judge(a, src, hook, text, fn)
    if report.ok:
        print(f"{hook}: {src} loads through the learner loader")
        return True
    for e in report.errors:
        where = origin[e["line"] - 1] if e.get("line") else (src, None)
        print(f"{hook}: {where[0]}:{where[1]}: {e['source']}")
        print(f"    {e['message']}")
        print(f"    {e['kind']}: {e.get('meaning') or e['explanation']}")
    return False


def main():
    from pktlab import resources
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--snippets", default=resources.snippets_dir(),
                    help="the bpf_snippets directory to read (a copy to try a fix in)")
    ap.add_argument("--hooks", default="xdp,tc-ingress,tc-egress")
    args = ap.parse_args()
    ok = [check(h, os.path.abspath(args.snippets)) for h in args.hooks.split(",")]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
