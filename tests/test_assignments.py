"""The numbered assignments (issue 15, items 4 and 7): whole programs a learner writes in C,
each checked by pl.exercises.check_aN on the corpus (and, for assignment 4, in a real lab).

For every assignment, with real loads through the learner loader and real test runs:
- its solution (notebooks/solutions/aN_*.c) and its starting code (as the lesson notebook
  ships it) compile and load through the learner loader, as its account;
- the solution passes its checker; the starting code fails, and its feedback does not state
  the answer (no line of the solution, no value the program should produce);
- a wrong program that loads fails, naming the frame it gets wrong (and the hint that fits);
- a program that does not compile, or that the verifier refuses, fails at the learner's own
  line, shown, not raised; an answer object that raises is shown as a failed check;
- what `%%bpf` makes (an object with .source/.hook/.func) is taken by its source, a wrong hook
  refused in words;
- the corpus frames the checkers and these tests rely on are what they say (scapy agrees).
"""

import ast
import os
import re
import subprocess
import types

import nbformat
import pytest

from conftest import REPO, require_hook, require_root

NB_DIR = os.path.join(REPO, "notebooks")
SOLUTIONS = os.path.join(NB_DIR, "solutions")
#: assignment -> (lesson, solution file, program type, function)
ASSIGNMENTS = {
    1: ("02-xdp", "a1_count_protos.c", "XDP", "count_protos"),
    2: ("03-tc", "a2_drop_port.c", "SCHED_CLS", "drop_port"),
    3: ("07-replay-your-pcap", "a3_vxlan.c", "XDP", "count_vxlan"),
    4: ("02-xdp", "a4_bounce.c", "XDP", "bounce"),
    5: ("03-tc", "a5_flow_bytes.c", "SCHED_CLS", "count_flows"),
}
NUMBERS = sorted(ASSIGNMENTS)
#: what no feedback may say (regular expressions), beyond the solution's own lines: the values
#: a right program produces (A1's protocol numbers as keys, A3's VNIs), the map type A5 asks for
FORBIDDEN = {1: [r"key (6|17|1)\b", r"proto_count\[\d+\]"], 2: [r"\bdest\b"],
             3: [r"\b(42|74565|7|256)\b", r"0x0*12345", r"\bkey \d+"], 4: [r"XDP_TX;"],
             5: [r"(?i)lru"]}


def need_loader():
    require_root()
    from pktlab.kernel import loader
    ok, why = loader.available()
    if not ok:
        pytest.fail(f"the learner loader cannot start here: {why}", pytrace=False)
    return loader


def need(n):
    """What assignment n's checker needs here (A4 attaches in a lab: XDP)."""
    need_loader()
    if n == 4:
        require_hook("xdp")


def solution(n):
    with open(os.path.join(SOLUTIONS, ASSIGNMENTS[n][1])) as f:
        return f.read()


def starting(n):
    """Assignment n's starting code, as the lesson notebook ships it (the string the cell
    assigns to aN before calling check_aN(aN))."""
    nb = nbformat.read(os.path.join(NB_DIR, ASSIGNMENTS[n][0] + ".ipynb"), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and f"pl.exercises.check_a{n}(a{n})" in cell.source:
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Assign) and node.targets[0].id == f"a{n}":
                    return node.value.value
    raise AssertionError(f"{ASSIGNMENTS[n][0]} has no cell with assignment {n}")


def check(n, program):
    from pktlab.lessons import exercises
    return getattr(exercises, f"check_a{n}")(program)


def shown(result):
    """Everything a result shows, as text (its HTML without tags, and its text form)."""
    import html
    body = result._repr_html_()
    body = re.sub(r"(?s)<style>.*?</style>", "", body)
    return html.unescape(re.sub(r"<[^>]+>", " ", body)) + "\n" + repr(result)


def edit(text, old, new):
    assert text.count(old) == 1, f"the solution changed: {old!r} is not in it once"
    return text.replace(old, new)


def line_of(text, fragment):
    """The 1-based line of `text` holding `fragment` (once)."""
    hits = [i for i, ln in enumerate(text.split("\n"), 1) if fragment in ln]
    assert len(hits) == 1, (fragment, hits)
    return hits[0]


def checker_namespaces():
    """The namespaces of the labs assignment 4's checker makes (its own prefix, so that other
    labs coming and going on this machine do not count)."""
    from pktlab.lessons.exercises.assignments import LAB_PREFIX
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return sorted(ln.split()[0] for ln in out.splitlines() if ln.startswith(LAB_PREFIX))


# --- the loads this module's checkers make ----------------------------------------------------
#: (C text, program type, func asked for) -> what the learner loader made of it, for every load
#: made through loader.load while this module runs (the checkers' own loads included): the
#: Attempt's stage, func and words, and the loaded program's type and loader uid, read while it
#: was open. Lets the load test below judge the very loads the checkers made of the solution
#: and the starting code (the same request: the checker's file name differs, which only names
#: the file in messages) instead of compiling each a third time.
_LOADS = {}


def _facts(attempt, prog):
    return {"stage": attempt.stage, "func": attempt.func, "compiler": attempt.compiler[-800:],
            "log": attempt.log[-800:], "refusal": attempt.refusal,
            "loaded": prog is not None, "prog_type": None if prog is None else prog.prog_type,
            "created_by_uid": None if prog is None else prog.created_by_uid}


@pytest.fixture(scope="module", autouse=True)
def _record_loads():
    """loader.load, recorded in _LOADS for the whole module (the real load, unchanged)."""
    from pktlab.kernel import loader
    real = loader.load

    def recording(req, *a, **kw):
        attempt, prog = real(req, *a, **kw)
        _LOADS.setdefault((bytes(req.text), req.prog_type, req.func), _facts(attempt, prog))
        return attempt, prog
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loader, "load", recording)
        yield
    _LOADS.clear()


def test_the_starting_code_is_in_the_lessons_and_the_answers_are_not():
    for n in NUMBERS:
        text = starting(n)
        assert "TODO" in text and ASSIGNMENTS[n][3] in text
        body = [ln.strip() for ln in solution(n).splitlines()
                if ln.strip() and not ln.strip().startswith(("/*", "*", "#", "}", "{"))]
        # the lines that make the program work are the learner's to write
        assert any(ln not in text for ln in body)
    for stem in {a[0] for a in ASSIGNMENTS.values()}:
        nb = nbformat.read(os.path.join(NB_DIR, stem + ".ipynb"), as_version=4)
        lessons = "\n".join(c.source for c in nb.cells)
        for n in NUMBERS:
            for key in ("lookup_or_try_init(&key, &zero);\n\tif (bytes)",
                        '"lru_hash", struct flow', "vx.vni[0] << 16", "verdict = XDP_TX;",
                        "bpf_skb_load_bytes(skb, sizeof(*eth) + hlen"):
                assert key not in lessons, (stem, key)


# --- right, blank, wrong -----------------------------------------------------------------------

@pytest.mark.parametrize("n", NUMBERS)
def test_the_solution_passes(n):
    need(n)
    before = checker_namespaces()
    r = check(n, solution(n))
    assert r.passed, shown(r)
    assert f"A{n}:" in repr(r)
    assert checker_namespaces() == before


@pytest.mark.parametrize("n", NUMBERS)
def test_the_starting_code_fails_and_the_feedback_does_not_state_the_answer(n):
    need(n)
    r = check(n, starting(n))
    assert not r.passed and r.__class__.__name__ == "CheckResult", shown(r)
    text = shown(r)
    # it loaded and ran: the feedback names a frame and gives a hint, not a refusal
    assert re.search(rf"A{n}\b.*: frame \S+ #\d+ went wrong", text), text
    assert "hint" in text
    for ln in solution(n).splitlines():
        s = ln.strip()
        if len(s) > 12 and not s.startswith(("/*", "*", "#", "//")) and s not in starting(n):
            assert s not in text, f"the feedback shows a line of the solution: {s!r}"
    for pattern in FORBIDDEN[n]:
        assert not re.search(pattern, text), f"the feedback says {pattern!r}"


def _wrong(n, name):
    """The wrong programs: a solution with one mistake learners make, (text, the frame the
    checker must name, words its feedback must hold)."""
    s = solution(n)
    if (n, name) == (1, "ihl-5-only"):
        return (edit(s, "\tkey = iph->protocol;", "\tif (iph->ihl != 5)\n\t\tgoto out;\n"
                     "\tkey = iph->protocol;"), "ipv4-options.pcap #1",
                "Its IPv4 header carries options")
    if (n, name) == (2, "fixed-offset"):
        return (edit(s, "sizeof(*eth) + hlen, &tcp", "sizeof(*eth) + sizeof(*iph), &tcp"),
                "ipv4-options.pcap #7",
                "the TCP header starts where the IPv4 header ends")
    if (n, name) == (2, "source-port"):
        return (edit(s, "tcp.dest ==", "tcp.source =="), "bigendian.pcap #1",
                "which of the two ports")
    if (n, name) == (3, "vni-backwards"):
        return (edit(s, "vni = (u32)vx.vni[0] << 16 | (u32)vx.vni[1] << 8 | vx.vni[2];",
                     "vni = (u32)vx.vni[2] << 16 | (u32)vx.vni[1] << 8 | vx.vni[0];"),
                "tunnels.pcap #1", "not this frame's VNI")
    if (n, name) == (3, "fixed-offset"):
        return (edit(s, "off = sizeof(*eth) + iph->ihl * 4;", "off = sizeof(*eth) + 20;"),
                "tunnels.pcap #6", "outer IPv4 header is 24 bytes long")
    if (n, name) == (3, "any-port"):
        return (edit(s, "\tif (udp.dest != bpf_htons(VXLAN_PORT))\n\t\tgoto out;\n", ""),
                "tunnels.pcap #10", "not sent to port 4789")
    if (n, name) == (4, "no-swap"):
        return (edit(s, "\t__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);\n", ""),
                "tcp-http.pcap #1", "The MACs are not swapped")
    if (n, name) == (4, "bounce-everything"):
        return (edit(s, "\tif (eth->h_proto != bpf_htons(ETH_P_IP))\n\t\tgoto out;\n", ""),
                "arp.pcap #1", "Only IPv4 frames bounce")
    if (n, name) == (5, "host-order-ports"):
        return (edit(s, "\tkey.sport = ports[0];\n\tkey.dport = ports[1];",
                     "\tkey.sport = bpf_ntohs(ports[0]);\n\tkey.dport = bpf_ntohs(ports[1]);"),
                "bigendian.pcap #1", "bytes in the other order")
    if (n, name) == (5, "plain-hash"):
        return (edit(s, 'BPF_TABLE("lru_hash", struct flow, u64, flow_bytes, 1024);',
                     "BPF_HASH(flow_bytes, struct flow, u64, 1024);"),
                None, "the newest flow has no entry (the map is a HASH)")
    raise KeyError((n, name))


WRONG = [(1, "ihl-5-only"), (2, "fixed-offset"), (2, "source-port"), (3, "vni-backwards"),
         (3, "fixed-offset"), (3, "any-port"), (4, "no-swap"), (4, "bounce-everything"),
         (5, "host-order-ports"), (5, "plain-hash")]


@pytest.mark.parametrize("n,name", WRONG, ids=[f"a{n}-{name}" for n, name in WRONG])
def test_a_wrong_program_fails_at_the_frame_it_gets_wrong(n, name):
    need(n)
    text, frame, words = _wrong(n, name)
    before = checker_namespaces()
    r = check(n, text)
    said = shown(r)
    assert not r.passed and r.__class__.__name__ == "CheckResult", said
    if frame is not None:
        assert re.search(rf": frame {re.escape(frame)} went wrong", said), said
        assert f"pl.frames(\"{frame.split(' #')[0]}\")[{int(frame.split('#')[1]) - 1}]" in said
    assert words in said, said
    assert checker_namespaces() == before


# --- what the learner is given, and the answers, load through the learner loader ----------------
# (after the checker tests: it judges the loads they made, and loads by itself what they did not)

@pytest.mark.parametrize("n", NUMBERS)
def test_solution_and_starting_code_load_through_the_learner_loader(n):
    loader = need_loader()
    from pktlab.kernel.progload import LoadRequest
    _lesson, name, ptype, func = ASSIGNMENTS[n]
    uid = loader.account()[0]
    for which, text in (("solution", solution(n)), ("starting code", starting(n))):
        key = (text.encode(), ptype, None)
        if key not in _LOADS:
            _a, prog = loader.load(LoadRequest(text.encode(), name, ptype))
            if prog is not None:
                prog.close()
        a = _LOADS[key]
        assert a["loaded"], (which, a["stage"], a["compiler"], a["log"], a["refusal"])
        assert a["func"] == func and a["prog_type"] == ptype
        assert a["created_by_uid"] == uid, f"{which} was not loaded by {loader.ACCOUNT}"


# --- refusals and broken answers: shown, never raised -------------------------------------------

@pytest.mark.parametrize("n", NUMBERS)
def test_a_program_that_does_not_compile_is_shown_at_its_line(n):
    need_loader()
    s = solution(n)
    target = {1: "\tkey = iph->protocol;", 2: "\thlen = iph->ihl * 4;",
              3: "\toff += sizeof(udp);", 4: "\tverdict = XDP_TX;",
              5: "\tkey.proto = iph->protocol;"}[n]
    broken = edit(s, target, target.rstrip(";"))          # a semicolon forgotten
    k = line_of(s, target.strip())
    r = check(n, broken)
    said = shown(r)
    assert not r.passed, said
    assert f"A{n}: does not compile at line {k}" in said, said


@pytest.mark.parametrize("n,old,new,stop", [
    # the Ethernet header read before the bounds check: refused at the read
    (1, "\tif ((void *)(eth + 1) > data_end)\t/* the verifier wants the proof before eth->... */"
        "\n\t\tgoto out;\n", "", "if (eth->h_proto != bpf_htons(ETH_P_IP))"),
    # the TCP header reached by moving a packet pointer by the IHL: a privilege learners lack
    (2, "\tif (bpf_skb_load_bytes(skb, sizeof(*eth) + hlen, &tcp, sizeof(tcp)) < 0)\n"
        "\t\tgoto out;\n\tif (tcp.dest == bpf_htons(BLOCKED_PORT))",
        "\tstruct tcphdr *th = (void *)iph + hlen;\n\tif ((void *)(th + 1) > data_end)\n"
        "\t\tgoto out;\n\tif (th->dest == bpf_htons(BLOCKED_PORT))",
        "struct tcphdr *th = (void *)iph + hlen;"),
])
def test_a_refused_program_is_explained_at_the_learners_line(n, old, new, stop):
    need_loader()
    broken = edit(solution(n), old, new)
    r = check(n, broken)
    said = shown(r)
    assert not r.passed, said
    k = line_of(broken, stop)
    assert f"A{n}: refused by the verifier at line {k}" in said, said
    assert "usual fix" in said.lower() or "Usual fix" in said
    if n == 2:
        assert "CAP_PERFMON" in said and "bpf_skb_load_bytes" in said


def test_a_map_the_learner_loader_refuses_is_named_at_its_line():
    """A4 with a DEVMAP (what XDP_REDIRECT would want): pktlab's learner loader refuses the
    map type, at the line that declares it, in its own words."""
    need_loader()
    s = solution(4)
    broken = edit(s, "int bounce(", "BPF_DEVMAP(tx_port, 1);\n\nint bounce(")
    r = check(4, broken)
    said = shown(r)
    assert not r.passed, said
    k = line_of(broken, "BPF_DEVMAP(tx_port, 1);")
    assert f"A4: refused by pktlab's learner loader at line {k}" in said, said


class _RaisingSource:
    hook, func = "xdp", None

    @property
    def source(self):
        raise RuntimeError("the cell's program went away")


@pytest.mark.parametrize("n", NUMBERS)
def test_an_answer_that_raises_is_shown_as_a_failed_check(n):
    need_loader()
    for answer, words in ((_RaisingSource(), "RuntimeError: the cell's program went away"),
                          (42, "AttributeError"), (None, "no program"),
                          (types.SimpleNamespace(source=b"int x;"), "not the C text")):
        r = check(n, answer)
        said = shown(r)
        assert not r.passed and "could not use your answer" in said and words in said, said


def test_what_bpf_makes_is_taken_by_its_source_and_a_wrong_hook_is_refused():
    need(1)
    from pktlab import lessons as pl
    made = pl.program(solution(1), hook="xdp")          # what a %%bpf xdp cell makes
    try:
        assert made.ok and made.func == "count_protos"
        r = check(1, made)
        assert r.passed, shown(r)
    finally:
        made.close()
    # a %%bpf cell's C starts on the cell's line 2: a refusal names the cell's line
    broken = edit(solution(1), "\tkey = iph->protocol;", "\tkey = iph->protocol")
    k = line_of(broken, "key = iph->protocol")
    cell = types.SimpleNamespace(source=broken, hook="xdp", func=None, first_line=2)
    r = check(1, cell)
    assert not r.passed and f"A1: does not compile at line {k + 1}" in shown(r), shown(r)
    wrong = types.SimpleNamespace(source=solution(1), hook="tc-ingress", func="count_protos")
    r = check(1, wrong)
    assert not r.passed and "A1 is written for xdp (XDP), not tc-ingress" in shown(r)
    named = types.SimpleNamespace(source=solution(1), hook="xdp", func="nothing_here")
    r = check(1, named)
    assert not r.passed and "no program named 'nothing_here'" in shown(r), shown(r)


# --- the corpus the checkers rely on --------------------------------------------------------------

def test_the_frames_the_checkers_and_these_tests_name_are_what_they_say():
    """tunnels.pcap against scapy (which knows VXLAN and GRE), byte by byte; the IHL traps."""
    from scapy.layers.inet import GRE, IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN
    from pktlab.lessons.exercises.assignments import corpus
    from pktlab.lessons.exercises.ex07 import _a3_rule
    by = {f.where(): f for f in corpus()}
    assert "mixed.pcap #1" not in by                      # its frames are all elsewhere
    counted = {}
    for i in range(1, 13):
        fr = by[f"tunnels.pcap #{i}"]
        p = Ether(fr.data)
        rule = _a3_rule(fr)
        vx = p[VXLAN] if VXLAN in p and p[UDP].dport == 4789 else None
        # by hand: the UDP payload's bytes 4-6, then the inner EtherType 8 + 12 bytes on
        if vx is not None and len(bytes(p[UDP].payload)) >= 8 + 14:
            raw = bytes(p[UDP].payload)
            vni = int.from_bytes(raw[4:7], "big")
            assert vni == vx.vni
            if raw[20:22] == b"\x08\x00":
                assert rule == ("count", vni), (i, rule)
                counted[i] = vni
                continue
        assert rule[0] == "none", (i, rule)
    assert counted == {1: 42, 2: 42, 4: 0x012345, 6: 7, 7: 0x100}
    assert Ether(by["tunnels.pcap #6"].data)[IP].ihl == 6
    assert GRE in Ether(by["tunnels.pcap #11"].data)
    trap = Ether(by["ipv4-options.pcap #7"].data)
    assert trap[IP].ihl == 6 and trap[TCP].dport == 80
    first = Ether(by["bigendian.pcap #1"].data)
    assert first[TCP].dport == 80 and first[TCP].flags == "S"
    assert [f.where() for f in corpus()][0] == "arp.pcap #1"
