"""`pktlab workshop up|status|reset|down`: a JupyterHub for N learners on this host
(pktlab/workshop: hub, admin, accounts).

    pktlab workshop up [--learners N] [--port P] [--ip ADDR] [--tls] [--prefix NAME]
                       [--ssl-cert FILE --ssl-key FILE] [--json]
    pktlab workshop status [--json]
    pktlab workshop reset USER [NN ...] [--all] [--json]
    pktlab workshop down [--remove-learners] [--json]
    pktlab workshop solo [--port P] [--user USER] [--workdir DIR]     (`make lab`)

`up` stays in the foreground until Ctrl-C or `workshop down`; it prints the address and each
learner's password once everything answers (--json: one document, then nothing more on stdout).
"""

import argparse
import json
import signal
import sys

from .args import _argtype, _whole, port

LEARNERS_DEFAULT = 3


@_argtype
def learners(text):
    from ..workshop.accounts import MAX_LEARNERS
    return _whole(text, 1, MAX_LEARNERS, "the number of learners")


@_argtype
def memory_cap(text):
    return _whole(text, 64, 1 << 20, "the memory cap in MB")


UP_LIMITS = """\
What a learner's server is held to (this host has no systemd, and its cgroup v2 has only the
hugetlb controller, so no per-learner cgroup):
  rlimits, set by the hub's spawner before it becomes the learner, inherited by their kernels
  and terminals: RLIMIT_NPROC 768 (processes + threads of the learner's uid), RLIMIT_NOFILE
  4096 and RLIMIT_FSIZE 2 GiB (each process), RLIMIT_CORE 0; no RLIMIT_AS (measured: a
  fresh kernel maps 0.8-0.9 GB of address space, a server 0.4-0.5 GB; a bound per process
  they survive would not bound a learner's total);
  memory: every 2 s `up` sums the PSS of each learner's processes; past --memory-cap it kills
  (SIGKILL) that learner's largest process but their server (a kernel: Jupyter restarts it),
  says so in jupyterhub.log and here; a watchdog, not a kernel limit (a process can outgrow
  the cap between two turns); `workshop status --json` shows each learner's memory;
  pktlabd's own per-learner limits: labs, connections, one compile at a time, request times,
  capture and replay sizes (`pktlabd --help`);
  CPU and disk space: not limited per learner here.
"""


def add_parser(sub):
    from ..workshop.accounts import PREFIX
    from ..workshop.memory import DEFAULT_CAP_MB
    from ..workshop.hubconf import DEFAULT_PORT
    w = sub.add_parser("workshop", help="a JupyterHub for N learners on this host, the kernel "
                                        "work behind pktlabd")
    wsub = w.add_subparsers(dest="workshop_cmd", metavar="ACTION")
    wsub.required = True
    up = wsub.add_parser("up", help="start the hub, the learners' accounts and pktlabd (stays "
                                    "in the foreground until Ctrl-C or `workshop down`)",
                         description=UP_LIMITS,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    up.add_argument("--learners", type=learners, default=LEARNERS_DEFAULT,
                    help=f"how many learner accounts (1..200, default {LEARNERS_DEFAULT})")
    up.add_argument("--port", type=port, default=DEFAULT_PORT,
                    help=f"the hub's port (default {DEFAULT_PORT})")
    up.add_argument("--ip", default="127.0.0.1",
                    help="the address it listens on (default 127.0.0.1; 0.0.0.0 for a room: "
                         "TLS is then on)")
    up.add_argument("--tls", action="store_true", help="TLS on loopback too")
    up.add_argument("--ssl-cert", metavar="FILE", help="your own certificate (else self-signed)")
    up.add_argument("--ssl-key", metavar="FILE", help="its key")
    up.add_argument("--prefix", default=PREFIX,
                    help=f"learner account names: PREFIX1..PREFIXN (default {PREFIX})")
    up.add_argument("--memory-cap", type=memory_cap, default=None, metavar="MB",
                    help=f"each learner's memory (PSS of all their processes, MB) past which "
                         f"the watchdog kills their largest kernel (default {DEFAULT_CAP_MB})")
    up.add_argument("--identity", choices=("uid", "token"), default="uid",
                    help="how pktlabd knows a learner: uid (default: each learner has their "
                         "own account here) or token (their JupyterHub API token, checked with "
                         "the hub: what a cluster whose pods share one uid needs)")
    up.add_argument("--json", action="store_true")
    up.set_defaults(func=cmd_up)

    st = wsub.add_parser("status", help="each learner's server and labs, and pktlabd")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    rs = wsub.add_parser("reset", help="a learner's copy of lessons back as shipped (their "
                                       "copy kept in ~/lessons/.backup/)")
    rs.add_argument("user", metavar="USER")
    rs.add_argument("numbers", nargs="*", metavar="NN", help="lesson numbers, e.g. 02 03")
    rs.add_argument("--all", dest="all_lessons", action="store_true", help="every lesson")
    rs.add_argument("--json", action="store_true")
    rs.set_defaults(func=cmd_reset)

    dn = wsub.add_parser("down", help="end the workshop: hub, servers, pktlabd, labs; each "
                                      "learner's work archived")
    dn.add_argument("--remove-learners", action="store_true",
                    help="also remove the learner accounts and their homes (after the archive)")
    dn.add_argument("--json", action="store_true")
    dn.set_defaults(func=cmd_down)

    so = wsub.add_parser("solo", help="`make lab`: JupyterLab on the lessons for one learner, "
                                      "run as them (never root), the kernel work behind a "
                                      "pktlabd of theirs (stays in the foreground)")
    so.add_argument("--port", type=port, default=8888, help="JupyterLab's port (default 8888, "
                                                              "on 127.0.0.1)")
    so.add_argument("--user", default=None,
                    help="who JupyterLab runs as (default: SUDO_USER; started as root "
                         "itself: pktlab's own account pktlab-lab)")
    so.add_argument("--workdir", default=None, metavar="DIR",
                    help="the learner's copy of the lessons (default: $PKTLAB_WORKDIR, the "
                         "checkout's work/ when it is theirs, else a folder in their home)")
    so.set_defaults(func=cmd_solo)


def _say(text):
    from .console import err
    err(text, prefix="[workshop] ")


def cmd_up(args):
    from ..workshop.hub import Workshop
    ws = Workshop(learners=args.learners, port=args.port, ip=args.ip, tls=args.tls,
                  prefix=args.prefix, ssl_cert=args.ssl_cert, ssl_key=args.ssl_key,
                  identity=args.identity, memory_cap_mb=args.memory_cap)
    # the instructor's terminal may close: `up` goes on (`workshop down` ends it)
    signal.signal(signal.SIGHUP, _ignore)
    with ws.start(say=_say) as running:
        doc = running.doc()
        if args.json:
            print(json.dumps(doc, indent=2), flush=True)
        else:
            print(format_up(doc), flush=True)
        return running.wait()


def cmd_solo(args):
    from ..workshop.solo import Solo
    solo = Solo(port=args.port, user=args.user, workdir=args.workdir)
    signal.signal(signal.SIGHUP, _ignore)
    with solo.start(say=_solo_say) as running:
        return running.wait()


def _solo_say(text):
    from .console import err
    err(text, prefix="[lab] ")


def _ignore(signum, frame):
    pass


def format_up(doc):
    lines = [f"workshop at {doc['url']}" + ("  (TLS: self-signed unless yours; learners' "
                                             "browsers ask once)" if doc["tls"] else ""),
             "learners (also in " + doc["credentials"] + ", root only):"]
    lines += [f"  {lr['user']:<14} {lr['password']}" for lr in doc["learners"]]
    if not doc["daemon"]["pid"]:
        lines.append("pktlabd: not started (this pktlab has none): kernel work unavailable")
    lines.append("Ctrl-C or `sudo .venv/bin/pktlab workshop down` ends it")
    return "\n".join(lines)


def cmd_status(args):
    from ..workshop.admin import status
    from .console import need_root
    need_root("pktlab workshop status")
    doc = status()
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"workshop at {doc['url']} (up pid {doc['pid']})")
    for lr in doc["learners"]:
        mem = lr.get("memory") or {}
        used = "?" if mem.get("bytes") is None else f"{mem['bytes'] / 2**20:.0f}"
        cap = f"/{mem['cap'] / 2**20:.0f}" if mem.get("cap") else ""
        killed = f", {mem['killed']} killed" if mem.get("killed") else ""
        print(f"  {lr['user']:<14} server {lr['server']:<9} labs {lr['labs']}  memory "
              f"{used}{cap} MB{killed}")
    d = doc["daemon"]
    print("pktlabd: " + (f"pid {d['pid']}, {d['clients']} clients, {d['labs']} labs" if d
                         else "not answering"))
    return 0


def cmd_reset(args):
    """As the learner (their uid): root never writes into a home a learner controls."""
    import os
    from ..lessons.reset import _numbers, shipped_lessons
    from ..workshop import accounts
    from ..workshop.admin import learner
    from .console import need_root
    if args.all_lessons and args.numbers:
        raise ValueError("workshop reset: give lesson numbers or --all, not both")
    if not args.all_lessons and not args.numbers:
        raise ValueError("workshop reset: say which lessons (e.g. `pktlab workshop reset "
                         "pkl-3 02 03`) or --all")
    _numbers(args.numbers, shipped_lessons())       # unknown numbers: exit 2 before anything
    need_root("pktlab workshop reset")
    lr = learner(args.user)
    if not os.path.isdir(lr.workdir):
        raise ValueError(f"workshop reset: {lr.workdir} is not there (the learner removed "
                         "it?); `pktlab workshop up` copies the lessons again")
    argv = [sys.executable, "-m", "pktlab.cli", "lessons", "reset", *args.numbers,
            "--workdir", lr.workdir, "--json"] + (["--all"] if args.all_lessons else [])
    r = accounts.run_as(lr, argv, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
        raise ValueError(f"workshop reset {lr.user}: {last[-300:]} (run as {lr.user}, in "
                         f"{lr.workdir})")
    doc = json.loads(r.stdout)
    doc["user"] = lr.user
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        from ..lessons.reset import Reset
        out = Reset(**{k: doc[k] for k in ("workdir", "reset", "restored", "unchanged",
                                           "backup")})
        print(f"{lr.user}:\n" + (out.text() or "nothing to do"))
    return 0


def cmd_down(args):
    from ..workshop.admin import down
    from .console import need_root
    need_root("pktlab workshop down")
    doc = down(remove_learners=args.remove_learners, say=_say)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        for path in doc["archives"]:
            print(f"archived {path}")
        if doc["removed"]:
            print("removed accounts: " + " ".join(doc["removed"]))
        print("leftovers: " + ("none" if not doc["leftovers"] else
                               "; ".join(doc["leftovers"])))
    return 0 if not doc["leftovers"] else 1
