"""cli: the `pktlab` command, the top of the house. A stable contract (DESIGN.md, "Command
line"):

    pktlab doctor [--json]
    pktlab cast PCAP [--json]
    pktlab replay PCAP [--hooks ...] [--pps N | --mbps N | --topspeed] [--loop N] [--limit N]
                       [--step] [--json]
    pktlab bench [--json] [--plot FILE]
    pktlab lab up|down|status|clean [--json]
    pktlab verify FILE.c --hook H [--func NAME] [--json] [--log]
    pktlab run FILE.c --hook xdp|tc-ingress|tc-egress --pcap CAPTURE [--func NAME] [--json]
    pktlab conntrack [--flows N] [--max-entries M] [--json]
    pktlab belt [--traffic http|tcp|udp] [--hooks ...] [--port N] [--to-port N] [--lab NAME]
                [--json]

    pktlab mptcp [--paths 2|3] [--policy none|no-path=N|max-joins=K|only-from=NET]
                 [--seconds S] [--drop-path N | --path-down N] [--json]
    pktlab lessons reset [NN ...] [--all] [--workdir DIR] [--json]
    pktlab workshop up [--learners N] [--port P] [--ip ADDR] [--tls] [--json]
    pktlab workshop status [--json] | reset USER [NN ...] [--all] | down [--remove-learners]

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

Modules: console (exit statuses, messages, signals), args (argument types and checks),
commands (one function per command), cast (`pktlab cast`), step (`pktlab replay --step`),
lessons (`pktlab lessons reset`), workshop (`pktlab workshop`), remote (not root and a pktlabd
listening: replay, run, verify and lab clean go through it, with the same output).
May import every other room.
"""

import os
import signal
import sys

from . import commands, console, lessons, workshop
from .args import MTU_MAX, MTU_MIN, count, flows, hook, map_entries, mtu, port, rate
from .console import EXIT_INTERRUPTED, BadArguments


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
    d.set_defaults(func=commands.cmd_doctor)

    c = sub.add_parser("cast", help="the userspace walk of every frame, layer by layer")
    c.add_argument("pcap")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=commands.cmd_cast)

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
    r.set_defaults(func=commands.cmd_replay)

    b = sub.add_parser("bench", help="what each hook costs: test-run ns/packet and live rates")
    b.add_argument("--json", action="store_true")
    b.add_argument("--plot", metavar="FILE", help="save the chart (PNG/SVG)")
    b.add_argument("--long", action="store_true", help="longer runs, tighter figures")
    b.add_argument("--only", default=None, help="micro,live or a comma list of live points")
    b.set_defaults(func=commands.cmd_bench)

    lab = sub.add_parser("lab", help="manage labs by hand")
    lab.add_argument("action", choices=("up", "down", "status", "clean"))
    lab.add_argument("names", nargs="*", help="labs to take down")
    lab.add_argument("--prefix", default=None, help="up: the lab name's prefix (default pl)")
    lab.add_argument("--mtu", type=mtu, default=None,
                     help=f"up: the lab's MTU, {MTU_MIN}..{MTU_MAX} (default 1500)")
    lab.add_argument("--all", action="store_true", help="clean: every lab, not only stale ones")
    lab.add_argument("--json", action="store_true")
    lab.set_defaults(func=commands.cmd_lab)

    ct = sub.add_parser("conntrack", help="the socket table as a connection tracker: socket "
                                          "lookup vs HASH vs LRU conntrack maps, real flows")
    ct.add_argument("--flows", type=flows, default=1000,
                    help="concurrent TCP flows from src to dut's echo server (default 1000)")
    ct.add_argument("--max-entries", type=map_entries, default=256,
                    help="entries of the HASH and LRU_HASH conntrack maps (default 256)")
    ct.add_argument("--json", action="store_true")
    ct.set_defaults(func=commands.cmd_conntrack)

    v = sub.add_parser("verify", help="compile and load a learner's program; a refusal "
                                      "explained at the learner's source line")
    v.add_argument("file", metavar="FILE.c")
    v.add_argument("--hook", type=hook, required=True,
                   help="the program type to load it as: xdp, tc-ingress, tc-egress, "
                        "cgroup-ingress, socket-filter, sk-skb, sock-ops")
    v.add_argument("--func", dest="function", metavar="NAME",
                   help="the program to load (default: the only function with a context "
                        "argument)")
    v.add_argument("--json", action="store_true")
    v.add_argument("--log", action="store_true", help="print the verifier's whole log too")
    v.set_defaults(func=commands.cmd_verify)
    _run_parser(sub)

    bt = sub.add_parser("belt", help="one real request through every hook, from the wire to "
                                     "the application (socket-end hooks included)")
    bt.add_argument("--traffic", choices=("http", "tcp", "udp"), default="http",
                    help="a real server in dut and a client in src (default http)")
    bt.add_argument("--hooks", default="all",
                    help="comma-separated: tc-egress,kprobe,xdp,tc-ingress,cgroup-ingress,"
                         "socket-filter,sk-skb,recv (default: all)")
    bt.add_argument("--port", type=port, default=None,
                    help="the server's port (default 8080 http, 7001 tcp, 7002 udp)")
    bt.add_argument("--to-port", type=port, default=None,
                    help="aim the client at this port instead (none listens there: the "
                         "connection is refused)")
    bt.add_argument("--lab", metavar="NAME", default=None,
                    help="run in this lab (made by `pktlab lab up`) instead of a fresh one")
    bt.add_argument("--json", action="store_true")
    bt.set_defaults(func=commands.cmd_belt)
    _mptcp_parser(sub)
    lessons.add_parser(sub)
    workshop.add_parser(sub)
    return p


def _run_parser(sub):
    from .args import run_hook
    ru = sub.add_parser("run", help="a learner's program on a real hook in a throwaway lab: a "
                                    "capture replayed through it, its verdicts counted by name, "
                                    "its maps at the end")
    ru.add_argument("file", metavar="FILE.c")
    ru.add_argument("--hook", type=run_hook, required=True,
                    help="where it runs: xdp, tc-ingress or tc-egress")
    ru.add_argument("--pcap", required=True, metavar="CAPTURE", help="the frames to send")
    ru.add_argument("--func", dest="function", metavar="NAME",
                    help="the program (default: the only function with a context argument)")
    ru.add_argument("--json", action="store_true")
    ru.add_argument("--log", action="store_true", help="on a refusal, the verifier's whole log")
    ru.set_defaults(func=commands.cmd_run)


def _mptcp_parser(sub):
    from .args import seconds
    m = sub.add_parser("mptcp", help="a real MPTCP transfer over 2 or 3 paths under an eBPF "
                                     "path policy, seen by sock_ops")
    m.add_argument("--paths", type=int, choices=(2, 3), default=2,
                   help="paths between src and dut (default 2)")
    m.add_argument("--policy", default="none",
                   help="none, no-path=N, max-joins=K, only-from=A.B.C.D/L, or several with "
                        "commas (default none)")
    m.add_argument("--seconds", type=seconds, default=4.0,
                   help="how long the client sends (default 4)")
    fault = m.add_mutually_exclusive_group()
    fault.add_argument("--drop-path", type=int, metavar="N",
                       help="black-hole path N from 1 s to 4 s (TC drop): the RTO back-off")
    fault.add_argument("--path-down", type=int, metavar="N",
                       help="set path N's link down at 1 s, for good")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=commands.cmd_mptcp)


def main(argv=None):
    """Run one command; returns its exit status. Never a traceback for bad input, a closed
    pipe or an interrupt: one line on stderr, and the status says which.

    An interrupt may land anywhere, also inside a C extension's import or a library's
    cleanup, which then raise their own exception instead of KeyboardInterrupt: whatever
    ends a run that received SIGINT or SIGTERM, the run was interrupted (130)."""
    saved = {}
    try:
        saved = console.begin()
        # started with stdout or stderr closed (`>&-`): write to nowhere rather than to None
        if sys.stdout is None:
            sys.stdout = open(os.devnull, "w")
        if sys.stderr is None:
            sys.stderr = open(os.devnull, "w")
        args = build_parser().parse_args(argv)
        status = args.func(args)
        sys.stdout.flush()       # a reader that left shows here, not at the interpreter's exit
        if console.interrupted():
            # a signal came and its interrupt was lost on the way (the run went on to its
            # end, cleaning up as it does): still, the run was interrupted
            raise KeyboardInterrupt
        return status
    except SystemExit:           # --help
        raise
    except BaseException as e:
        try:
            return console.failed(e)
        except KeyboardInterrupt:  # the first signal landed while saying what went wrong
            if not console.said():
                console.err("interrupted")
            return EXIT_INTERRUPTED
    finally:
        if argv is None:
            # the program's own run (the console script): the status is decided; a late
            # Ctrl-C must not turn it into a KeyboardInterrupt on the way out, nor kill the
            # interpreter while it finalizes (it puts back SIG_DFL, but leaves SIG_IGN)
            console.set_signals({signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: signal.SIG_IGN})
        else:
            console.set_signals(saved)  # main([...]) called in-process leaves the caller's handlers
