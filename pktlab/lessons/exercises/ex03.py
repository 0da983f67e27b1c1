"""Lesson 03: XDP rewrites a field, TC sees the result; and the exercise on the flag that says
TC took a VLAN tag from metadata.

The demo runs xdp.bpf.c built with PL_REWRITE_TTL (it records the frame, then decrements the
IPv4 TTL as a router would) next to TC ingress in a lab of its own, and shows each hook's record
against the walker's records of the bytes sent and of the bytes after the rewrite.
"""

import re
import time

from ..here import hook_available, in_lab_thread, why_not
from ..html import NotHere, esc, table
from ..live import LAB_PREFIX
from .common import CheckResult, log_html, norm, sample_frame, snippet_text


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


def ttl_rewrite_demo(frame=None):
    """Send ``frame`` through the TTL-rewriting XDP program and TC ingress, in a lab of its own."""
    import numpy as np

    from ...kernel import bpf
    from ...replay import compare
    from ...packet import record as R
    from ...kernel.attach import XdpAttachment
    from ...errors import BPFError, PktlabError
    from ...kernel.hooks import HookSet
    from ...lab.inject import Injector
    from ...lab import Lab
    frame = bytes(frame if frame is not None else sample_frame())
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
    title = ("XDP recorded TTL {} and rewrote it; TC ingress saw TTL {}: it agrees with the "
             "walker's record of the rewritten bytes, not of the bytes sent".format(
                 int(w_before["ttl"]), int(tc["ttl"]) if tc is not None else "?")
             if ok else "unexpected: see the table")
    return CheckResult(ok, title, body)


def xdp_rewrite_demo(frame, lab=None):
    """XDP that decrements the IPv4 TTL (as a router would) after recording the frame: what the
    XDP record says, and what TC ingress, running after it, sees. Its own small lab."""
    if not (hook_available("xdp") and hook_available("tc-ingress")):
        return NotHere("XDP rewrite demo", why_not("xdp") or why_not("tc-ingress"))
    return in_lab_thread(ttl_rewrite_demo, frame)
