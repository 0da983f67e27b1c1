"""The `pktlab` command. A stable contract (DESIGN.md, "Command line"):

    pktlab doctor [--json]
    pktlab cast PCAP [--json]
    pktlab replay PCAP [--hooks ...] [--pps N | --mbps N | --topspeed] [--loop N] [--limit N]
                       [--step] [--json]
    pktlab bench [--json] [--plot FILE]
    pktlab lab up|down|status|clean [--json]

--json prints one JSON document on stdout and nothing else there. Exit status: 0 success,
1 the run worked but found disagreements or lost records, 2 bad input or environment, 130
interrupted (Ctrl-C or SIGTERM: everything the run made has been removed), 141 the reader of
stdout went away (`pktlab cast x.pcap | head`: output stops quietly, as a tool killed by
SIGPIPE would, but after the run's own cleanup).

Bad input is said in one line on stderr (the object, the cause, the next step) and exits 2
before anything is built: arguments are checked by their types, and `replay` reads its capture
once (capture.survey) before any lab exists. A capture with no readable frame, or none a lab
can send, is refused. A capture damaged part-way is replayed up to the damage: useful for an
instructor's half-saved capture, and said on stderr before the replay, in the text output's
first line and in --json's "capture" ({"frames", "complete": false, "damage"}).
"""

import os
import re
import signal
import sys

from ..errors import EnvironmentProblem, PktlabError

EXIT_OK, EXIT_FOUND, EXIT_BAD = 0, 1, 2
EXIT_INTERRUPTED = 128 + signal.SIGINT        # 130: what a shell reports for Ctrl-C
EXIT_PIPE = 128 + signal.SIGPIPE             # 141: what a shell reports for a closed pipe
#: every lab carries IPv6, which needs an MTU of 1280; pktlab labs stop at jumbo frames
MTU_MIN, MTU_MAX = 1280, 9000

# line breaks of any kind (str.splitlines' set) and other control characters: a message is one
# line on stderr whatever a file name holds
_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


def _one_line(text):
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


_said = False            # this run has said its one line on stderr


def _err(msg, prefix="pktlab: "):
    global _said
    try:
        print(prefix + _one_line(msg), file=sys.stderr, flush=True)
        _said = True
    except (OSError, ValueError, AttributeError):   # stderr closed or gone: nothing to say it on
        pass


class BadArguments(Exception):
    """Arguments argparse refused: says so as `<prog>: <what>; see `<prog> --help``."""


def _need_root(what):
    if os.geteuid() != 0:
        raise EnvironmentProblem(f"{what} needs root (eBPF programs and network namespaces); "
                                 "run it with sudo, e.g. `sudo .venv/bin/pktlab ...`; "
                                 "`pktlab cast` works without root")


# --- argument types: a hostile argument is refused by argparse, before anything runs -----------

def _argtype(fn):
    """Wrap a checker raising ValueError into an argparse type (argparse then names the
    option: "argument --pps: inf: ...")."""
    def check(text):
        import argparse
        try:
            return fn(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    check.__name__ = fn.__name__
    return check


@_argtype
def rate(text):
    """--pps / --mbps: a finite number above 0."""
    import math
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number (e.g. 1000)") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{text}: a rate must be positive and finite (e.g. 1000); "
                         "for as fast as the lab takes it, use --topspeed")
    return v


@_argtype
def count(text):
    """--loop / --limit: a whole number, at least 1."""
    try:
        v = int(text, 10)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise ValueError(f"{v}: must be at least 1 (leave the option out for all of them)")
    return v


@_argtype
def mtu(text):
    """--mtu: what a lab can have: IPv6 needs 1280, pktlab labs go up to 9000."""
    try:
        v = int(text, 10)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if v < MTU_MIN:
        raise ValueError(f"{v}: IPv6 needs an MTU of at least {MTU_MIN} and every lab carries "
                         f"IPv6; use {MTU_MIN}..{MTU_MAX}")
    if v > MTU_MAX:
        raise ValueError(f"{v}: above {MTU_MAX}, the largest MTU a pktlab lab takes (jumbo "
                         f"frames); use {MTU_MIN}..{MTU_MAX}")
    return v


def _check_rewrite(args):
    """--dst-mac / --dst-ip4 / --dst-ip6 must parse now, not after the lab is built."""
    from ..packet.rewrite import Rewriter
    for opt, key in (("--dst-mac", "dst_mac"), ("--dst-ip4", "dst_ip4"), ("--dst-ip6", "dst_ip6")):
        val = getattr(args, key)
        if val and val != "auto":
            try:
                Rewriter(**{key: val})
            except ValueError as e:
                raise ValueError(f"{opt} {val}: {e}") from None


# --- commands -----------------------------------------------------------------------------------

def cmd_doctor(args):
    import json
    from .. import doctor
    report, status = doctor.run()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(doctor.format_text(report))
    return status


def cmd_cast(args):
    from . import cast
    return cast.run(args.pcap, as_json=args.json, out=sys.stdout)


def check_replay(args):
    """Everything about a replay's input, before any lab: the arguments that need more than a
    type, then the capture itself (read once, capture.survey). Returns the Survey."""
    from ..packet.capture import CaptureError, survey
    from ..kernel.hooks import parse_hooks
    parse_hooks(args.hooks)
    _check_rewrite(args)
    s = survey(args.pcap, limit=args.limit, mtu=args.mtu)
    why = s.refusal()
    if why:
        raise CaptureError(why)
    return s


def cmd_replay(args):
    import json
    from ..replay import run as rp
    checked = check_replay(args)
    _need_root("pktlab replay")
    if checked.note():
        _err(f"note: {checked.note()}")
    if args.step:
        from ..replay.stepper import step_cli
        return step_cli(args)
    progress = None
    bar = None
    if not args.json and sys.stderr.isatty():
        from ..progress import TextBar
        bar = TextBar(checked.frames * args.loop, label="replay")
        progress = bar.update
    try:
        result = rp.replay(args.pcap, hooks=args.hooks, pps=args.pps, mbps=args.mbps,
                           loop=args.loop, limit=args.limit, rewrite=rewrite_options(args),
                           xdp_mode=args.xdp_mode, progress=progress, mtu=args.mtu)
    finally:
        if bar:
            bar.close()        # the bar's line ends before anything else is said on stderr
    doc = result.summary()
    doc["capture"] = checked.to_dict()
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(format_replay(doc))
    return EXIT_OK if result.ok else EXIT_FOUND


def rewrite_options(args):
    """--rewrite (all three 'auto') and --dst-mac/--dst-ip4/--dst-ip6 -> Replayer's dict."""
    opts = {k: getattr(args, k) for k in ("dst_mac", "dst_ip4", "dst_ip6")}
    if args.rewrite:
        opts = {k: v or "auto" for k, v in opts.items()}
    return opts if any(opts.values()) else None


def format_replay(doc):
    cap = doc.get("capture") or {}
    partial = ("" if cap.get("complete", True) else
               " (only the readable part: the capture is damaged, see 'capture problem' below)")
    lines = [f"replayed {doc['packets']} frames from {doc['source']} "
             f"({doc['sent']} sent) in {doc['elapsed_s']:.3f}s: {doc['pps']:.0f} packets/s"
             + (f" (requested {doc['requested_pps']})" if doc.get("requested_pps") else "")
             + partial, ""]
    head = f"  {'hook':<11} {'via':<16} {'seen':>7} {'agree':>7} {'explained':>9} " \
           f"{'disagree':>8} {'lost':>5} {'skipped':>7}"
    lines += [head, "  " + "-" * (len(head) - 2)]
    for h, t in doc["hooks"].items():
        lines.append(f"  {h:<11} {str(t['via']):<16} {t['seen']:>7} {t['agree']:>7} "
                     f"{t['explained']:>9} {t['disagree']:>8} {t['lost']:>5} {t['skipped']:>7}")
    rates = {h: t["measured_pps"] for h, t in doc["hooks"].items() if t.get("measured_pps")}
    if rates:
        lines.append(f"  rate the hooks saw (their own timestamps, {doc.get('hook_clock', 'ns')}): "
                     + ", ".join(f"{h} {v:,.1f}/s" for h, v in rates.items()))
    for h, t in doc["hooks"].items():
        for reason, n in t["explained_reasons"].items():
            lines.append(f"  explained at {h} ({n}): {reason}")
    if doc.get("kprobe_not_used"):
        for m, why in doc["kprobe_not_used"].items():
            lines.append(f"  kprobe hook not by {m}: {why}")
    for h, t in doc["hooks"].items():
        if t.get("unmatched"):
            lines.append(f"  UNMATCHED at {h}: {t['unmatched']} record(s) of this run's frames "
                         "that no frame took (late after their frame was counted lost, or "
                         "doubled); like lost records, they fail the run")
        if t.get("foreign"):
            lines.append(f"  foreign at {h}: {t['foreign']} record(s) of traffic the lab made "
                         "itself (not from the capture): counted, not compared")
    for d in doc["disagreements"]:
        lines.append(f"  DISAGREE frame {d['frame']} at {d['hook']}: {', '.join(d['fields'])}")
    if doc.get("rewrite"):
        lines.append(f"  rewritten: {doc['rewrite']['description']}")
    for p in doc["problems"]:
        lines.append(f"  capture problem: {p}")
    lines.append(f"  leftovers: {doc['leftovers'] or 'none'}")
    return "\n".join(lines)


def cmd_bench(args):
    from ..bench import core as bench
    bench.parse_only(args.only)                 # a bad --only is refused before anything
    if args.only is not None and not args.only.strip(" ,"):
        raise ValueError(f"--only {args.only!r}: names no part of the bench; use micro, live, "
                         "or live points")
    if args.plot:
        _check_plot(args.plot)
    _need_root("pktlab bench")
    return bench.cli(args)


def _check_plot(path):
    """--plot FILE: a format matplotlib writes, in a directory we may write to (checked now,
    not after minutes of benchmarks)."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in ("png", "svg", "pdf", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp"):
        raise ValueError(f"--plot {path}: name a .png, .svg or .pdf file (the format follows "
                         "the extension)")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise FileNotFoundError(f"--plot {path}: directory {d} does not exist; create it first")
    if not os.access(d, os.W_OK) or os.path.isdir(path):
        raise ValueError(f"--plot {path}: cannot write there; pick another file")


def _check_lab_args(args):
    """Options that only mean something for some actions are refused for the others."""
    a = args.action
    if args.names and a != "down":
        raise ValueError(f"lab {a} takes no lab names (`pktlab lab down NAME` removes one lab)")
    if a == "down" and not args.names:
        raise ValueError("lab down: name the lab(s) to take down (see `pktlab lab status`), "
                         "or use `pktlab lab clean` for labs whose owner is gone")
    if args.all and a != "clean":
        raise ValueError(f"lab {a}: --all belongs to `pktlab lab clean`")
    for opt, val in (("--prefix", args.prefix), ("--mtu", args.mtu)):
        if val is not None and a != "up":
            raise ValueError(f"lab {a}: {opt} belongs to `pktlab lab up`")
    if args.prefix is not None:
        from ..lab.labs import PREFIX_RE
        if not PREFIX_RE.match(args.prefix):
            raise ValueError(f"lab up --prefix {args.prefix!r}: use a lowercase letter then up "
                             "to 5 lowercase letters or digits (e.g. pl, lab1)")


def cmd_lab(args):
    import json
    from ..lab import labs as L
    _check_lab_args(args)
    if args.action != "status":
        _need_root(f"pktlab lab {args.action}")
    if args.action == "up":
        lab = L.Lab(prefix=args.prefix or L.DEFAULT_PREFIX, persistent=True,
                    mtu=args.mtu or 1500).up()
        if args.json:
            print(json.dumps({"name": lab.name, "ns": [lab.ns_src, lab.ns_dut],
                              "interfaces": [lab.if_src, lab.if_dut],
                              "addresses": {"src": [L.SRC_IP4, L.SRC_IP6],
                                            "dut": [L.DUT_IP4, L.DUT_IP6]},
                              "mtu": lab.mtu, "remove_with": f"pktlab lab down {lab.name}"},
                             indent=2))
            return EXIT_OK
        print(f"{lab.name}: {lab.ns_src}/{lab.if_src} {lab.src_ip4} <-> "
              f"{lab.ns_dut}/{lab.if_dut} {lab.dut_ip4}")
        print(f"  try: ip netns exec {lab.ns_src} ping -c1 {lab.dut_ip4}")
        print(f"  remove with: pktlab lab down {lab.name}")
        return EXIT_OK
    if args.action == "down":
        labs = {s.name: s for s in L.list_labs()}
        missing = [n for n in args.names if n not in labs]
        if missing:
            raise ValueError(f"lab {missing[0]}: no such lab (see `pktlab lab status`)")
        removed, left = [], []
        for n in dict.fromkeys(args.names):
            res = L.remove_lab(labs[n])
            removed.append(n)
            left += res.left_alone
            if not args.json:
                print(f"removed {n}" + "".join(f"\n  ended pid {p['pid']} ({p['cmd']})"
                                               for p in res.processes) +
                      "".join(f"\n  left alone: {x}" for x in res.left_alone))
        if args.json:
            print(json.dumps({"removed": removed, **({"left_alone": left} if left else {})},
                             indent=2))
        return EXIT_OK
    if args.action == "clean":
        removed = L.clean_stale(all_labs=args.all)
        if args.json:
            print(json.dumps({"removed": removed}, indent=2))
            return EXIT_OK
        print(f"removed {len(removed)} lab(s)" + (": " + ", ".join(removed) if removed else ""))
        return EXIT_OK
    labs = L.describe_labs()
    if args.json:
        print(json.dumps(labs, indent=2))
        return EXIT_OK
    if not labs:
        print("no pktlab labs")
    for s in labs:
        if not s["pktlab"]:
            print(f"{s['ns'][0]}: named like a lab, {s['why']}; pktlab leaves it alone")
            continue
        owner = ("made by `lab up`" if s["owner_pid"] == 0 else f"owner pid {s['owner_pid']}")
        print(f"{s['name']}: {s['ns'][0]}/{s['interfaces'][0]} <-> {s['ns'][1]}/"
              f"{s['interfaces'][1]}  ({owner}"
              f"{', STALE: `pktlab lab clean` removes it' if s['stale'] else ''})")
        for ns, verdict in s["namespaces"].items():
            if verdict != "pktlab":
                print(f"  {ns}: {verdict}")
        for p in s["processes"]:
            print(f"  pid {p['pid']} in {p['ns']}: {p['cmd']}")
    return EXIT_OK


def build_parser():
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            # one line, not argparse's usage block: bad input is said in one line, always
            raise BadArguments(f"{self.prog}: {message}; see `{self.prog} --help`")

    p = Parser(prog="pktlab", description="Packet parsing, taken apart twice: "
                                          "in Python and live in the kernel (XDP, TC, kprobe).")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True

    d = sub.add_parser("doctor", help="what works on this machine, and how to fix what doesn't")
    d.add_argument("--json", action="store_true", help="one JSON document on stdout")
    d.set_defaults(func=cmd_doctor)

    c = sub.add_parser("cast", help="the userspace walk of every frame, layer by layer")
    c.add_argument("pcap")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_cast)

    r = sub.add_parser("replay", help="inject a capture into a lab, compare every hook's "
                                      "records with the userspace parse")
    r.add_argument("pcap")
    r.add_argument("--hooks", default="all",
                   help="comma-separated: xdp,tc-ingress,tc-egress,kprobe (default: all)")
    rate_ = r.add_mutually_exclusive_group()
    rate_.add_argument("--pps", type=rate, help="send at this many packets per second")
    rate_.add_argument("--mbps", type=rate, help="send at this many megabits per second")
    rate_.add_argument("--topspeed", action="store_true", help="as fast as the lab takes it "
                                                               "(the default)")
    r.add_argument("--loop", type=count, default=1, help="replay the capture N times")
    r.add_argument("--limit", type=count, default=None, help="only the first N frames")
    r.add_argument("--step", action="store_true", help="one frame at a time (Enter for next)")
    r.add_argument("--rewrite", action="store_true",
                   help="address every frame to the lab's dut (MAC, IPv4, IPv6; checksums fixed)")
    r.add_argument("--dst-mac", metavar="MAC|auto", help="rewrite destination MACs")
    r.add_argument("--dst-ip4", metavar="IP|auto", help="rewrite destination IPv4 addresses")
    r.add_argument("--dst-ip6", metavar="IP|auto", help="rewrite destination IPv6 addresses")
    r.add_argument("--xdp-mode", choices=("generic", "native"), default="generic")
    r.add_argument("--mtu", type=mtu, default=1500,
                   help=f"the lab's MTU, {MTU_MIN}..{MTU_MAX} (default 1500)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_replay)

    b = sub.add_parser("bench", help="what each hook costs: test-run ns/packet and live rates")
    b.add_argument("--json", action="store_true")
    b.add_argument("--plot", metavar="FILE", help="save the chart (PNG/SVG)")
    b.add_argument("--long", action="store_true", help="longer runs, tighter figures")
    b.add_argument("--only", default=None, help="micro,live or a comma list of live points")
    b.set_defaults(func=cmd_bench)

    lab = sub.add_parser("lab", help="manage labs by hand")
    lab.add_argument("action", choices=("up", "down", "status", "clean"))
    lab.add_argument("names", nargs="*", help="labs to take down")
    lab.add_argument("--prefix", default=None, help="up: the lab name's prefix (default pl)")
    lab.add_argument("--mtu", type=mtu, default=None,
                     help=f"up: the lab's MTU, {MTU_MIN}..{MTU_MAX} (default 1500)")
    lab.add_argument("--all", action="store_true", help="clean: every lab, not only stale ones")
    lab.add_argument("--json", action="store_true")
    lab.set_defaults(func=cmd_lab)
    return p


_MAIN_PID = None
_SIGNALLED = None        # the first SIGINT/SIGTERM this run received


def _on_signal(signum, frame):
    """SIGINT and SIGTERM: unwind through every `with` (labs and attachments are removed),
    once. Later ones are ignored, so that the cleanup runs to its end and the run says one
    line."""
    # pyroute2 forks helper processes (netns sockets) and ends them with SIGTERM, and Ctrl-C
    # reaches the whole process group: a forked child must just die, never unwind the
    # parent's `with` blocks (that would tear the lab down). Not SIG_IGN for the repeats:
    # children forked during the cleanup inherit it, and must still die on SIGTERM.
    if os.getpid() != _MAIN_PID:
        os._exit(128 + signum)
    global _SIGNALLED
    if _SIGNALLED is not None:
        return
    _SIGNALLED = signum
    raise KeyboardInterrupt


def _quiet_stdout():
    """The reader of stdout is gone: point fd 1 at /dev/null, so that nothing (our last
    writes, the interpreter's flush at exit) fails on it again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def main(argv=None):
    """Run one command; returns its exit status. Never a traceback for bad input, a closed
    pipe or an interrupt: one line on stderr, and the status says which.

    An interrupt may land anywhere, also inside a C extension's import or a library's
    cleanup, which then raise their own exception instead of KeyboardInterrupt: whatever
    ends a run that received SIGINT or SIGTERM, the run was interrupted (130)."""
    global _MAIN_PID, _SIGNALLED, _said
    saved = {}
    try:
        _MAIN_PID, _SIGNALLED, _said = os.getpid(), None, False
        saved = _set_signals({signal.SIGINT: _on_signal, signal.SIGTERM: _on_signal})
        # started with stdout or stderr closed (`>&-`): write to nowhere rather than to None
        if sys.stdout is None:
            sys.stdout = open(os.devnull, "w")
        if sys.stderr is None:
            sys.stderr = open(os.devnull, "w")
        args = build_parser().parse_args(argv)
        status = args.func(args)
        sys.stdout.flush()       # a reader that left shows here, not at the interpreter's exit
        return status
    except SystemExit:           # --help
        raise
    except BaseException as e:
        try:
            return _failed(e)
        except KeyboardInterrupt:  # the first signal landed while saying what went wrong
            if not _said:
                _err("interrupted")
            return EXIT_INTERRUPTED
    finally:
        if argv is None:
            # the program's own run (the console script): the status is decided; a late
            # Ctrl-C must not turn it into a KeyboardInterrupt on the way out, nor kill the
            # interpreter while it finalizes (it puts back SIG_DFL, but leaves SIG_IGN)
            _set_signals({signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: signal.SIG_IGN})
        else:
            _set_signals(saved)  # main([...]) called in-process leaves the caller's handlers


def _failed(e):
    """The exit status for what ended a run, said in one line on stderr."""
    if isinstance(e, KeyboardInterrupt) or _SIGNALLED:
        if isinstance(e, KeyboardInterrupt):
            _err("interrupted; everything this run made has been removed")
        else:
            _err(f"interrupted ({type(e).__name__} on the way out: {str(e)[:200]}); "
                 "`pktlab lab clean` removes anything left behind")
        return EXIT_INTERRUPTED
    if isinstance(e, BrokenPipeError):
        _quiet_stdout()
        return EXIT_PIPE
    if isinstance(e, BadArguments):
        _err(str(e), prefix="")
        return EXIT_BAD
    if isinstance(e, (FileNotFoundError, ValueError, EnvironmentProblem)):
        _err(str(e))
        return EXIT_BAD
    if isinstance(e, PktlabError):
        _err(str(e))
        log = getattr(e, "log", "")
        if log:
            print(log.rstrip()[-3000:], file=sys.stderr)
        return EXIT_BAD
    raise e                     # a bug in pktlab: its traceback is the useful report


def _set_signals(handlers):
    """Install {signum: handler}; returns the handlers they replace. Only the main thread may
    (main() called from another thread leaves signals alone)."""
    old = {}
    for signum, handler in handlers.items():
        try:
            old[signum] = signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        except ValueError:
            pass
    return old


if __name__ == "__main__":
    sys.exit(main())
