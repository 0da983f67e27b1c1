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


# --- assignments 2 and 5: whole programs of the learner's, at TC (exercises/assignments.py) ---

TC_ACT_OK, TC_ACT_SHOT = 0, 2
A2_PORT = 80


def _tagged(fr):
    return bool(int(fr.rec.vlan_depth)) or fr.data[12:14] in (b"\x81\x00", b"\x88\xa8")


def _a2_rule(fr):
    """"drop" (an IPv4 TCP segment to port 80), "pass", or "either": tagged frames, IPv6 TCP
    to port 80 (IPv6 is not asked for, not forbidden) and frames the walker found malformed."""
    from .assignments import const
    r = fr.rec
    if _tagged(fr):
        return "either"
    if int(r.eth_proto) != 0x0800:
        six_to_port = int(r.eth_proto) == 0x86DD and int(r.l4_proto) == 6 \
            and int(r.dport) == A2_PORT
        return "either" if six_to_port else "pass"
    if int(r.status) != const("ST_OK"):
        return "either"
    return "drop" if int(r.l4_proto) == 6 and int(r.dport) == A2_PORT else "pass"


def _a2_problem(fr, rc):
    from .assignments import verdict_name
    rule = _a2_rule(fr)
    what = f"returned {verdict_name('SCHED_CLS', rc)}"
    r = fr.rec
    longer = int(r.ip4_hdr_len) > 20 and int(r.eth_proto) == 0x0800
    if rc not in (TC_ACT_OK, TC_ACT_SHOT):
        return what, "A frame is either dropped (TC_ACT_SHOT) or goes on (TC_ACT_OK)."
    if rule == "drop" and rc != TC_ACT_SHOT:
        if longer:
            return what, (f"Its IPv4 header is {int(r.ip4_hdr_len)} bytes long, not 20: the "
                          "TCP header starts where the IPv4 header ends, and IHL says where "
                          "that is (in 4-byte words).")
        return what, ("A TCP segment to the blocked port went through. Check the protocol "
                      "test, which of the two ports you compare, and byte order: ports are "
                      "big-endian in the header.")
    if rule == "pass" and rc != TC_ACT_OK:
        if int(r.l4_proto) == 6 and int(r.sport) == A2_PORT:
            return what, ("This segment comes *from* the port (the server's answer): only "
                          "segments going *to* it are dropped.")
        if int(r.l4_proto) == 17:
            return what, ("This frame is UDP: whatever it carries, only a TCP header right "
                          "after the IPv4 header counts.")
        if longer:
            return what, (f"Its IPv4 header is {int(r.ip4_hdr_len)} bytes long: are you "
                          "reading the port where the TCP header really starts?")
        return what, ("This frame is not a TCP segment to the blocked port, yet your program "
                      "dropped it: look at what your program tests before it drops.")
    return None


@guarded
def check_a2(program):
    """Assignment 2 (lesson 03, TC): drop every IPv4 TCP segment to port 80 (TC_ACT_SHOT),
    let everything else go on (TC_ACT_OK). Every corpus frame is test-run once; each return
    code is compared with what the walker says the frame is."""
    from . import assignments as A
    why = A.not_here("assignment 2")
    if why is not None:
        return why
    return in_lab_thread(_check_a2, program)


def _check_a2(program):
    from . import assignments as A
    t0 = time.monotonic()
    prog, refused = A.load_answer(program, "a2.c", "SCHED_CLS", "A2")
    if refused is not None:
        return refused
    with prog:
        problems, n = A.corpus_problems(prog, lambda fr, rc, _c: _a2_problem(fr, rc))
    if problems:
        return A.first_wrong("A2", problems, n)
    return A.passed("A2", "loads, and drops exactly the IPv4 TCP segments to port "
                          f"{A2_PORT} of the corpus", n, t0)


A5_MAP = "flow_bytes"
A5_FIELDS = ("saddr", "daddr", "sport", "dport", "proto")
A5_MAX_CHECKED = 1 << 16      # the most entries the overflow test fills


def _a5_rule(fr):
    """("count", key fields as the map shows them, bytes), ("none",) or ("either",)."""
    from .assignments import const
    r = fr.rec
    if _tagged(fr):
        return ("either",)
    if int(r.eth_proto) != 0x0800:
        return ("none",)
    if int(r.status) != const("ST_OK"):
        return ("either",)
    if int(r.l4_proto) not in (6, 17):
        return ("none",)
    return ("count", _key_as_shown(bytes(r.src_ip[:4]), bytes(r.dst_ip[:4]), int(r.sport),
                                   int(r.dport), int(r.l4_proto)), len(fr.data))


def _key_as_shown(saddr, daddr, sport, dport, proto):
    """The key's fields as the map dump decodes them when they hold the packet's bytes
    (network order) on this (little-endian) machine."""
    import sys

    def n(b):
        return int.from_bytes(b, sys.byteorder)
    return {"saddr": n(saddr), "daddr": n(daddr), "sport": n(sport.to_bytes(2, "big")),
            "dport": n(dport.to_bytes(2, "big")), "proto": proto}


def _swapped(v, width):
    return int.from_bytes(v.to_bytes(width, "little"), "big")


def _a5_key(text):
    """A key of the learner's map (its text from the dump) as a dict of its fields."""
    import json
    from .assignments import AnswerShape
    try:
        key = json.loads(text)
    except ValueError:
        key = None
    if not isinstance(key, dict) or any(f not in key for f in A5_FIELDS):
        raise AnswerShape(f"{A5_MAP}'s keys are not the struct flow of the starting code "
                          f"(a key reads {text[:60]}): keep its fields "
                          f"({', '.join(A5_FIELDS)}, pad), the checker reads them by name")
    return key


def _a5_key_hint(fr, want, got):
    """Why the learner's key for this frame is not the packet's flow: the first field off."""
    widths = {"saddr": 4, "daddr": 4, "sport": 2, "dport": 2}
    pad = got.get("pad")
    if any(pad) if isinstance(pad, list) else pad:
        return ("The key's pad bytes are not zero: every byte of a key is compared, padding "
                "included; start the key from all zeros (= {}).")
    for f in A5_FIELDS:
        if got[f] == want[f]:
            continue
        if f in widths and got[f] == _swapped(want[f], widths[f]):
            return (f"The key's {f} has its bytes in the other order: the assignment keeps "
                    "addresses and ports as they are in the packet (no byte-order "
                    "conversion).")
        if f in ("sport", "dport") and int(fr.rec.ip4_hdr_len) > 20:
            return (f"The key's {f} is not this packet's: its IPv4 header is "
                    f"{int(fr.rec.ip4_hdr_len)} bytes long, so the TCP/UDP header starts "
                    "later than 20 bytes after it.")
        return (f"The key's {f} is not this packet's {f}: compare your key with the frame's "
                "headers (look at it).")
    return "The key differs from this packet's flow."


def _a5_problem(fr, rc, change):
    from .assignments import did
    rule = _a5_rule(fr)
    what = did("SCHED_CLS", rc, change, A5_MAP)
    if rc != TC_ACT_OK:
        return what, "This assignment only counts: every frame goes on (TC_ACT_OK)."
    if len(change) > 1:
        return what, "One packet belongs to one flow: add to one entry."
    if rule[0] == "either":
        return None
    if rule[0] == "none":
        if change:
            return what, ("This frame is not an IPv4 TCP or UDP packet, yet your program "
                          "counted it: test the EtherType and the protocol before counting.")
        return None
    _c, want, size = rule
    if not change:
        return what, ("This IPv4 TCP/UDP packet was not counted. Check the EtherType and "
                      "protocol tests, and that the map takes new flows (its update's return "
                      "value says whether it did).")
    (text, added), = change.items()
    got = _a5_key(text)
    if any(got[f] != want[f] for f in A5_FIELDS) or (
            isinstance(got.get("pad"), list) and any(got["pad"])):
        return what, _a5_key_hint(fr, want, got)
    if added != size:
        return what, (f"The flow's entry grew by {added} bytes for a {size}-byte frame: add "
                      "the packet's whole length as the skb knows it (skb->len).")
    return None


def _made_up_flows(n):
    """n frames of n different UDP flows (198.18.0.0/15, the benchmarking range), made up
    for the map-full test."""
    import struct
    out = []
    for i in range(n):
        src = bytes([198, 18 + (i >> 16 & 1), i >> 8 & 0xFF, i & 0xFF])
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 28, i & 0xFFFF, 0x4000, 64, 17, 0, src,
                         bytes([198, 19, 255, 1]))
        udp = struct.pack(">HHHH", 40000 + (i % 20000), 9, 8, 0)
        out.append(bytes.fromhex("00005e005302" "00005e005301" "0800") + ip + udp)
    return out


def _a5_overflow(prog):
    """More new flows than the map holds, then: is the newest one in it? None, or the
    problem (what happened, hint)."""
    from .assignments import snapshot, test_run_all
    m = prog.maps[A5_MAP]
    n = min(int(m.info.max_entries), A5_MAX_CHECKED) + 64
    frames = _made_up_flows(n)
    test_run_all(prog, frames)
    last = frames[-1]
    want = _key_as_shown(last[26:30], last[30:34], int.from_bytes(last[34:36], "big"),
                         int.from_bytes(last[36:38], "big"), 17)
    keys = [_a5_key(k) for k in snapshot(m)]
    if any(all(k[f] == want[f] for f in A5_FIELDS) for k in keys):
        return None
    return (f"after {n:,} new flows, more than the {int(m.info.max_entries):,} entries "
            f"{A5_MAP} holds, the newest flow has no entry (the map is a {m.type_name})",
            "A map that is full refuses new keys, unless it is of a kind that makes room by "
            "dropping the entry used least recently. A flow table meets new flows all the "
            "time: which map type fits?")


@guarded
def check_a5(program):
    """Assignment 5 (lesson 03, TC): bytes per flow in an LRU map, flow_bytes. Every corpus
    frame is test-run once and the map's change compared with the walker's flow and the
    frame's length; then more made-up flows than the map holds: the newest must get in."""
    from . import assignments as A
    why = A.not_here("assignment 5")
    if why is not None:
        return why
    return in_lab_thread(_check_a5, program)


def _check_a5(program):
    from . import assignments as A
    t0 = time.monotonic()
    prog, refused = A.load_answer(program, "a5.c", "SCHED_CLS", "A5")
    if refused is not None:
        return refused
    with prog:
        try:
            problems, n = A.corpus_problems(prog, _a5_problem, A5_MAP)
            if problems:
                return A.first_wrong("A5", problems, n)
            full = _a5_overflow(prog)
        except A.AnswerShape as e:
            return CheckResult(False, f"A5: {e}")
    if full is not None:
        what, hint = full
        return CheckResult(False, f"A5: every corpus frame counted right, but {what}",
                           f'<div class="pll-why"><b>hint</b>: {esc(hint)}</div>',
                           f"{what}\nhint: {hint}")
    return A.passed("A5", "loads, counts every corpus packet's bytes under its flow, and "
                          "still takes new flows when the map is full", n, t0)
