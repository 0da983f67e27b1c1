"""`pktlab run`: a learner's program on a real hook in a throwaway lab, a capture replayed
through it, and what it did: its verdicts counted by name and its maps at the end.

    check_run(path, hook, pcap)                   # bad input: ValueError/OSError, nothing made
    doc = run_file("drop53.c", "xdp", "pcaps/dns.pcap")
    doc["verdicts"]   {"XDP_PASS": 10, "XDP_DROP": 2}
    doc["maps"]       {"<map>": {"<key>": value}}        (pktlab.kernel.mapdump)
    doc["leftovers"]  []                                 (lab, program and maps all gone)
    run_text(c_bytes, "cell.c", "xdp", pcap)      # the same for C that is not in a file

    attach(lab, hook, prog.fd); replay_attached(prog, lab, pcap)   # the pieces, for a caller
                                                  # that keeps its program (pktlab.lessons.program)

In order: the learner's file is verified as written, through the learner loader (a refusal is
explained at its line and nothing else happens); then pktlab's counting wrapper around the
learner's function (pktlab.kernel.verdicts) is loaded the same way, attached in a fresh lab
(XDP on dut, TC ingress on dut, TC egress on src), the capture's frames are sent from src, and
pktlab waits until every sent frame has a verdict. The program and its maps are held by pktlab
only; they and the lab are gone before the document is returned, and `leftovers` proves it.
"""

import contextlib
import errno
import os
import time

from ..kernel import bpfobj, loader, mapdump, verdicts, verifier
from ..kernel.attach import TcAttachment, XdpAttachment
from ..kernel.progload import LoadRequest
from ..lab import Lab, leftovers
from ..lab.inject import Injector
from .. import resources
from ..errors import LabError

#: hook -> (program type, the side of the lab it sits on, TC direction or None)
RUN_HOOKS = {"xdp": ("XDP", "dut", None), "tc-ingress": ("SCHED_CLS", "dut", "ingress"),
             "tc-egress": ("SCHED_CLS", "src", "egress")}
#: a capture replayed by `pktlab run` (the whole capture is read into memory)
MAX_FRAMES = 100_000
SETTLE_S = 5.0                 # every verdict in by then, or the run says which are missing
QUIET_S = 0.1                  # and nothing more for this long after the last one
CHUNK = 256                    # frames sent before their verdicts are waited for


def check_run(path, hook, pcap, mtu=1500):
    """Everything about the arguments that needs no kernel: the file's text, the hook, the
    capture (read once: at least one frame a lab can send). One-line errors."""
    if hook not in RUN_HOOKS:
        raise ValueError(f"hook {hook!r}: pktlab run attaches at {', '.join(RUN_HOOKS)}")
    text = verifier.read_source(path)
    check_capture(pcap, mtu)
    return text


def check_capture(pcap, mtu=1500):
    """A capture a run can replay: lesson-sized, with at least one frame a lab can send.
    ValueError/CaptureError/OSError in one line."""
    from ..errors import CaptureError
    from ..packet.survey import survey
    checked = survey(pcap, limit=MAX_FRAMES + 1, mtu=mtu)
    if checked.frames > MAX_FRAMES:
        raise ValueError(f"capture {pcap}: more than {MAX_FRAMES:,} frames; pktlab run "
                         "replays a lesson-sized capture (`pktlab replay` takes any size)")
    refusal = checked.refusal(need_sendable=True)
    if refusal:
        raise CaptureError(refusal)


def _frames(pcap, injector):
    from ..packet.capture import read_frames
    frames = list(read_frames(pcap, data_only=True))
    ok, reasons = injector.sendable(frames)
    return [f for f, good in zip(frames, ok) if good], len(frames), reasons


def _since(prog, base):
    """The counting map's verdicts and the lab's own frames since `base` (an earlier
    verdicts.read(prog)): the program may have counted before this run (test runs, an earlier
    replay)."""
    counts, own = verdicts.read(prog)
    before, own_before = base
    counts = {k: n - before.get(k, 0) for k, n in counts.items() if n - before.get(k, 0)}
    return counts, own - own_before


def _wait_for(prog, want, quiet=QUIET_S, base=({}, 0)):
    """Poll the counting map until `want` verdicts are in (since `base`) and no more come for
    `quiet` seconds (or SETTLE_S passed): (the counts, the lab's own frames)."""
    deadline = time.monotonic() + SETTLE_S
    last, last_change = -1, time.monotonic()
    while True:
        counts, own = _since(prog, base)
        n = sum(counts.values())
        now = time.monotonic()
        if n != last:
            last, last_change = n, now
        if (n >= want and now - last_change >= quiet) or now >= deadline:
            return counts, own
        time.sleep(0.002)


def _send(inj, frames, prog, base=({}, 0), chunk=CHUNK, on_chunk=None):
    """Each frame once, `chunk` at a time, each chunk's verdicts in before the next (the dut's
    backlog holds a thousand frames); on_chunk(frames sent so far) after each. A frame the
    program drops at tc-egress makes the send fail with ENOBUFS: it was run and counted, and
    is never sent again."""
    for start in range(0, len(frames), chunk):
        for f in frames[start:start + chunk]:
            try:
                inj.sock.send(f)
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise LabError(e.errno, f"send a {len(f)}-byte frame on {inj.ifname}: "
                                            f"{e.strerror}") from e
        _wait_for(prog, min(start + chunk, len(frames)), quiet=0, base=base)
        if on_chunk is not None:
            on_chunk(min(start + chunk, len(frames)))


def replay_attached(prog, lab, pcap, chunk=CHUNK, on_chunk=None):
    """The capture's frames sent across `lab` (a pktlab.lab.Lab) through the wrapped program
    `prog`, already attached there (attach(), the lab's own source MAC given to
    verdicts.skip_source): what this replay added to its counts. {"verdicts", "lab_frames",
    "packets", "sent", "skipped": {frame number: why not sent}, "missing"}."""
    base = verdicts.read(prog)
    with Injector(lab) as inj:
        frames, total, skipped = _frames(pcap, inj)
        _send(inj, frames, prog, base, chunk, on_chunk)
        counts, own = _wait_for(prog, len(frames), base=base)
    return {"verdicts": counts, "lab_frames": own, "packets": total, "sent": len(frames),
            "skipped": {str(i + 1): why for i, why in sorted(skipped.items())},
            "missing": max(0, len(frames) - sum(counts.values()))}


def attach(lab, hook, fd):
    """The program `fd` at `hook` in `lab` (a pktlab.lab.Lab, which owns the attachment: its
    close() removes it, and so does the lab's): the attachment."""
    _ptype, side, direction = RUN_HOOKS[hook]
    ns, ifname = lab.ns(side), lab.ifname(side)
    if direction is None:
        return lab.own(XdpAttachment(ns, ifname, fd, mode="generic"))
    return lab.own(TcAttachment(ns, ifname, fd, direction, name="pktlab-run"))


def gone(prog_id, map_ids, timeout=5.0):
    """What of the program and its maps the kernel still has, once it had time to free them:
    a program is freed after an RCU grace period, and its maps after it."""
    deadline = time.monotonic() + timeout
    while True:
        left = [f"program id {prog_id}"] if bpfobj.prog_exists(prog_id) else []
        left += [f"map {n} (id {i})" for n, i in sorted(map_ids.items())
                 if bpfobj.map_exists(i)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.02)


def run_file(path, hook, pcap, func=None, limits=None, mtu=1500, lab=None):
    """Verify, load the counting wrapper, attach in a throwaway lab (or in `lab`, a learner's
    own, which stays: only what the run attached is removed), replay, count, dump, remove
    everything. The `pktlab run --json` document (plus "report": the verifier's Report when
    it refused; "exit": the status the command returns)."""
    text = check_run(path, hook, pcap, lab.mtu if lab is not None else mtu)
    return run_text(text, path, hook, pcap, func, limits, mtu, lab, checked=True)


def run_text(text, path, hook, pcap, func=None, limits=None, mtu=1500, lab=None,
             checked=False):
    """run_file() on C text (bytes) that is not in a file (a notebook cell): `path` names it
    in messages. The same document."""
    if not checked:
        if hook not in RUN_HOOKS:
            raise ValueError(f"hook {hook!r}: pktlab run attaches at {', '.join(RUN_HOOKS)}")
        if len(text) > verifier.MAX_SOURCE_BYTES or b"\0" in text:
            raise ValueError(f"{path}: a program is C text of at most "
                             f"{verifier.MAX_SOURCE_BYTES} bytes")
        check_capture(pcap, lab.mtu if lab is not None else mtu)
    prog_type = RUN_HOOKS[hook][0]
    name = os.path.basename(path)
    dirs = (resources.snippets_dir(),)
    report = verifier.judge(loader.attempt(LoadRequest(text, name, prog_type, func, dirs),
                                           limits), path, hook, text, func)
    doc = {"ok": report.ok, "errors": report.errors, "log": report.log, "verdicts": {},
           "maps": {}, "maps_info": {}, "leftovers": [], "file": path, "hook": hook,
           "function": report.function, "pcap": str(pcap), "stage": report.stage}
    if not report.ok:
        return dict(doc, exit=report.exit_status, report=report)
    wrapped = verdicts.wrap(text, report.function, prog_type)
    a, prog = loader.load(LoadRequest(wrapped, name, prog_type, verdicts.WRAPPER_FUNC, dirs),
                          limits)
    if prog is None:                  # the learner's program loads alone, not wrapped
        report = verifier.judge(a, path, hook, wrapped)
        return dict(doc, ok=False, errors=report.errors, log=report.log, stage=report.stage,
                    exit=report.exit_status or 1, report=report)
    doc["log"] = report.log
    with prog:
        ids = (prog.id, {n: m.info.id for n, m in prog.maps.items()})
        with (Lab(mtu=mtu) if lab is None else contextlib.nullcontext(lab)) as where:
            lab_name = where.name
            verdicts.skip_source(prog, where.mac("src"))
            with attach(where, hook, prog.fd):
                doc.update(replay_attached(prog, where, pcap))
            maps, info = mapdump.dump(prog, skip={verdicts.MAP, verdicts.CONFIG})
    doc.update(maps=maps, maps_info=info, lab=lab_name)
    doc["leftovers"] = (leftovers(lab_name) if lab is None else []) + gone(*ids)
    doc["ok"] = not doc["missing"] and not doc["leftovers"]
    return dict(doc, exit=0 if doc["ok"] else 1)


def format_run(doc):
    """The text `pktlab run` prints after a run that loaded (a refusal prints as verify's)."""
    out = [f"{os.path.basename(doc['file'])}: {doc['function']} at {doc['hook']}, "
           f"{doc['sent']} of {doc['packets']} frame(s) of {doc['pcap']} sent"]
    if doc.get("skipped"):
        out.append(f"  {len(doc['skipped'])} frame(s) not sent (a lab cannot carry them): "
                   + "; ".join(f"#{k}: {v}" for k, v in list(doc["skipped"].items())[:3]))
    out.append("")
    out.append("verdicts")
    width = max([len(k) for k in doc["verdicts"]] + [8])
    for k, n in sorted(doc["verdicts"].items(), key=lambda kv: -kv[1]):
        out.append(f"  {k:<{width}}  {n}")
    if not doc["verdicts"]:
        out.append("  (none)")
    if doc.get("lab_frames"):
        out.append(f"  ({doc['lab_frames']} frame(s) of the lab's own, from src's MAC, passed "
                   "without running your program)")
    if doc.get("missing"):
        out.append(f"  {doc['missing']} frame(s) sent got no verdict within {SETTLE_S:g} s")
    for name, entries in doc["maps"].items():
        info = doc["maps_info"][name]
        out.append("")
        out.append(f"map {name} ({info['type']}, {info['entries']} entr"
                   f"{'y' if info['entries'] == 1 else 'ies'}"
                   + (f"; {info['note']}" if info["note"] else "") + ")")
        for k, v in entries.items():
            out.append(f"  {k}: {_short(v)}")
    out.append("")
    out.append("leftovers: " + (", ".join(doc["leftovers"]) or "none"))
    return "\n".join(out)


def _short(v):
    import json
    if isinstance(v, dict) and set(v) == {"per_cpu", "sum"}:
        return f"{json.dumps(v['sum'])} (per CPU: {json.dumps(v['per_cpu'])})"
    return json.dumps(v)
