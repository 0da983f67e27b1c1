"""pktlabd's ops for sock_ops and MPTCP (lesson 10), the bench (lesson 06) and what the doctor
and kprobe lesson ask of the kernel (lessons 00 and 04): each op takes (session, Args, blob) and
returns (a JSON-able result, a blob), like pktlab.workshop.ops. Registered in ops.OPS.

    doctor        the doctor's report of what pktlabd can do here (pktlab.doctor.run() in the
                  daemon, its probe labs the caller's own: tagged, in their quota), run once
                  per daemon and kept in its state directory; refresh: run it again
    kprobe_mechanisms  how the kprobe hook attaches here: the mechanism the daemon uses and
                  why each better one does not (probed once when the daemon started)
    mptcp_run     one real MPTCP transfer (pktlab.mptcp.run_mptcp) in a lab of the caller's
                  own: MptcpRun.to_dict()
    bench         the bench (pktlab.bench.run) with checked points and sizes, its live ladder
                  in a lab of the caller's own, one bench at a time on the machine: the
                  results dict

Every lab these ops make is the caller's (Session.throwaway_lab: tagged with their uid,
counted in their quota, owned by the session): closed when the request ends, or unwound when
the connection dies (SIGTERM), or removed by the daemon once the session is gone (SIGKILL).
Nothing is named by the client but pktlab's own hook names, policies and bench points.
"""

import contextlib
import fcntl
import json
import os

from . import protocol as P

OPS = {}

# the longest each op may take, in seconds (Limits.wall; default 30)
WALL = {"doctor": 240, "mptcp_run": 150, "bench": 300}

#: a transfer through pktlabd lasts at most this long (the CLI allows 60 s)
MPTCP_SECONDS_MAX = 20.0
#: a learner's doctor refresh is answered from the kept report while it is younger than this
DOCTOR_FRESH_S = 120
#: a bench through pktlabd: its estimated length must fit in WALL["bench"] with this margin
BENCH_MARGIN = 0.6
#: how long a bench waits for the one running before it (one at a time on the machine)
BENCH_QUEUE_S = 120


def _op(fn):
    OPS[fn.__name__[3:]] = fn
    return fn


@contextlib.contextmanager
def _daemon_lock(s, what, wait=None):
    """A lock shared by every session of this daemon (flock: freed if the holder dies).
    wait: None, for as long as it takes; else at most that many seconds, which are not the
    request's own time (its wall clock stops meanwhile); yields whether it was taken."""
    import signal
    import time
    d = os.path.join(s.cfg.state_dir, "locks")
    os.makedirs(d, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(d, f"daemon.{what}"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o600)
    left = None
    try:
        if wait is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            got = True
        else:
            deadline, got = time.monotonic() + wait, False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    got = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                    if left is None:
                        left = signal.setitimer(signal.ITIMER_REAL, 0)[0]
                    time.sleep(0.2)
        if left:
            signal.setitimer(signal.ITIMER_REAL, left)
            left = None
        yield got
    finally:
        if left:
            signal.setitimer(signal.ITIMER_REAL, left)
        os.close(fd)


def _tagged_lab(s, refused):
    """new_lab() for pktlab.doctor.run: a throwaway lab of the caller's. A refusal (their
    quota) is noted in `refused`: the doctor would report it as a lab failure of the machine."""
    @contextlib.contextmanager
    def made():
        try:
            lab = s.new_lab()
        except P.Refused as e:
            refused.append(e)
            raise
        try:
            yield lab
        finally:
            lab.close()
    return made


# the doctor -----------------------------------------------------------------------------------
def _doctor_file(s):
    return os.path.join(s.cfg.state_dir, "doctor.json")


def _cached_doctor(s):
    """(the report this daemon kept, its age in seconds), or (None, None)."""
    import time
    try:
        with open(_doctor_file(s)) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None, None
    if doc.get("daemon") != s.cfg.daemon_pid or doc.get("kernel") != os.uname().release:
        return None, None
    at = doc.get("at")
    return doc.get("report"), (time.time() - at if isinstance(at, (int, float)) else None)


@_op
def op_doctor(s, a, blob):
    """The doctor's report of this machine as pktlabd sees it (root), once per daemon. A
    learner's refresh runs it again only when the kept report is DOCTOR_FRESH_S old: every
    doctor waits for the one running (one lock for the daemon), so a learner refreshing in a
    loop would hold every other learner's doctor past its wall time (their connection, and
    labs, closed); root's refresh always runs."""
    import time
    refresh = a.bool("refresh", False)
    a.finish()
    from .. import doctor
    with _daemon_lock(s, "doctor"):
        report, age = _cached_doctor(s)
        if refresh and report is not None and (s.peer.os_uid == 0 or age is None
                                               or age >= DOCTOR_FRESH_S):
            report = None
        cached = report is not None
        if report is None:
            refused = []
            report, _code = doctor.run(new_lab=_tagged_lab(s, refused))
            if refused:                   # the learner's quota, not the machine: not kept
                raise refused[0]
            tmp = _doctor_file(s) + f".{os.getpid()}"
            with open(tmp, "w") as f:
                json.dump({"daemon": s.cfg.daemon_pid, "kernel": os.uname().release,
                           "at": time.time(), "report": report}, f)
            os.replace(tmp, _doctor_file(s))
    return {"report": report, "cached": cached}, b""


@_op
def op_kprobe_mechanisms(s, a, blob):
    """How the kprobe hook attaches in pktlabd's labs: (used, {mechanism: why not}, order)."""
    a.finish()
    from ..kernel.hooks import MECH_ORDER, choose_kprobe_mechanism
    mech, why = choose_kprobe_mechanism()
    return {"used": mech, "why": {str(k): str(v) for k, v in why.items()},
            "order": list(MECH_ORDER)}, b""


# MPTCP ----------------------------------------------------------------------------------------
def _spec(a, name, size):
    v = a._get(name, None)
    if v is None:
        return None
    if (not isinstance(v, list) or len(v) != size or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
        raise ValueError(f"mptcp_run: {name} must be a list of {size} numbers (path, "
                         + ("at seconds, for seconds)" if size == 3 else "at seconds)"))
    return tuple(v)


@_op
def op_mptcp_run(s, a, blob):
    """One MPTCP transfer (pktlab mptcp) in a throwaway lab of the caller's."""
    from ..mptcp import check, run_mptcp
    paths = a.int("paths", 2, 1, 3)
    policy = a.str("policy", "none", max_len=120)
    seconds = a.num("seconds", 0.5, MPTCP_SECONDS_MAX)
    seconds = 3.0 if seconds is None else float(seconds)
    drop, down = _spec(a, "drop", 3), _spec(a, "down", 2)
    a.finish()
    check(paths, policy, seconds, drop, down)            # ValueError before any lab
    with s.throwaway_lab() as made:
        run = run_mptcp(paths=paths, policy=policy, seconds=seconds, drop=drop, down=down,
                        lab=made[0])
    run.doc["leftovers"] = list(run.doc["leftovers"]) + list(made[1])
    return run.to_dict(), b""


# the bench ------------------------------------------------------------------------------------
def bench_estimate(points, sizes, micro_on, long):
    """Seconds a bench of this size takes at least (its measuring time, no compile)."""
    from ..bench.spec import DEFAULTS
    cfg = DEFAULTS["long" if long else "short"]
    live = 0
    if points and sizes:
        steps = len(sizes) * (1 + len(points) + (1 if "tc_egress_parse" in points else 0))
        live = (steps + len(cfg["compare"])) * (cfg["duration"] + cfg["warmup"])
    return live + (cfg["rounds"] * 2 if micro_on else 0)


@_op
def op_bench(s, a, blob):
    """pktlab bench: micro (test runs) and the live ladder in a lab of the caller's."""
    from ..bench import run
    from ..bench.spec import POINTS, SIZES
    points = a._get("points", [])
    if (not isinstance(points, list) or len(points) > len(POINTS)
            or not all(isinstance(p, str) and p in POINTS for p in points)):
        raise ValueError(f"bench: points must be a list of bench points: {', '.join(POINTS)}")
    sizes = a.ints("sizes", len(SIZES), 60, 1514)
    if not set(sizes) <= set(SIZES):
        raise ValueError(f"bench: sizes must be among {', '.join(map(str, SIZES))} bytes")
    micro_on = a.bool("micro", True)
    long = a.bool("long", False)
    a.finish()
    points, sizes = list(dict.fromkeys(points)), list(dict.fromkeys(sizes))
    live_on = bool(points and sizes)
    if not live_on and not micro_on:
        raise ValueError("bench: nothing to measure: choose live points and sizes, or micro")
    est = bench_estimate(points, sizes, micro_on, long)
    if est > WALL["bench"] * BENCH_MARGIN:
        raise P.Refused(f"bench: {len(points)} points x {len(sizes)} sizes"
                        + (" (long)" if long else "") + f" measure for about {est:.0f} s; "
                        f"through pktlabd a bench may take {WALL['bench'] * BENCH_MARGIN:.0f} s: "
                        "choose fewer points or sizes, or leave long off")
    with _daemon_lock(s, "bench", wait=BENCH_QUEUE_S) as got:
        if not got:
            raise P.Refused(f"bench: other learners' benches ran on this machine for the "
                            f"{BENCH_QUEUE_S} s this one waited (one at a time: two would "
                            "measure each other); try again in a few minutes")
        if not live_on:
            return run(micro_on=True, live_on=False, long=long), b""
        with s.throwaway_lab() as made:
            res = run(micro_on=micro_on, live_on=True, points=points, sizes=sizes, long=long,
                      lab=made[0])
        res["leftovers"] = list(made[1])
    return res, b""
