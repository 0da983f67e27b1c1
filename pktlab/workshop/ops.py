"""What pktlabd does for a caller, and nothing else: each op takes (session, Args, blob) and
returns (a JSON-able result, a blob).

    status      the daemon: {"pid", "clients", "labs"} (root: every learner's labs, by uid and
                user; a learner: their own, and their own connections)
    hooks       which of pktlab's hooks the daemon can attach here, and how
    open_lab    a lab of the caller's own with pktlab's hooks attached (xdp, tc-ingress,
                tc-egress, kprobe: the kprobe copy is filtered in the kernel to this lab's dut
                interface and network namespace); a quota per learner
    set_hooks   another set of pktlab's hooks on one of the caller's labs
    close_lab   one of the caller's labs, and what of it is left (must be [])
    labs        the labs this connection holds
    replay      a capture (its bytes) replayed into one of the caller's labs, or a throwaway lab
                counted in the quota: `pktlab replay --json`'s document
    frames      a few frames sent across one of the caller's labs: the batch's verdicts as data
                (lab.step, lab.follow, lab.compare)
    run         the caller's C (its bytes) through the restricted learner loader
                (pktlab.kernel.loader), attached only in the caller's lab, a capture replayed
                through it: `pktlab run --json`'s document (verdicts, maps as data)
    verify      the caller's C through the learner loader: `pktlab verify --json`'s report
    clean       the caller's own labs whose connection is gone (all: every lab of theirs)

The lessons' ops are in their own modules, merged into OPS below: opsprogram (program,
program_lab: a learner's C, its test runs, maps, attached in their lab), opssockets (belt_*,
insert_moment, conntrack, timewait, check_firewall), opsmptcp (doctor, kprobe_mechanisms,
mptcp_run, bench).

No op takes an interface, a path or a program: the daemon attaches only pktlab's own programs
and the learner loader's, only inside the caller's labs, and no program, link or map fd leaves
the daemon.
"""

import json
import os

from . import protocol as P
from .labs import SessionLab, daemon_labs, describe, tag_of
from . import opsmptcp, opsprogram, opssockets

XDP_MODES = ("generic", "native")
MTU = (1280, 9000)


def op_status(s, a, blob):
    a.finish()
    try:
        with open(s.cfg.sessions_file) as f:
            sessions = json.load(f)["sessions"]
    except (OSError, ValueError, KeyError):
        sessions = []
    # the connection asking is not counted: `clients` is who else is connected
    others = [x for x in sessions if x.get("pid") != os.getpid()]
    if s.peer.uid == 0:
        labs = [describe(st) for st in daemon_labs(daemon_pid=s.cfg.daemon_pid)]
        clients = len(others)
    else:
        labs = [describe(st) for st in daemon_labs(uid=s.peer.uid, daemon_pid=s.cfg.daemon_pid)]
        clients = sum(1 for x in others if x.get("uid") == s.peer.uid)
    return {"pid": s.cfg.daemon_pid, "clients": clients, "labs": labs,
            "you": {"uid": s.peer.uid, "user": s.peer.user, "session": os.getpid()},
            "limits": {"labs": s.limits.labs, "connections": s.limits.sessions,
                       "capture_bytes": s.limits.capture_bytes,
                       "replay_frames": s.limits.replay_frames,
                       "requests_per_s": s.limits.rate}}, b""


def _kprobe():
    from ..kernel.hooks import choose_kprobe_mechanism
    return choose_kprobe_mechanism()


def hook_report():
    """{hook: {"available", "via", "why"}} for pktlab's replay hooks, as the doctor words it."""
    mech, why = _kprobe()
    out = {h: {"available": True, "via": v, "why": ""}
           for h, v in (("xdp", "xdp-generic"), ("tc-ingress", "clsact ingress"),
                        ("tc-egress", "clsact egress"))}
    out["kprobe"] = {"available": mech is not None, "via": mech,
                     "why": "" if mech else "; ".join(f"{m}: {w}" for m, w in why.items())}
    return out


def op_hooks(s, a, blob):
    a.finish()
    return {"hooks": hook_report()}, b""


def _hooks(a):
    """pktlab's replay hooks by name; an empty list: a lab with none attached (yet)."""
    from ..kernel.hooks import parse_hooks
    v = a.hooks()
    return () if v == [] else parse_hooks(v)


def op_open_lab(s, a, blob):
    hooks = _hooks(a)
    xdp_mode = a.str("xdp_mode", "generic", XDP_MODES)
    mtu = a.int("mtu", 1500, *MTU)
    a.finish()
    report = hook_report()
    unavailable = {h: report[h]["why"] for h in hooks if not report[h]["available"]}
    lab = s.new_lab(mtu)
    sl = SessionLab(lab, xdp_mode, unavailable)
    s.labs[lab.name] = sl
    try:
        sl.attach([h for h in hooks if h not in unavailable])
    except BaseException:
        s.labs.pop(lab.name, None)
        sl.close()
        raise
    return sl.to_dict(), b""


def op_set_hooks(s, a, blob):
    sl = s.mine(a.str("lab", required=True))
    hooks = _hooks(a)
    a.finish()
    report = hook_report()
    want = tuple(h for h in hooks if report[h]["available"])
    if want != sl.hooks or sl.rp is None:
        sl.attach(want)
    return sl.to_dict(), b""


def op_close_lab(s, a, blob):
    name = a.str("lab", required=True)
    a.finish()
    sl = s.mine(name)
    s.labs.pop(name, None)
    return {"closed": name, "leftovers": sl.close()}, b""


def op_labs(s, a, blob):
    a.finish()
    return {"labs": [sl.to_dict() for sl in s.labs.values()]}, b""


def _capture(s, blob, label, files):
    if len(blob) > s.limits.capture_bytes:
        raise P.Refused(f"capture {label}: {len(blob):,} bytes; a capture sent to pktlabd is at "
                        f"most {s.limits.capture_bytes:,} bytes")
    return files.write(label, blob, "capture.pcap")


def op_replay(s, a, blob):
    """`pktlab replay`'s run, in one of the caller's labs or a throwaway one of theirs."""
    from ..errors import CaptureError
    from ..packet.survey import survey
    from ..replay.run import replay
    lim = s.limits
    name = a.str("lab")
    label = a.str("label", "capture.pcap")
    given = "hooks" in a.args
    hooks = _hooks(a)
    pps, mbps = a.num("pps", 1e-3, 1e9), a.num("mbps", 1e-3, 1e6)
    loop = a.int("loop", 1, 1, lim.replay_loop)
    limit = a.int("limit", None, 1, lim.replay_frames)
    rewrite = {k: a.str(k, max_len=64) for k in ("dst_mac", "dst_ip4", "dst_ip6")}
    rewrite = {k: v for k, v in rewrite.items() if v} or None
    xdp_mode = a.str("xdp_mode", "generic", XDP_MODES)
    mtu = a.int("mtu", 1500, *MTU)
    precise = a._get("precise_ts", None)
    if precise is not None and not isinstance(precise, bool):
        raise ValueError("replay: argument 'precise_ts' must be true, false or null")
    keep = a.int("keep_disagreements", 20, 0, 200)
    a.finish()
    if pps is not None and mbps is not None:
        raise ValueError("replay: give pps or mbps, not both")
    sl = s.mine(name) if name is not None else None
    if sl is not None and not given:
        hooks = sl.hooks or hooks          # a lab replays through the hooks it has (LiveLab)
    files = s.new_files()
    path = _capture(s, blob, label, files)
    checked = survey(path, limit=limit, mtu=sl.lab.mtu if sl else mtu)
    why = checked.refusal()
    if why:
        raise CaptureError(why)
    total = checked.frames * loop
    if total > lim.replay_frames:
        raise P.Refused(f"replay: {checked.frames:,} frames x {loop} = {total:,}; a replay "
                        f"through pktlabd sends at most {lim.replay_frames:,}")
    if pps and total / pps > lim.wall("replay"):
        raise P.Refused(f"replay: {total:,} frames at {pps:g}/s take longer than "
                        f"{lim.wall('replay')} s, the longest a request may take")
    kw = dict(hooks=hooks, pps=pps, mbps=mbps, loop=loop, limit=limit, rewrite=rewrite,
              xdp_mode=sl.xdp_mode if sl else xdp_mode, keep_disagreements=keep,
              precise_ts=precise)
    if sl is not None:
        with sl.aside() as lab:
            result = replay(path, lab=lab, **kw)
        doc = result.summary()
    else:
        with s.throwaway_lab(mtu) as made:
            result = replay(path, lab=made[0], **kw)
        doc = result.summary()
        doc["leftovers"] = made[1]
    doc["source"] = label
    doc["capture"] = checked.to_dict()
    doc["ok"] = result.ok and not doc["leftovers"]
    return doc, b""


def op_frames(s, a, blob):
    """Frames across one of the caller's labs (their hooks attached): the BatchResult."""
    sl = s.mine(a.str("lab", required=True))
    lengths = a.ints("lengths", s.limits.batch_frames, 0, 65535)
    a.finish()
    frames = P.unpack_frames(lengths, blob)
    if sl.rp is None:
        raise P.Refused(f"lab {sl.name}: no hooks attached; open it with hooks, or set_hooks")
    return P.encode_batch(sl.rp.run_batch(frames))


def _source(s, a, blob, files, need_capture):
    """The learner's C (and the capture after it) from the blob, written as files."""
    from ..kernel.verifier import MAX_SOURCE_BYTES
    n = a.int("source_len", None, 0, MAX_SOURCE_BYTES)
    if n is None or n > len(blob):
        raise ValueError(f"{a.op}: source_len must say how many of the bytes sent are the C "
                         "source")
    label = a.str("name", "program.c")
    src = files.write(label, blob[:n], "program.c")
    cap = _capture(s, blob[n:], a.str("pcap", "capture.pcap"), files) if need_capture else None
    return src, cap


def op_run(s, a, blob):
    """`pktlab run`: the caller's C, verified and loaded by the restricted learner loader,
    attached only in the caller's lab (theirs, or a throwaway one in their quota)."""
    from ..replay.learner import RUN_HOOKS, run_file
    hook = a.str("hook", required=True, choices=tuple(RUN_HOOKS))
    func = a.str("func", max_len=128)
    name = a.str("lab")
    files = s.new_files()
    src, cap = _source(s, a, blob, files, need_capture=True)
    a.finish()
    sl = s.mine(name) if name is not None else None
    with s.compile_slot():
        if sl is not None:
            with sl.aside() as lab:
                doc = run_file(src, hook, cap, func=func, lab=lab)
        else:
            with s.throwaway_lab() as made:
                doc = run_file(src, hook, cap, func=func, lab=made[0])
            if doc.get("report") is None:          # it ran: the throwaway lab must be gone
                doc["leftovers"] = doc["leftovers"] + made[1]
                doc["ok"] = doc["ok"] and not made[1]
                doc["exit"] = 0 if doc["ok"] else 1
    report = doc.pop("report", None)
    doc["report"] = report.to_dict() if report is not None else None
    return doc, b""


def op_verify(s, a, blob):
    from ..kernel import verifier
    hook = a.str("hook", required=True, choices=tuple(verifier.HOOK_TYPES))
    func = a.str("func", max_len=128)
    files = s.new_files()
    src, _ = _source(s, a, blob, files, need_capture=False)
    a.finish()
    with s.compile_slot():
        report = verifier.verify(src, hook, func=func)
    return dict(report.to_dict(), exit=report.exit_status), b""


def op_clean(s, a, blob):
    """The caller's labs whose session is gone (all: every lab of theirs, on any connection);
    never anyone else's."""
    from ..lab import remove_lab
    every = a.bool("all", False)
    a.finish()
    removed = []
    for st in daemon_labs(uid=s.peer.uid, alive_only=False):
        if (tag_of(st) or {}).get("uid") != s.peer.uid:
            continue                                  # (daemon_labs filtered: belt and braces)
        mine_here = s.labs.get(st.name)
        if mine_here is not None:
            if every:
                s.labs.pop(st.name)
                mine_here.close()
                removed.append(st.name)
            continue
        if every or not st.owner_alive():
            res = remove_lab(st, wait=False)
            if not res.busy:
                removed.append(st.name)
    return {"removed": removed}, b""


OPS = {"status": op_status, "hooks": op_hooks, "open_lab": op_open_lab,
       "set_hooks": op_set_hooks, "close_lab": op_close_lab, "labs": op_labs,
       "replay": op_replay, "frames": op_frames, "run": op_run, "verify": op_verify,
       "clean": op_clean}
# the lessons' ops, each topic in its own module (they import nothing of this one)
# (and the longest each may take, in seconds, where that is not Limits' default)
WALL = {}
for _m in (opsprogram, opssockets, opsmptcp):
    assert not set(_m.OPS) & set(OPS), f"an op named twice: {set(_m.OPS) & set(OPS)}"
    OPS.update(_m.OPS)
    WALL.update(getattr(_m, "WALL", {}))
