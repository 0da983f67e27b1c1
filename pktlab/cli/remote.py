"""The commands a learner runs without root: through pktlab's workshop daemon (pktlabd).

Not root and a daemon listening (pktlab.workshop.client.daemon_present): `pktlab replay`,
`pktlab run`, `pktlab verify` and `pktlab lab clean` send the bytes of the files named (read
here, with the learner's own rights) to the daemon, which does the kernel work in labs of the
learner's own, and print what it returns exactly as the root command prints it (the same JSON
documents). `pktlab mptcp` and `pktlab bench` send their checked options; the daemon runs the
transfer or the bench in a lab of the learner's (the bench one at a time on the machine), and
the document, the text and the chart are made here from the data it returns. Not root and no
daemon: one line saying so, exit 2.
"""

import json
import os

from ..errors import EnvironmentProblem


def client_for(what):
    """A connected Client when this process is not root and a daemon listens; None as root
    (the command runs here); EnvironmentProblem (exit 2, one line) when neither can."""
    if os.geteuid() == 0:
        return None
    from ..workshop.client import Client, absent_message, daemon_present
    if not daemon_present():
        raise EnvironmentProblem(absent_message(what))
    return Client()


def replay(args, checked, client, format_replay):
    """`pktlab replay` through the daemon: the same document, the same exit status."""
    from ..workshop.client import read_capture
    if args.step:
        return step(args, client)
    data = read_capture(args.pcap)
    opts = dict(hooks=args.hooks, pps=args.pps, mbps=args.mbps, loop=args.loop,
                limit=args.limit, xdp_mode=args.xdp_mode, mtu=args.mtu)
    from .args import rewrite_options
    opts.update(rewrite_options(args) or {})
    with client:
        doc = client.replay(data, label=args.pcap, **opts)
    ok = doc.pop("ok", False)
    doc["capture"] = checked.to_dict()
    print(json.dumps(doc, indent=2) if args.json else format_replay(doc))
    return 0 if ok else 1


class RemoteReplayer:
    """What the stepper needs of a Replayer (via, run_batch), on a lab the daemon holds."""

    def __init__(self, client, hooks, xdp_mode, mtu):
        self.client, self.opts = client, dict(hooks=hooks, xdp_mode=xdp_mode, mtu=mtu)
        self.lab = None

    def __enter__(self):
        self.lab = self.client.open_lab(**self.opts)
        return self

    def __exit__(self, *exc):
        self.client.close()          # the daemon closes the lab with the connection
        return False

    @property
    def via(self):
        return self.lab["via"]

    def run_batch(self, frames):
        return self.client.frames(self.lab["lab"], frames)


def step(args, client):
    from .args import rewrite_options
    from .step import step_cli
    if rewrite_options(args):
        raise ValueError("replay --step --rewrite/--dst-*: not through the workshop daemon; "
                         "step without rewriting, or replay with --rewrite")
    return step_cli(args, replayer=RemoteReplayer(client, args.hooks, args.xdp_mode, args.mtu))


def run(args, client):
    """`pktlab run` through the daemon (the learner loader runs there, as root would)."""
    from ..kernel import verifier
    from ..replay import learner
    from ..workshop.client import read_capture
    source = verifier.read_source(args.file)
    capture = read_capture(args.pcap)
    with client:
        doc = client.run(source, args.file, args.hook, capture, pcap=args.pcap,
                         func=args.function)
    report, status = doc.pop("report", None), doc.pop("exit")
    doc["file"], doc["pcap"] = args.file, args.pcap
    if args.json:
        print(json.dumps(doc, indent=2))
    elif report is not None:
        print(verifier.format_text(verifier.Report(**dict(report, file=args.file)),
                                   show_log=args.log))
    else:
        print(learner.format_run(doc))
    return status


def verify(args, client):
    from ..kernel import verifier
    source = verifier.read_source(args.file)
    with client:
        doc = client.verify(source, args.file, args.hook, func=args.function)
    status = doc.pop("exit")
    report = verifier.Report(**dict(doc, file=args.file))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(verifier.format_text(report, show_log=args.log))
    return status


def lab(args, client):
    """`pktlab lab clean [--all]` through the daemon: only the learner's own labs."""
    if args.action != "clean":
        raise EnvironmentProblem(
            f"pktlab lab {args.action} needs root; through the workshop daemon a lab lives as "
            "long as the connection that opened it: open one in a notebook with "
            "pl.open_lab(), or replay with `pktlab replay` (a lab of your own for the run)")
    with client:
        removed = client.clean(all_labs=args.all)["removed"]
    if args.json:
        print(json.dumps({"removed": removed}, indent=2))
    else:
        print(f"removed {len(removed)} lab(s) of yours"
              + (": " + ", ".join(removed) if removed else ""))
    return 0


def mptcp(args, drop, down, client):
    """`pktlab mptcp` through the daemon (the policy as typed: the daemon parses it again): the
    MptcpRun rebuilt from the data it returns (its document is the root command's). The
    daemon's own limits are said in one line (exit 2)."""
    from ..mptcp import MptcpRun
    opts = {"paths": args.paths, "policy": str(args.policy), "seconds": float(args.seconds),
            "drop": list(drop) if drop is not None else None,
            "down": list(down) if down is not None else None}
    with client:
        return MptcpRun.from_dict(client.call("mptcp_run", opts)[0])


def bench_measure(client):
    """What pktlab.bench.command.cli measures with, through the daemon: its `bench` op with
    the points and sizes --only chose (all of them by default)."""
    def measure(micro_on, live_on, points, long):
        from ..bench.spec import POINTS, SIZES
        opts = {"points": list(points or POINTS) if live_on else [],
                "sizes": list(SIZES) if live_on else [], "micro": bool(micro_on),
                "long": bool(long)}
        with client:
            return client.call("bench", opts)[0]
    return measure
