"""Exercise checkers for the lessons, and the program variants they (and lesson 03) need.

C exercises hand the learner one function of bpf_snippets/pktlab_parse.h with something taken
out. The checker puts the learner's version back into a copy of the XDP program (the headers
inlined, as tests/test_kernel_parse.py builds its broken copy), then does what a reviewer
would:
  1. compile and load it: the verifier's verdict, in its own words when it refuses;
  2. test-run it (BPF_PROG_TEST_RUN) on every frame of the corpus;
  3. compare each record with the walker's, field by field.
Passing means: loaded, and every record agrees.

Solutions are kept apart, in notebooks/solutions/ (tests prove each one passes its checker).
Checkers never raise on a wrong answer: they show what is wrong, and the notebook goes on.
"""

import os
import re
import time

from .. import lessons as L
from .. import resources

__all__ = [
    "C_EXERCISES", "exercise_source", "check_c", "check_eth_bounds", "check_ihl_minimum",
    "check_dscp", "check_wire_order", "check_btf_field", "check_native_xdp_order",
    "check_vlan_flag", "check_explained", "check_cheapest_hook", "ttl_rewrite_demo",
    "xdp_program_text",
]

#: C exercises: name -> (function in pktlab_parse.h, the lines taken out of it, what to say)
C_EXERCISES = {
    "eth-bounds": (
        "parse_ethhdr",
        "\tif ((void *)(eth + 1) > data_end)\n\t\treturn -PL_ST_TRUNCATED;\n",
        "the Ethernet bounds check"),
    "ihl-minimum": (
        "parse_iphdr",
        "\tif (hdrsize < (int)sizeof(*iph))\n\t\treturn -PL_ST_IHL_LT5;\n",
        "the check that IHL is at least 5 before it is used as a length"),
}


def _snip(name):
    with open(resources.snippet_path(name)) as f:
        return f.read()


def xdp_program_text(parse_text=None, program="xdp.bpf.c"):
    """The XDP program as one text, with pktlab_common.h and pktlab_parse.h inlined
    (``parse_text`` replaces the parser header)."""
    parse = _snip("pktlab_parse.h") if parse_text is None else parse_text
    common = _snip("pktlab_common.h").replace('#include "pktlab_parse.h"', parse)
    text = _snip(program)
    if '#include "pktlab_common.h"' not in text:
        raise ValueError(f"{program} does not include pktlab_common.h")
    return text.replace('#include "pktlab_common.h"', common)


def exercise_source(name):
    """The function the learner fixes: the real one from pktlab_parse.h, minus the lines."""
    fn, lines, _what = C_EXERCISES[name]
    text = L.extract_function(_snip("pktlab_parse.h"), fn)
    if lines not in text:
        raise ValueError(f"exercise {name}: pktlab_parse.h's {fn} no longer has the lines the "
                         "exercise removes; update C_EXERCISES in pktlab/exercises.py")
    return text.replace(lines, "", 1)


def _with_function(fn, learner_text):
    parse = _snip("pktlab_parse.h")
    original = L.extract_function(parse, fn)
    m = re.search(r"\b" + re.escape(fn) + r"\s*\(", learner_text)
    if not m:
        raise ValueError(f"your text has no function {fn}(...): paste the whole function, "
                         "from its first line to the closing brace")
    return parse.replace(original, learner_text.strip("\n") + "\n", 1)


def corpus_frames(limit_per_file=None):
    """(file, frame number, bytes) for every frame of every capture in the capture directory."""
    out = []
    for name in L.captures():
        try:
            for f in L.read(name, limit_per_file):
                out.append((name, f.index, f.data))
        except Exception:            # a capture the reader refuses is not an exercise's business
            continue
    return out


class CheckResult(L.HTML):
    """What a checker found: ``passed``, and the HTML that shows why."""

    def __init__(self, passed, title, body="", text=""):
        self.passed = bool(passed)
        mark = "passed" if passed else "not yet"
        box = (f'<div class="{"pll-pass" if passed else "pll-fail"}"><b>{L.esc(mark)}:</b> '
               f"{L.esc(title)}</div>")
        super().__init__(box + body, f"{mark}: {title}" + (f"\n{text}" if text else ""))

    def __bool__(self):
        return self.passed


_HIT = re.compile(r"invalid access to packet|outside of the packet|invalid mem access|"
                  r"unbounded|R\d+ !read_ok|math between|invalid read|out of bounds|"
                  r"min value is negative|error:", re.I)


def _log_html(log, tail=18):
    lines = [ln for ln in log.strip().splitlines() if ln.strip()]
    lines = lines[-tail:]
    out = []
    for ln in lines:
        e = L.esc(ln)
        out.append(f'<span class="pll-hit">{e}</span>' if _HIT.search(ln) else e)
    return '<div class="pll-log">' + "\n".join(out) + "</div>"


def check_c(name, learner_text):
    """Check a C exercise: compile + verifier, test run on the corpus, compare with the walker."""
    fn, _lines, what = C_EXERCISES[name]
    if not L.hook_available("xdp"):
        return L.NotHere(f"checking {fn}", "the checker loads an XDP program: " + L.why_not("xdp"))
    return L.in_lab_thread(_check_c, fn, what, learner_text)


def _check_c(fn, what, learner_text):
    import numpy as np

    from ..kernel import bpf
    from ..replay import compare
    from ..packet import record as R
    from ..errors import BPFError
    try:
        text = xdp_program_text(_with_function(fn, learner_text))
    except ValueError as e:
        return CheckResult(False, str(e))
    t0 = time.perf_counter()
    try:
        prog = bpf.compile_program(None, "pktlab_xdp", "XDP",
                                   tuple(bpf.transport_cflags(slots=16)), text=text)
    except BPFError as e:
        stage = "did not compile" if str(e).startswith("compile") else "the verifier refused it"
        body = (f"<p class='pll-mono'>{L.esc(str(e).splitlines()[0])}</p>"
                "<p>the last lines of the log (the verifier walks every path; it stops at the "
                "first access it cannot prove safe):</p>" + _log_html(e.log or str(e)))
        hint = ""
        if "invalid access to packet" in (e.log or ""):
            hint = ("<p class='pll-note'>hint: a packet pointer may only be read after a "
                    "comparison with data_end has proved the bytes are there.</p>")
        return CheckResult(False, f"{fn}: {stage}", body + hint, e.log[-1500:] if e.log else "")
    loaded = f"loaded: the verifier accepted it ({time.perf_counter() - t0:.1f} s to compile and verify)"
    try:
        corpus = [c for c in corpus_frames() if len(c[2]) >= bpf.MIN_TEST_RUN_FRAME]
        ring = prog.ring()
        ring.read()
        got = np.zeros(len(corpus), dtype=R.RECORD_DTYPE)
        missing = []
        for i, (_n, _k, data) in enumerate(corpus):
            try:
                bpf.test_run(prog, data)
            except BPFError as e:
                missing.append((i, str(e)))
                continue
            recs = ring.read()
            if len(recs) != 1:
                missing.append((i, f"{len(recs)} records instead of one"))
                continue
            got[i] = recs[0]
    finally:
        bpf.release(prog)
    walked = compare.walker_records([c[2] for c in corpus])
    mask = compare.compare_mask()
    same = (got.view(np.uint8).reshape(len(corpus), -1)[:, mask] ==
            walked.view(np.uint8).reshape(len(corpus), -1)[:, mask]).all(axis=1)
    for i, _why in missing:
        same[i] = False
    bad = np.flatnonzero(~same)
    rows = []
    for i in bad[:10]:
        name_, idx, data = corpus[i]
        why = dict(missing).get(int(i))
        diff = why or ", ".join(R.compare_fields(got[i], walked[i], ignore=compare.IGNORED_FIELDS))
        rows.append([name_, idx, len(data), L._record_summary(walked[i]),
                     "-" if why else L._record_summary(got[i]), diff])
    files = sorted({corpus[i][0] for i in bad})
    summary = (f"{len(corpus) - len(bad)} of {len(corpus)} corpus frames: the kernel's record "
               f"equals the walker's")
    body = f"<p>{L.esc(loaded)}</p><p>{L.esc(summary)}</p>"
    if len(bad):
        body += (f"<p>records that differ ({len(bad)}, in {L.esc(', '.join(files))}); the first "
                 "few:</p>" + L.table(["capture", "#", "bytes", "walker", "your program",
                                       "differs in"], rows))
        body += ("<p class='pll-note'>the verifier proves the program is safe, not that it is "
                 "right: the corpus is what tells you it parses like the walker.</p>")
        return CheckResult(False, f"{fn}: loads, but {len(bad)} records differ from the walker's",
                           body, summary)
    return CheckResult(True, f"{fn}: loads, and agrees with the walker on the whole corpus "
                             f"({what} is back)", body, summary)


def check_eth_bounds(learner_text):
    """Lesson 02, exercise 1: put the Ethernet bounds check back into parse_ethhdr."""
    return check_c("eth-bounds", learner_text)


def check_ihl_minimum(learner_text):
    """Lesson 02, exercise 2: parse_iphdr uses IHL as a length without checking it is >= 5."""
    return check_c("ihl-minimum", learner_text)


# --- Python: add a field to the parse ------------------------------------------------------------

def _dscp_expected(frame):
    """DSCP by scapy (the oracle), where the walker says a whole IPv4 header is there."""
    from ..packet import record as R
    from ..packet.walker import walk_record
    r = walk_record(frame)
    C = R.constants()
    if r.eth_proto != 0x0800 or r.layer < C["PL_L_IPV4"]:
        return None
    if r.status == C["PL_ST_TRUNCATED"] and r.layer == C["PL_L_IPV4"]:
        return None
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether
    p = Ether(frame)
    ip = p.getlayer(IP)
    if ip is None:
        return None
    return int(ip.tos) >> 2


def _dscp_frames():
    """The corpus has no DSCP set anywhere: a few frames that do (EF, AF41, CS1 with ECN
    bits, behind VLAN tags), made with scapy."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    pkts = [e / IP(tos=0xB8) / UDP(), e / IP(tos=0x8A) / UDP(), e / IP(tos=0x23) / UDP(),
            e / Dot1Q(vlan=5) / IP(tos=0xB8) / UDP(),
            e / Dot1AD(vlan=3) / Dot1Q(vlan=4) / IP(tos=0x48) / UDP(),
            e / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / IP(tos=0xB8) / UDP()]
    return [("(crafted, DSCP set)", i + 1, bytes(p)) for i, p in enumerate(pkts)]


def check_dscp(fn):
    """Lesson 01: ``fn(frame)`` must return the IPv4 DSCP (TOS >> 2), or None without a whole
    IPv4 header (at most two VLAN tags, like pktlab's parser). Checked against scapy on every
    frame of the corpus, and on a few frames with DSCP set (the corpus has none)."""
    import logging
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    corpus = corpus_frames() + _dscp_frames()
    bad = []
    for name, idx, data in corpus:
        want = _dscp_expected(data)
        try:
            got = fn(data)
        except Exception as e:          # the learner's code: show, do not fail the notebook
            got = f"raised {type(e).__name__}: {e}"
        if got != want:
            bad.append((name, idx, len(data), want, got))
    n = len(corpus)
    shown, per_file = [], {}
    for b in bad:                       # a few of each kind of mistake, not ten ARP frames
        if per_file.get(b[0], 0) < 2 and len(shown) < 12:
            per_file[b[0]] = per_file.get(b[0], 0) + 1
            shown.append(b)
    frames_by = {(c[0], c[1]): c[2] for c in corpus}
    rows = [[b[0], b[1], b[2], repr(b[3]), repr(b[4]), L.walk(frames_by[(b[0], b[1])]).summary()]
            for b in shown]
    body = f"<p>{n - len(bad)} of {n} corpus frames right.</p>"
    if bad:
        body += ("<p>some of them (at most two per capture):</p>" +
                 L.table(["capture", "#", "bytes", "scapy says", "yours", "walker"], rows))
        return CheckResult(False, f"dscp(): {len(bad)} frames differ from scapy", body,
                           f"{len(bad)} of {n} differ")
    return CheckResult(True, f"dscp() agrees with scapy on all {n} frames (the corpus, and a "
                             "few made with DSCP set)", body)


# --- questions ---------------------------------------------------------------------------------

def _norm(s):
    return str(s).strip().lower().replace("_", "-").replace(" ", "-")


def check_wire_order(answer):
    """Lesson 00: the hooks in the order a packet meets them, from src to dut (generic XDP)."""
    from ..kernel.hooks import WIRE_ORDER
    got = tuple(_norm(a) for a in (answer or ()))
    if got == WIRE_ORDER:
        return CheckResult(True, " → ".join(WIRE_ORDER) + ": lesson 05 shows it on a timeline")
    hints = ["tc-egress runs on the sender (src), before the packet crosses the veth",
             "the kprobe hook sits at the start of __netif_receive_skb_core, where the "
             "netif_receive_skb tracepoint fires",
             "generic XDP runs inside __netif_receive_skb_core, after that tracepoint",
             "TC ingress comes after generic XDP (and after the VLAN untag)"]
    return CheckResult(False, f"{' → '.join(got) or '(no answer)'} is not the order",
                       "<ul>" + "".join(f"<li>{L.esc(h)}</li>" for h in hints) + "</ul>")


def check_btf_field(path, offset):
    """Lesson 04: where this kernel keeps skb->protocol (path and byte offset, from BTF)."""
    try:
        want, size = L.btf_offset("sk_buff.protocol")
    except Exception as e:
        return L.NotHere("checking a BTF offset", str(e))
    p = str(path or "").strip()
    if p != "sk_buff.protocol":
        return CheckResult(False, f"path {p!r}: the member is `protocol` of struct sk_buff; "
                                  "write it as 'struct.member'")
    if offset != want:
        return CheckResult(False, f"offset {offset!r} is not where this kernel keeps it: ask "
                                  "pl.btf_offset(...)")
    return CheckResult(True, f"sk_buff.protocol is at byte {want} ({size} bytes) in kernel "
                             f"{os.uname().release}; another kernel may put it elsewhere, "
                             "which is why pktlab asks BTF")


def check_vlan_flag(answer):
    """Lesson 03: the record field (and flag) that says TC took the VLAN tag from metadata."""
    a = _norm(answer)
    if a in ("flags", "vlan-from-meta", "pl-f-vlan-from-meta", "flags&pl-f-vlan-from-meta"):
        return CheckResult(True, "flags & PL_F_VLAN_FROM_META: tc.bpf.c sets it when "
                                 "skb->vlan_present")
    return CheckResult(False, f"{answer!r}: look at the records of a tagged frame: which field "
                              "differs at tc-ingress besides the lengths?")


def check_native_xdp_order(answer):
    """Lesson 05: with native XDP, the order in which the dut-side hooks see a packet.

    Measured, not looked up: a throwaway lab with XDP in native mode follows one frame."""
    return L.in_lab_thread(_check_native_xdp_order, answer)


def _check_native_xdp_order(answer):
    hooks = [h for h in L.HOOKS if L.hook_available(h)]
    if "xdp" not in hooks:
        return L.NotHere("checking the native XDP order", L.why_not("xdp"))
    frame = _sample_frame()
    lab = L.open_lab(hooks, xdp_mode="native")
    try:
        if not lab:
            return L.NotHere("checking the native XDP order", lab.why())
        belt = lab.follow(frame)
        order = [h for h in belt.order() if h != "tc-egress"]
    finally:
        lab.close()
    got = [_norm(a) for a in (answer or ())]
    if got == order:
        return CheckResult(True, "measured: " + " → ".join(order) + ". Native XDP runs in the "
                           "veth driver's NAPI poll, before the stack (and its tracepoint) "
                           "gets an skb")
    return CheckResult(False, f"{' → '.join(got) or '(no answer)'}: not what the lab measured "
                              "(open a lab with xdp_mode='native' and follow a packet)")


def check_explained(answer, lab, name="vlan.pcap", hook="tc-ingress"):
    """Lesson 07: the frame numbers of ``name`` whose ``hook`` record was an explained
    difference. Checked by sending the capture across ``lab``."""
    if not lab:
        return L.NotHere("checking explained frames", lab.why() if hasattr(lab, "why") else "")
    if hook not in lab.hooks:
        return L.NotHere("checking explained frames", f"{hook} is not attached: "
                         + lab.unavailable.get(hook, ""))
    from ..replay import compare
    br = lab.run(L.frames(name))
    v = br.hooks[hook].verdict
    want = sorted(int(i) + 1 for i in range((len(v))) if v[i] == compare.EXPLAINED)
    got = sorted(int(a) for a in (answer or ()))
    if got == want:
        reasons = {compare.REASONS[int(br.hooks[hook].reason[i - 1])] for i in want}
        return CheckResult(True, f"frames {want}: " + "; ".join(sorted(reasons)))
    return CheckResult(False, f"{got}: not the frames {hook} explained in {name} "
                              f"({len(want)} frames are)")


def check_cheapest_hook(answer, results):
    """Lesson 06: the hook whose program costs least per packet in these bench results."""
    micro = (results or {}).get("micro") or {}
    costs = {k: v.get("ns_per_pkt") for k, v in micro.items() if v.get("ns_per_pkt") is not None}
    if not costs:
        return L.NotHere("checking the cheapest hook", "no micro-benchmark results to read")
    best = min(costs, key=costs.get)
    if _norm(answer) == _norm(best):
        return CheckResult(True, f"{best}: {costs[best]:.0f} ns per packet in these results")
    return CheckResult(False, f"{answer!r}: read the ns_per_pkt column again "
                              f"({', '.join(f'{k} {v:.0f}' for k, v in sorted(costs.items()))})")


# --- lesson 03: XDP rewrites a field, TC sees the result ----------------------------------------

def ttl_rewrite_text():
    """The lesson-03 variant of xdp.bpf.c: its PL_REWRITE_TTL block, which records the frame
    and then decrements the TTL as a router would (the C lives in bpf_snippets/xdp.bpf.c)."""
    from ..kernel import bpf
    with open(resources.snippet_path("xdp.bpf.c")) as f:
        text = f.read()
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


def _sample_frame():
    fr = L.frames("tcp-http.pcap", 4)
    return fr[3] if len(fr) > 3 else fr[0]


def ttl_rewrite_demo(frame=None):
    """Send ``frame`` through the TTL-rewriting XDP program and TC ingress, in a lab of its own."""
    import numpy as np

    from ..kernel import bpf
    from ..replay import compare
    from ..packet import record as R
    from ..kernel.attach import XdpAttachment
    from ..errors import BPFError, PktlabError
    from ..kernel.hooks import HookSet
    from ..lab.inject import Injector
    from ..lab.labs import Lab
    frame = bytes(frame if frame is not None else _sample_frame())
    after = ttl_rewritten(frame)
    try:
        prog = bpf.load("xdp", slots=16, extra_cflags=("-DPL_REWRITE_TTL",))
    except BPFError as e:
        return CheckResult(False, f"the rewriting XDP program did not load: {e}",
                           _log_html(e.log or ""))
    got = {"xdp": [], "tc-ingress": []}
    try:
        with Lab(prefix=L.LAB_PREFIX) as lab:
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
        return L.NotHere("XDP rewrite demo", str(e))
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
        cells = [(L.esc(f), "")]
        for _label, r in cols:
            if r is None:
                cells.append(("no record", "pll-diff"))
                continue
            v = int(r[f])
            text = (R.status_name(v) if f == "status" else R.layer_name(v) if f == "layer"
                    else f"{v:016x}" if f == "fingerprint" else str(v))
            klass = "pll-num pll-expl" if v != int(w_before[f]) else "pll-num"
            cells.append((L.esc(text), klass))
        rows.append(cells)
    mask = compare.compare_mask()

    def same(a, b):
        return a is not None and np.array_equal(np.asarray(a).reshape(1).view(np.uint8)[mask],
                                                np.asarray(b).reshape(1).view(np.uint8)[mask])
    ok = same(xdp, w_before) and same(tc, w_after)
    body = L.table(["field", *(c[0] for c in cols)], rows, raw=True)
    title = ("XDP recorded TTL {} and rewrote it; TC ingress saw TTL {}: it agrees with the "
             "walker's record of the rewritten bytes, not of the bytes sent".format(
                 int(w_before["ttl"]), int(tc["ttl"]) if tc is not None else "?")
             if ok else "unexpected: see the table")
    return CheckResult(ok, title, body)
