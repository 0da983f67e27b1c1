"""Lesson 03: XDP rewrites a field, TC sees the result; and the exercises: the flag that says
TC took a VLAN tag from metadata, where each tag of a Q-in-Q frame came from (sent across the
learner's lab), the TTL TC ingress reports after the rewriting program got TTL 1 (measured).

The demo runs xdp.bpf.c built with PL_REWRITE_TTL (it records the frame, then decrements the
IPv4 TTL as a router would) next to TC ingress in a lab of its own, and shows each hook's record
against the walker's records of the bytes sent and of the bytes after the rewrite.
"""

import re
import time

from ..here import hook_available, in_lab_thread, why_not
from ..html import NotHere, esc, table
from ..live import LAB_PREFIX
from .common import CheckResult, guarded, log_html, norm, sample_frame, snippet_text


@guarded
def check_vlan_flag(answer):
    """Lesson 03: the record field (and flag) that says TC took the VLAN tag from metadata."""
    a = norm(answer)
    if a in ("flags", "vlan-from-meta", "pl-f-vlan-from-meta", "flags&pl-f-vlan-from-meta"):
        return CheckResult(True, "flags & PL_F_VLAN_FROM_META: tc.bpf.c sets it when "
                                 "skb->vlan_present")
    return CheckResult(False, f"{answer!r}: look at the records of a tagged frame: which field "
                              "differs at tc-ingress besides the lengths?")


def ttl_rewrite_text():
    """The lesson-03 variant of xdp.bpf.c: its PL_REWRITE_TTL block, which records the frame
    and then decrements the TTL as a router would (the C lives in bpf_snippets/xdp.bpf.c)."""
    text = snippet_text("xdp.bpf.c")
    m = re.search(r"#ifdef PL_REWRITE_TTL\n(.*?)#endif", text, re.S)
    if not m:
        raise ValueError("bpf_snippets/xdp.bpf.c has no PL_REWRITE_TTL block: lesson 03 needs it")
    return m.group(1)


def ttl_rewritten(frame):
    """What the rewriting XDP program makes of ``frame`` (Python's prediction)."""
    import struct
    b = bytearray(frame)
    if len(b) < 34 or b[12:14] != b"\x08\x00" or b[22] <= 1:
        return bytes(b)
    old = b[22] << 8 | b[23]
    b[22] -= 1
    new = b[22] << 8 | b[23]
    (check,) = struct.unpack_from("!H", b, 24)
    s = (~check & 0xFFFF) + (~old & 0xFFFF) + new
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    struct.pack_into("!H", b, 24, ~s & 0xFFFF)
    return bytes(b)


def with_ttl(frame, ttl):
    """``frame`` (Ethernet + IPv4) with its TTL set to ``ttl`` and the header checksum fixed."""
    import struct
    b = bytearray(frame)
    if len(b) < 34 or b[12:14] != b"\x08\x00":
        raise ValueError("with_ttl: the frame has no IPv4 header right after Ethernet")
    b[22] = ttl
    b[24:26] = b"\0\0"
    ihl = (b[14] & 0x0F) * 4
    words = struct.unpack(f"!{ihl // 2}H", bytes(b[14:14 + ihl]))
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    struct.pack_into("!H", b, 24, ~total & 0xFFFF)
    return bytes(b)


def _rewrite_run(frame):
    """Send ``frame`` through the TTL-rewriting XDP program, then TC ingress, in a lab of its
    own: (walker before, walker after, xdp record, tc-ingress record), or a NotHere /
    CheckResult that says why it could not run."""
    from ...kernel import bpf
    from ...replay import compare
    from ...kernel.attach import XdpAttachment
    from ...errors import BPFError, PktlabError
    from ...kernel.hooks import HookSet
    from ...lab.inject import Injector
    from ...lab import Lab
    after = ttl_rewritten(frame)
    try:
        prog = bpf.load("xdp", slots=16, extra_cflags=("-DPL_REWRITE_TTL",))
    except BPFError as e:
        return CheckResult(False, f"the rewriting XDP program did not load: {e}",
                           log_html(e.log or ""))
    got = {"xdp": [], "tc-ingress": []}
    try:
        with Lab(prefix=LAB_PREFIX) as lab:
            att = lab.own(XdpAttachment(lab.ns_dut, lab.if_dut, prog.fd, "generic"))
            try:
                with HookSet(lab, ["tc-ingress"]) as hs, Injector(lab) as inj:
                    prog.ring().read()
                    inj.send(frame)
                    deadline = time.monotonic() + 2
                    while time.monotonic() < deadline and not (got["xdp"] and got["tc-ingress"]):
                        got["xdp"] += list(prog.ring().read())
                        got["tc-ingress"] += list(hs.drain()["tc-ingress"])
                        time.sleep(0.005)
            finally:
                att.close()
    except PktlabError as e:
        return NotHere("XDP rewrite demo", str(e))
    finally:
        bpf.release(prog)
    w_before = compare.walker_records([frame])[0]
    w_after = compare.walker_records([after])[0]
    # each hook's record is found by the frame's identity as that hook saw it
    fp_before, fp_after = int(w_before["fingerprint"]), int(w_after["fingerprint"])
    xdp = next((r for r in got["xdp"] if int(r["fingerprint"]) == fp_before), None)
    tc = next((r for r in got["tc-ingress"] if int(r["fingerprint"]) == fp_after), None)
    return w_before, w_after, xdp, tc


def ttl_rewrite_demo(frame=None):
    """Send ``frame`` through the TTL-rewriting XDP program and TC ingress, in a lab of its own."""
    import numpy as np

    from ...replay import compare
    from ...packet import record as R
    frame = bytes(frame if frame is not None else sample_frame())
    run = _rewrite_run(frame)
    if not isinstance(run, tuple):
        return run
    w_before, w_after, xdp, tc = run
    cols = [("walker: bytes sent", w_before), ("xdp (records, then rewrites)", xdp),
            ("tc-ingress", tc), ("walker: bytes after the rewrite", w_after)]
    fields = ("ttl", "fingerprint", "frame_len", "status", "layer", "l4_proto", "sport", "dport")
    rows = []
    for f in fields:
        cells = [(esc(f), "")]
        for _label, r in cols:
            if r is None:
                cells.append(("no record", "pll-diff"))
                continue
            v = int(r[f])
            text = (R.status_name(v) if f == "status" else R.layer_name(v) if f == "layer"
                    else f"{v:016x}" if f == "fingerprint" else str(v))
            klass = "pll-num pll-expl" if v != int(w_before[f]) else "pll-num"
            cells.append((esc(text), klass))
        rows.append(cells)
    mask = compare.compare_mask()

    def same(a, b):
        return a is not None and np.array_equal(np.asarray(a).reshape(1).view(np.uint8)[mask],
                                                np.asarray(b).reshape(1).view(np.uint8)[mask])
    ok = same(xdp, w_before) and same(tc, w_after)
    body = table(["field", *(c[0] for c in cols)], rows, raw=True)
    sent_ttl = int(w_before["ttl"])
    if not ok:
        title = "unexpected: see the table"
    elif ttl_rewritten(frame) != frame:
        title = (f"XDP recorded TTL {sent_ttl} and rewrote it; TC ingress saw TTL "
                 f"{int(tc['ttl'])}: it agrees with the walker's record of the rewritten "
                 "bytes, not of the bytes sent")
    else:
        title = (f"XDP recorded TTL {sent_ttl} and left the bytes as they were (this frame "
                 f"does not meet the program's condition); TC ingress saw TTL {int(tc['ttl'])}"
                 ", the bytes as sent")
    return CheckResult(ok, title, body)


@guarded
def check_ttl_one(answer):
    """Lesson 03, exercise 3: the TTL TC ingress reports when the rewriting XDP program gets a
    frame sent with TTL 1. Measured: the frame goes through the program in a lab of its own."""
    if not (hook_available("xdp") and hook_available("tc-ingress")):
        return NotHere("checking the TTL", why_not("xdp") or why_not("tc-ingress"))
    try:
        want = int(answer)
    except (TypeError, ValueError):
        return CheckResult(False, f"{answer!r}: give a whole number, the TTL TC ingress "
                                  "reports")
    run = in_lab_thread(_rewrite_run, with_ttl(sample_frame(), 1))
    if not isinstance(run, tuple):
        return run
    tc = run[3]
    if tc is None:
        return NotHere("checking the TTL", "TC ingress recorded nothing for the frame")
    got = int(tc["ttl"])
    if want == got:
        return CheckResult(True, f"measured: TC ingress saw TTL {got}. A router does not "
                                 "forward a packet whose TTL would reach 0; it drops it and "
                                 "sends ICMP time exceeded, so the program leaves it alone")
    return CheckResult(False, f"TTL {want} is not what TC ingress recorded for a frame sent "
                              "with TTL 1: read the program's condition again (which TTLs does "
                              "it decrement?), in pl.exercises.ttl_rewrite_text()")


@guarded
def check_qinq_tags(tags, outer, inner, lab):
    """Lesson 03, exercise 2: how many VLAN tags TC ingress reports for the first Q-in-Q frame
    of qinq.pcap, and where the outer and the inner tag came from ("bytes" or "metadata").
    Checked by sending the frame across the learner's lab."""
    from ...packet import record as R
    from ..pcaps import frames
    if not lab:
        return NotHere("checking the tags", lab.why() if hasattr(lab, "why") else "no lab")
    if "tc-ingress" not in lab.hooks:
        return NotHere("checking the tags", "tc-ingress is not attached: "
                       + lab.unavailable.get("tc-ingress", "tick it in the hook chooser"))
    from ...replay import compare
    st = lab.step(frames("qinq.pcap", 1)[0])
    res = st.batch.hooks["tc-ingress"]
    if int(res.verdict[0]) > compare.DISAGREE:
        return NotHere("checking the tags", "tc-ingress recorded nothing for the frame")
    rec = res.matched[0]
    depth = int(rec["vlan_depth"])
    meta = bool(int(rec["flags"]) & R.constants()["PL_F_VLAN_FROM_META"])
    want = {"tags": depth, "outer": "metadata" if meta else "bytes", "inner": "bytes"}

    def where(a):
        a = norm(a)
        return ("metadata" if a in ("metadata", "meta", "skb", "skb-metadata", "sk-buff")
                else "bytes" if a in ("bytes", "frame", "packet", "data") else a)
    got = {"tags": tags, "outer": where(outer), "inner": where(inner)}
    try:
        got["tags"] = int(tags)
    except (TypeError, ValueError):
        pass
    wrong = [k for k in want if got[k] != want[k]]
    if not wrong:
        return CheckResult(True, f"{depth} tags at TC ingress: the outer one from skb "
                                 "metadata (the stack untags one tag, the outer), the inner "
                                 "one still in the bytes")
    hints = {"tags": "the number of tags: read vlan_depth in tc-ingress's column of the "
                     "stepper, for a frame of qinq.pcap",
             "outer": "the outer tag: compare tc-ingress's frame_len with the walker's, and "
                      "read its flags",
             "inner": "the inner tag: how many bytes shorter is the frame at tc-ingress, and "
                      "how long is one tag?"}
    return CheckResult(False, "not yet right: " + ", ".join(wrong),
                       "<ul>" + "".join(f"<li>{esc(hints[k])}</li>" for k in wrong) + "</ul>")


def xdp_rewrite_demo(frame, lab=None):
    """XDP that decrements the IPv4 TTL (as a router would) after recording the frame: what the
    XDP record says, and what TC ingress, running after it, sees. Its own small lab."""
    if not (hook_available("xdp") and hook_available("tc-ingress")):
        return NotHere("XDP rewrite demo", why_not("xdp") or why_not("tc-ingress"))
    return in_lab_thread(ttl_rewrite_demo, frame)
