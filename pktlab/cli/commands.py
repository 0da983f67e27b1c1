"""The `pktlab` commands: each takes the parsed arguments and returns its exit status.

Output goes to stdout (one JSON document with --json, text otherwise); what goes wrong is raised
and said by pktlab.cli.console.
"""

import os
import sys

from . import remote
from .args import check_lab_args, check_plot, check_rewrite, check_verify, rewrite_options
from .console import EXIT_FOUND, EXIT_OK, err, need_root

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
    from ..errors import CaptureError
    from ..packet.survey import survey
    from ..kernel.hooks import parse_hooks
    parse_hooks(args.hooks)
    check_rewrite(args)
    s = survey(args.pcap, limit=args.limit, mtu=args.mtu)
    why = s.refusal()
    if why:
        raise CaptureError(why)
    return s


def cmd_replay(args):
    import json
    from ..replay import run as rp
    checked = check_replay(args)
    client = remote.client_for("pktlab replay")
    if checked.note():
        err(f"note: {checked.note()}")
    if client is not None:
        return remote.replay(args, checked, client, format_replay)
    if args.step:
        from .step import step_cli
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
    from .. import bench
    bench.parse_only(args.only)                 # a bad --only is refused before anything
    if args.only is not None and not args.only.strip(" ,"):
        raise ValueError(f"--only {args.only!r}: names no part of the bench; use micro, live, "
                         "or live points")
    if args.plot:
        check_plot(args.plot)
    client = remote.client_for("pktlab bench")
    if client is not None:
        return bench.cli(args, measure=remote.bench_measure(client))
    need_root("pktlab bench")
    return bench.cli(args)


def cmd_lab(args):
    import json
    from .. import lab as L
    check_lab_args(args)
    if args.action != "status":
        client = remote.client_for(f"pktlab lab {args.action}")
        if client is not None:
            return remote.lab(args, client)
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
        if s.get("cgroup"):
            print(f"  cgroup {s['cgroup']}")
        for p in s["processes"]:
            print(f"  pid {p['pid']} in {p['ns']}: {p['cmd']}")
    return EXIT_OK


def cmd_conntrack(args):
    import json
    from .. import sockets
    sockets.check_conntrack(args.flows, args.max_entries)   # the fd limit, before any lab
    need_root("pktlab conntrack")
    doc = sockets.run_conntrack(args.flows, args.max_entries)
    print(json.dumps(doc, indent=2) if args.json else sockets.format_conntrack(doc))
    return EXIT_OK if doc["ok"] else EXIT_FOUND


def cmd_verify(args):
    """Exit 0: loaded; 1: the verifier refused it; 2: it does not compile, or bad input."""
    import json
    from ..kernel import verifier
    check_verify(args)
    if os.geteuid() != 0 and not _can_load_here():
        from ..workshop.client import daemon_present
        if daemon_present():        # else verify() says what loading needs
            return remote.verify(args, remote.client_for("pktlab verify"))
    report = verifier.verify(args.file, args.hook, func=args.function)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(verifier.format_text(report, show_log=args.log))
    return report.exit_status


def _can_load_here():
    """A process that is not root but holds CAP_BPF and CAP_NET_ADMIN loads in-process."""
    from ..kernel import progload
    return progload.has_caps(progload.LOAD_CAPS)


def cmd_run(args):
    """Exit 0: loaded, every frame sent got a verdict, nothing left behind; 1: the verifier
    (or the learner loader) refused it, or the run found otherwise; 2: it does not compile, or
    bad input (said before any lab)."""
    import json
    from ..kernel import verifier
    from ..replay import learner
    learner.check_run(args.file, args.hook, args.pcap)
    client = remote.client_for("pktlab run")
    if client is not None:
        return remote.run(args, client)
    doc = learner.run_file(args.file, args.hook, args.pcap, func=args.function)
    report, status = doc.pop("report", None), doc.pop("exit")
    if args.json:
        print(json.dumps(doc, indent=2))
    elif report is not None:
        print(verifier.format_text(report, show_log=args.log))
    else:
        print(learner.format_run(doc))
    return status


def cmd_belt(args):
    """Exit 0: every hook saw the request and agrees, in the kernel's order, nothing left
    behind; 1: the run worked but found otherwise; 2: bad input or environment."""
    import json
    from ..sockets import belt
    belt.check(args.traffic, args.hooks, args.port, args.to_port)   # before anything is made
    need_root("pktlab belt")
    lab = None
    if args.lab:
        from ..lab import Lab
        lab = Lab.adopt(args.lab)
    try:
        doc = belt.run_belt(args.traffic, args.hooks, port=args.port, to_port=args.to_port,
                            lab=lab)
    finally:
        if lab is not None:
            lab.close()             # what the belt added to it: its cgroup; never the lab
    print(json.dumps(doc, indent=2) if args.json else belt.format_belt(doc))
    return EXIT_OK if doc["ok"] and not doc["leftovers"] else EXIT_FOUND


def cmd_mptcp(args):
    """Exit 0: the transfer completed, every sock_ops event was read, nothing left behind;
    1: the run worked but found otherwise; 2: bad input or environment."""
    import json
    from .. import mptcp
    from .args import check_mptcp
    pol, drop, down = check_mptcp(args)            # before any lab
    client = remote.client_for("pktlab mptcp")
    if client is not None:
        res = remote.mptcp(args, drop, down, client)
    else:
        need_root("pktlab mptcp")
        res = mptcp.run_mptcp(args.paths, pol, args.seconds, drop=drop, down=down)
    print(json.dumps(res.doc, indent=2) if args.json else mptcp.format_text(res.doc))
    return EXIT_OK if mptcp.ok(res.doc) else EXIT_FOUND
