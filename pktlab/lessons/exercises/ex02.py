"""Lesson 02's exercises: C, checked in the kernel.

Each hands the learner one function of bpf_snippets/pktlab_parse.h with something taken out.
The checker puts the learner's version back into a copy of the XDP program (the headers inlined,
as tests/test_kernel_parse.py builds its broken copy), then does what a reviewer would:
  1. compile and load it: the verifier's verdict, in its own words when it refuses;
  2. test-run it (BPF_PROG_TEST_RUN) on every frame of the corpus;
  3. compare each record with the walker's, field by field.
Passing means: loaded, and every record agrees.
"""

import re
import time

from ..here import hook_available, in_lab_thread, why_not
from ..html import NotHere, esc, table
from ..results import record_summary
from ..source import extract_function
from .common import CheckResult, corpus_frames, guarded, log_html, snippet_text

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


def xdp_program_text(parse_text=None, program="xdp.bpf.c"):
    """The XDP program as one text, with pktlab_common.h and pktlab_parse.h inlined
    (``parse_text`` replaces the parser header)."""
    parse = snippet_text("pktlab_parse.h") if parse_text is None else parse_text
    common = snippet_text("pktlab_common.h").replace('#include "pktlab_parse.h"', parse)
    text = snippet_text(program)
    if '#include "pktlab_common.h"' not in text:
        raise ValueError(f"{program} does not include pktlab_common.h")
    return text.replace('#include "pktlab_common.h"', common)


def exercise_source(name):
    """The function the learner fixes: the real one from pktlab_parse.h, minus the lines."""
    fn, lines, _what = C_EXERCISES[name]
    text = extract_function(snippet_text("pktlab_parse.h"), fn)
    if lines not in text:
        raise ValueError(f"exercise {name}: pktlab_parse.h's {fn} no longer has the lines the "
                         "exercise removes; update C_EXERCISES in "
                         "pktlab/lessons/exercises/ex02.py")
    return text.replace(lines, "", 1)


def _with_function(fn, learner_text):
    parse = snippet_text("pktlab_parse.h")
    original = extract_function(parse, fn)
    m = re.search(r"\b" + re.escape(fn) + r"\s*\(", learner_text)
    if not m:
        raise ValueError(f"your text has no function {fn}(...): paste the whole function, "
                         "from its first line to the closing brace")
    return parse.replace(original, learner_text.strip("\n") + "\n", 1)


def _learner_lines(text, learner_text):
    """(first line of the learner's function in the program text, its lines), 1-based."""
    body = learner_text.strip("\n")
    at = text.find(body)
    first = text.count("\n", 0, at) + 1 if at >= 0 else None
    return first, body.splitlines()


def _where(n, first, lines, fn):
    """A line of the compiled program (bcc calls it main.c) in the learner's words."""
    if first is not None and first <= n < first + len(lines):
        return f"your {fn}, line {n - first + 1}"
    return "pktlab's XDP program (not your function)"


def _refused(fn, a, text, learner_text):
    """The compiler's, the verifier's or the learner loader's refusal (the loader's Attempt
    `a`), key lines first: what it says, and the line of the learner's function it stopped at;
    the log itself folded away below, with bcc's file name (main.c, a file the learner does
    not have) replaced by the learner's own lines."""
    from ...kernel.verifier import key_lines
    compiled = a.stage == "compile"
    log = (a.compiler if compiled else a.refusal["message"] if a.refusal is not None
           else a.log) or f"the kernel refused the program (errno {a.errno})"
    first, lines = _learner_lines(text, learner_text)
    at = re.compile(r"(?:/virtual/)?main\.c:(\d+)(?::\d+)?")
    readable = at.sub(lambda m: _where(int(m.group(1)), first, lines, fn), log)
    if compiled:
        keys = [ln.strip() for ln in readable.splitlines() if "error:" in ln][:4]
        stopped = [int(m.group(1)) for m in at.finditer(log)][:1]
        stage = "did not compile"
    elif a.refusal is not None:            # pktlab's own policy (a map, a limit)
        keys = [a.refusal["message"]]
        stopped = [a.refusal["line"]] if a.refusal.get("line") else []
        stage = "pktlab's learner loader refused it"
    else:
        keys, insn, noted = key_lines(log)
        # the loader's instruction -> line map (bcc's source dump, `#line`-kept), then the
        # verifier's own notes where it printed them
        noted = {**a.insn_lines, **noted}
        earlier = [k for k in noted if insn is not None and k <= insn]
        stopped = [noted[max(earlier)]] if earlier else []
        stage = "the verifier refused it"
    said = ("the compiler's errors" if compiled else "what the verifier says (its last "
            "lines, which name what it could not prove safe)")
    body = (f'<div class="pll-why"><b>{said}</b>:<br>' + "<br>".join(
                f'<span class="pll-mono pll-hit">{esc(k)}</span>' for k in keys) + "</div>")
    if stopped and first is not None and first <= stopped[0] < first + len(lines):
        k = stopped[0] - first + 1
        body += (f"<p>where: line {k} of your {esc(fn)}: <code>{esc(lines[k - 1].strip())}"
                 "</code></p>")
    elif stopped:
        body += "<p>where: in pktlab's XDP program, outside your function</p>"
    if "invalid access to packet" in log:
        body += ("<p class='pll-note'>hint: a packet pointer may only be read after a "
                 "comparison with data_end has proved the bytes are there.</p>")
    body += ("<details><summary>the whole log" + ("" if compiled else " (the verifier walks "
             "every path and stops at the first access it cannot prove safe; its last lines "
             "are the ones above)") + "</summary>" + log_html(readable, tail=40) + "</details>")
    return CheckResult(False, f"{fn}: {stage}", body, "\n".join(keys))


def _ring(prog, defines):
    """The record ring of a LearnerProgram, read here from its events and ctl maps (mmapped
    arrays; the reader takes its own references to the fds, none goes to the learner)."""
    import contextlib

    from ...errors import BPFError
    from ...kernel.ringbuf import RingReader
    from ...packet.record import RECORD_DTYPE
    flags = dict(d.split("=", 1) for d in defines if "=" in d)
    if "ctl" not in prog.maps or "events" not in prog.maps:
        raise BPFError(f"{prog.func} has no record ring (maps ctl and events)")
    ring = RingReader(prog.maps["ctl"].fd, prog.maps["events"].fd, int(flags["PL_NCPUS"]),
                      int(flags["PL_SLOTS"]), RECORD_DTYPE)
    return contextlib.closing(ring)


def _records(prog, defines, corpus):
    """Each corpus frame test-run once by `prog` (closed after): the record it left in the
    ring, and [(index, why)] of the frames that left none."""
    import numpy as np

    from ...errors import BPFError
    from ...packet import record as R
    got = np.zeros(len(corpus), dtype=R.RECORD_DTYPE)
    missing = []
    with prog, _ring(prog, defines) as ring:
        ring.read()
        for i, (_n, _k, data) in enumerate(corpus):
            try:
                prog.test_run(data)
            except BPFError as e:
                missing.append((i, str(e)))
                continue
            recs = ring.read()
            if len(recs) != 1:
                missing.append((i, f"{len(recs)} records instead of one"))
                continue
            got[i] = recs[0]
    return got, missing


def check_c(name, learner_text):
    """Check a C exercise: compile + verifier, test run on the corpus, compare with the walker."""
    fn, _lines, what = C_EXERCISES[name]
    if not hook_available("xdp"):
        return NotHere(f"checking {fn}", "the checker loads an XDP program: " + why_not("xdp"))
    return in_lab_thread(_check_c, fn, what, learner_text)


def _check_c(fn, what, learner_text):
    """Load through the learner loader (pktlab.kernel.loader: a restricted worker as
    pktlab-loader builds the program's learner flavor; this process holds only the fds), test
    run on the corpus, read each record from the program's own ring (mmapped maps)."""
    import numpy as np

    from ... import resources
    from ...kernel import bpf, loader
    from ...kernel.progload import LoadRequest
    from ...replay import compare
    from ...packet import record as R
    from . import assignments as A
    try:
        text = xdp_program_text(_with_function(fn, learner_text))
    except ValueError as e:
        return CheckResult(False, str(e))
    # pktlab's own -D flags (the record transport's); the loader keeps the text's lines (it
    # puts `#line N` before each), so the verifier's notes name the text's own lines
    t0 = time.perf_counter()
    corpus = [c for c in corpus_frames() if len(c[2]) >= bpf.MIN_TEST_RUN_FRAME]
    if A.remote():               # in pktlabd: loaded, run, its records sent back, closed
        from ..remote import load_program
        a, _prog, doc, blob = load_program(text.encode(), "xdp.bpf.c", "XDP", "pktlab_xdp",
                                           ring=True, keep=False, frames=[c[2] for c in corpus])
        if doc.get("runs") is None:
            return _refused(fn, a, text, learner_text)
        got = np.frombuffer(blob, dtype=R.RECORD_DTYPE, count=len(corpus)).copy()
        missing = sorted((int(i), why) for i, why in doc["missing"].items())
    else:
        defines = tuple(f[2:] for f in bpf.transport_cflags(slots=16))
        a, prog = loader.load(LoadRequest(text.encode(), "xdp.bpf.c", "XDP", "pktlab_xdp",
                                          (resources.snippets_dir(),), defines))
        if prog is None:
            return _refused(fn, a, text, learner_text)
        got, missing = _records(prog, defines, corpus)
    loaded = f"loaded: the verifier accepted it ({time.perf_counter() - t0:.1f} s to compile and verify)"
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
        rows.append([name_, idx, len(data), record_summary(walked[i]),
                     "-" if why else record_summary(got[i]), diff])
    files = sorted({corpus[i][0] for i in bad})
    summary = (f"{len(corpus) - len(bad)} of {len(corpus)} corpus frames: the kernel's record "
               f"equals the walker's")
    body = f"<p>{esc(loaded)}</p><p>{esc(summary)}</p>"
    if len(bad):
        body += (f"<p>records that differ ({len(bad)}, in {esc(', '.join(files))}); the first "
                 "few:</p>" + table(["capture", "#", "bytes", "walker", "your program",
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


@guarded
def check_never_sent(answer, lab):
    """Lesson 02, exercise 3: the malformed-*.pcap captures with frames the lab never sends
    (so no hook sees them). Checked by handing every malformed capture to the learner's lab."""
    from ..pcaps import captures, frames
    from .common import norm
    if not lab:
        return NotHere("checking the captures", lab.why() if hasattr(lab, "why") else "no lab")
    names = [n for n in captures() if n.startswith("malformed-")]
    want = set()
    for n in names:
        br = lab.run(frames(n))
        if br is not None and not br.sendable.all():
            want.add(n)
    try:
        given = [answer] if isinstance(answer, str) else list(answer or ())
    except TypeError:
        given = [answer]
    got = set()
    for a in given:
        a = norm(a)
        got.add(a if a.endswith(".pcap") else a + ".pcap")
    if got == want:
        return CheckResult(True, f"{', '.join(sorted(want))}: frames shorter than an Ethernet "
                                 "header. The kernel refuses to send them (packet_snd wants "
                                 "the link-layer header whole), so only the walker parses them")
    unknown = sorted(got - set(names))
    sent = sorted(got & set(names) - want)
    notes = []
    if unknown:
        notes.append(f"not a malformed capture here: {', '.join(unknown)} (pl.captures() lists "
                     "them)")
    if sent:
        notes.append(f"every frame of {', '.join(sent)} is sent: replay it and read the table's "
                     "'sent' count")
    if want - got:
        notes.append("a capture you left out has frames the lab does not send: replay each "
                     "malformed capture and look for frames 'not sent'")
    return CheckResult(False, "not yet", "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes)
                       + "</ul>")


# --- assignments 1 and 4: whole programs of the learner's (exercises/assignments.py) ----------

A1_MAP = "proto_count"


def _a1_rule(fr):
    """What assignment 1 asks for this frame: ("count", protocol), ("none",), or ("either",)
    for a frame a careful program may judge either way (tagged, or an IPv4 header that is
    there but says something impossible)."""
    from .assignments import const
    r = fr.rec
    if int(r.vlan_depth) or (fr.data[12:14] in (b"\x81\x00", b"\x88\xa8")):
        return ("either",)
    if int(r.eth_proto) != 0x0800:
        return ("none",)
    st, layer = int(r.status), int(r.layer)
    if layer == const("L_IPV4") and st == const("ST_TRUNCATED"):
        return ("none",)
    if layer == const("L_IPV4") and st in (const("ST_IHL_LT5"), const("ST_IHL_BEYOND"),
                                           const("ST_BAD_VERSION")):
        return ("either",)
    return ("count", int(r.l4_proto))


def _a1_problem(fr, rc, change):
    """(what the program did, a hint) when it did not do what assignment 1 asks, else None."""
    from .assignments import did
    rule = _a1_rule(fr)
    what = did("XDP", rc, change, A1_MAP)
    if rc != 2:
        return what, ("This assignment only counts: every frame goes on (XDP_PASS), whatever "
                      "it is.")
    one = len(change) <= 1 and all(v == 1 for v in change.values())
    if not one:
        return what, "One frame, one count: add 1, under one key."
    if rule[0] == "either":
        return None
    if rule[0] == "none" and change:
        if int(fr.rec.eth_proto) != 0x0800:
            return what, ("This frame is not IPv4 (read the EtherType right after its MAC "
                          "addresses), yet your program counted it: count only after the "
                          "EtherType test.")
        return what, ("This frame's IPv4 header is cut short (fewer than 20 bytes): count "
                      "only once the bounds check has proved the whole header is there.")
    if rule[0] == "count" and not change:
        hint = ("This frame is IPv4 with its 20-byte header whole, and your program did not "
                "count it. The EtherType is stored big-endian in the frame, while a constant "
                "such as ETH_P_IP is a plain number: compare like with like. And the bounds "
                "check needs to prove the IPv4 header's end is in the frame, no more.")
        if int(fr.rec.ip4_hdr_len) > 20:
            hint += (" (Its IPv4 header carries options: the protocol field is still in the "
                     "fixed 20 bytes.)")
        return what, hint
    if rule[0] == "count" and str(rule[1]) not in change:
        return what, ("Your program counted it, but under a key that is not this frame's IPv4 "
                      "protocol field: compare the key with the header (look at the frame) "
                      "and with the byte your program reads.")
    return None


@guarded
def check_a1(program):
    """Assignment 1 (lesson 02, XDP): count packets per IP protocol in the map proto_count.
    Every corpus frame is test-run once; after each, the map's change is compared with what
    the walker says the frame is."""
    from . import assignments as A
    why = A.not_here("assignment 1")
    if why is not None:
        return why
    return in_lab_thread(_check_a1, program)


def _check_a1(program):
    from . import assignments as A
    t0 = time.monotonic()
    prog, refused = A.load_answer(program, "a1.c", "XDP", "A1")
    if refused is not None:
        return refused
    with prog:
        try:
            problems, n = A.corpus_problems(prog, _a1_problem, A1_MAP)
        except A.AnswerShape as e:
            return CheckResult(False, f"A1: {e}")
    if problems:
        return A.first_wrong("A1", problems, n)
    return A.passed("A1", "loads, and counts every frame of the corpus as the walker reads it",
                    n, t0)


#: assignment 4's frames for the lab: (capture, frame number), IPv4 ones and others
A4_FRAMES = (("tcp-http.pcap", 1), ("arp.pcap", 1), ("dns.pcap", 1), ("icmp-echo.pcap", 1),
             ("tcp-http.pcap", 4), ("icmp-echo.pcap", 4), ("edge.pcap", 4))


def _a4_rule(fr):
    """"bounce" (an untagged IPv4 frame), "pass", or "either" (tagged, or an IPv4 header the
    walker found broken: a careful program may let it go)."""
    from .assignments import const
    r = fr.rec
    if int(r.vlan_depth) or fr.data[12:14] in (b"\x81\x00", b"\x88\xa8"):
        return "either"
    if int(r.eth_proto) != 0x0800:
        return "pass"
    if int(r.status) != const("ST_OK") and int(r.layer) == const("L_IPV4"):
        return "either"
    return "bounce"


def _a4_verdict_problem(fr, rc):
    from .assignments import verdict_name
    rule = _a4_rule(fr)
    what = f"returned {verdict_name('XDP', rc)}"
    if rule == "bounce" and rc != 3:
        return what, ("An IPv4 frame goes back where it came from: XDP_TX sends it out of the "
                      "interface it arrived on. Check the EtherType test (byte order).")
    if rule == "pass" and rc != 2:
        return what, "Only IPv4 frames bounce; every other frame goes on (XDP_PASS)."
    if rule == "either" and rc not in (2, 3):
        return what, "Every frame either bounces (XDP_TX) or goes on (XDP_PASS)."
    return None


def _a4_lab_problem(fr, back):
    """What came back to src for one frame, against assignment 4's rule."""
    from .assignments import macs
    data = fr.data
    swapped = data[6:12] + data[0:6] + data[12:]
    rule = _a4_rule(fr)
    if rule == "pass":
        if swapped in back or data in back:
            return "came back to src", "Only IPv4 frames bounce; this one should go on."
        return None
    if swapped in back:
        return None
    if not back:
        return ("did not come back to src", "XDP_TX sends the frame back out of the interface "
                "it arrived on; in a real lab it must reach src.")
    if data in back:
        return ("came back unchanged (" + macs(data) + ")",
                "The frame came back with the MAC addresses it was sent with: src would not "
                "take it as addressed to it. Swap them before XDP_TX.")
    got = back[0]
    if len(got) == len(data) and got[12:] == data[12:]:
        return (f"came back with {macs(got)} (sent with {macs(data)})",
                "The MACs are not swapped: each must end up where the other was. Copy one "
                "to a temporary first (__builtin_memcpy with a constant length).")
    return (f"came back changed beyond its MACs ({len(got)} bytes)",
            "Only the two MAC addresses change: everything after byte 12 goes back as it came.")


@guarded
def check_a4(program):
    """Assignment 4 (lesson 02, XDP): swap the MACs of every IPv4 frame and bounce it with
    XDP_TX. The return codes by test run on the corpus, then the real thing: the program on
    a lab of the checker's own, frames sent from src, what comes back to src compared."""
    from . import assignments as A
    why = A.not_here("assignment 4")
    if why is not None:
        return why
    return in_lab_thread(_check_a4, program)


def _check_a4(program):
    from . import assignments as A
    t0 = time.monotonic()
    prog, refused = A.load_answer(program, "a4.c", "XDP", "A4")
    if refused is not None:
        return refused
    with prog:
        problems, n = A.corpus_problems(prog, lambda fr, rc, _c: _a4_verdict_problem(fr, rc))
        if problems:
            return A.first_wrong("A4 (test runs)", problems, n)
        if not hook_available("xdp"):      # the doctor's word: can a lab attach XDP here?
            return NotHere("A4 in a lab", "every verdict is right on the corpus; the lab part "
                           "attaches your program at XDP: " + why_not("xdp"))
        by_name = {(f.capture, f.index): f for f in A.corpus()}
        sent = [by_name[k] for k in A4_FRAMES]
        back = A.bounce_in_lab(prog, [f.data for f in sent])
    for fr, got in zip(sent, back):
        p = _a4_lab_problem(fr, got)
        if p is not None:
            problems.append((fr, *p))
    if problems:
        return A.first_wrong("A4 (in a lab)", problems, len(sent))
    return A.passed("A4", f"every verdict right on the corpus, and in a real lab the "
                          f"{sum(_a4_rule(f) == 'bounce' for f in sent)} IPv4 frames sent "
                          "from src came back to it with their MACs swapped, the others "
                          "did not", n, t0)
