"""The numbered assignments (issue 15): a learner writes a whole eBPF program in C, and a
checker judges it the way a reviewer would. What every assignment's checker shares:

    text, hook, func = answer_parts(program)     # C text, or an object with .source/.hook/.func
    prog, refused = load_answer(program, "a1.c", "XDP", "A1")   # through the learner loader
    for frame, rc, delta in run_corpus(prog, "proto_count"):     # BPF_PROG_TEST_RUN, frame
        ...                                                      # by frame, the map's change
    back = bounce_in_lab(prog, frames)           # A4: frames sent from src, what came back

- The program goes through the learner loader (pktlab.kernel.loader: a restricted worker,
  CAP_BPF + CAP_NET_ADMIN only), as every learner's program does (not root: the loader in
  pktlab's workshop daemon, the corpus test-run there in one request, the map's changes sent
  back frame by frame and judged here); a refusal is shown with the
  verifier explainer at the learner's own line (failed(), refusal()).
- The corpus is the bundled captures (pcaps/, not $PKTLAB_PCAPS: the checkers know what is
  in them), mixed.pcap left out (it repeats the others), every frame a test run takes (at
  least 14 bytes), each with the walker's record and the manifest's note: the walker (and,
  for VXLAN, scapy) says what each frame is; the assignment's own rule says what the program
  must do with it.
- Feedback names the frame (capture, number, what it is) and what the learner's program did
  with it, with a hint; never the value the program should have produced, never a list of
  them.
"""

import functools
import ipaddress
import json
import os
import time

from ... import resources
from ..html import NotHere, esc, table
from .common import CheckResult

#: the hooks a program of each type may be written for (`%%bpf HOOK`)
HOOKS_OF = {"XDP": ("xdp",), "SCHED_CLS": ("tc-ingress", "tc-egress")}
LEFT_OUT = ("mixed.pcap",)          # every frame of it is in another capture too
MIN_FRAME = 14                      # BPF_PROG_TEST_RUN wants an Ethernet header
PROTO_NAMES = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 47: "GRE", 58: "ICMPv6"}
ETHER_NAMES = {0x0800: "IPv4", 0x86DD: "IPv6", 0x0806: "ARP", 0x8100: "802.1Q",
               0x88A8: "802.1ad"}
TCP_FLAGS = "FSRPAUEC"


class AnswerShape(ValueError):
    """The learner's program ran, but what it left behind (a map, its values) is not of the
    shape the assignment asks for: said as a failed check, with this message."""


# --- the learner's answer ------------------------------------------------------------------------

def answer_parts(program):
    """(C text, hook or None, function or None) of an answer: C source text, or an object with
    .source (and .hook, .func: what `%%bpf HOOK FUNC` and pl.program() make). A %%bpf cell's C
    starts on the cell's second line (its .first_line): the text is moved down to match, so
    that every line a refusal names is the cell's own."""
    if isinstance(program, str):
        return program, None, None
    if program is None:
        raise TypeError("no program: give the C text (a string), or what %%bpf made")
    source = program.source
    if not isinstance(source, str):
        raise TypeError(f"its .source is a {type(source).__name__}, not the C text")
    first = getattr(program, "first_line", 1)
    first = first if isinstance(first, int) and 1 <= first <= 1000 else 1
    return ("\n" * (first - 1) + source, getattr(program, "hook", None),
            getattr(program, "func", None))


def not_here(what):
    """None when learner programs can be loaded here (root, or through pktlab's workshop
    daemon), else the NotHere that says why."""
    if os.geteuid() != 0:
        from ..remote import through_daemon
        if through_daemon():
            return None
        return NotHere(what, "loading a learner's program needs root (pktlab then loads it as "
                             "an unprivileged account) or pktlab's workshop daemon; run "
                             "JupyterLab with `make lab`")
    from ...kernel import loader
    ok, why = loader.available()
    return None if ok else NotHere(what, why)


def load_answer(program, name, prog_type, label):
    """Compile and load the answer through the learner loader: (LearnerProgram, None), or
    (None, the CheckResult that shows why not: a wrong hook, the compiler's or the verifier's
    refusal at the learner's line)."""
    from ...kernel import loader, verifier
    from ...kernel.progload import LoadRequest
    text, hook, func = answer_parts(program)
    if hook is not None and hook not in HOOKS_OF[prog_type]:
        return None, CheckResult(False, f"{label} is written for "
                                        f"{' or '.join(HOOKS_OF[prog_type])} ({prog_type}), "
                                        f"not {hook}")
    shown_hook = hook or HOOKS_OF[prog_type][0]
    data = text.encode()
    if remote():                 # loaded by the learner loader in pktlabd, held there
        from ..remote import load_program
        a, prog, _doc, _blob = load_program(data, name, prog_type, func, hook=shown_hook)
    else:
        a, prog = loader.load(LoadRequest(data, name, prog_type, func,
                                          (resources.snippets_dir(),)))
    if prog is not None:
        return prog, None
    try:
        report = verifier.judge(a, name, shown_hook, data, func)
    except ValueError as e:          # no program, or several and none chosen
        return None, CheckResult(False, f"{label}: {e}")
    return None, refusal(label, report)


def remote():
    """Whether the checkers load programs through pktlab's workshop daemon (not root)."""
    if os.geteuid() == 0:
        return False
    from ..remote import through_daemon
    return through_daemon()


def refusal(label, report):
    """A compiler's or verifier's refusal as a failed check: the explainer's words at the
    learner's own line first, the full log folded away (pktlab verify's Report)."""
    from ...kernel.verifier import POLICY_KINDS
    from ..socketviews import VerifyView
    first = report.errors[0] if report.errors else {}
    stage = "does not compile" if report.stage == "compile" else (
        "refused by pktlab's learner loader" if first.get("kind") in POLICY_KINDS else
        "refused by the verifier")
    where = f" at line {first['line']}" if first.get("line") else ""
    said = first.get("source")
    title = f"{label}: {stage}{where}" + (f": {said}" if said else "")
    note = ("<p class='pll-note'>the explainer's words first: what stopped it, at your line, "
            "and the usual fix; fix that line and run the cell again.</p>")
    return CheckResult(False, title, note + VerifyView(report).body,
                       "\n".join(f"line {e.get('line')}: {e.get('message')}"
                                 for e in report.errors))



# --- the corpus ------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _notes():
    """{capture: [each frame's note from MANIFEST.json]}."""
    try:
        with open(os.path.join(resources.bundled_pcaps_dir(), "MANIFEST.json")) as f:
            files = json.load(f)["files"]
    except (OSError, ValueError, KeyError):
        return {}
    return {e["file"]: [x.get("note", "") for x in e.get("expected", [])] for e in files}


class Frame:
    """One corpus frame: where it is from, its bytes, the walker's record of it."""

    def __init__(self, capture, index, data, record):
        self.capture, self.index, self.data, self.rec = capture, index, data, record

    @property
    def note(self):
        notes = _notes().get(self.capture, [])
        return notes[self.index - 1] if 0 < self.index <= len(notes) else ""

    def where(self):
        return f"{self.capture} #{self.index}"

    def summary(self):
        """The frame in a few words: its layers as the walker read them, and the note."""
        s = f"{len(self.data)} bytes, {describe(self.rec)}"
        return s + (f"; {self.note}" if self.note else "")

    def look(self):
        """The cell that shows this frame, for the learner to run."""
        return f'pl.PacketView(pl.frames("{self.capture}")[{self.index - 1}])'


@functools.lru_cache(maxsize=1)
def corpus():
    """Every bundled frame a test run takes, in capture order (sorted names), as Frames."""
    from ...packet import read_frames, walk_record
    d = resources.bundled_pcaps_dir()
    out = []
    for name in sorted(os.listdir(d)):
        if not name.endswith((".pcap", ".pcapng")) or name in LEFT_OUT:
            continue
        try:
            for f in read_frames(os.path.join(d, name)):
                if len(f.data) >= MIN_FRAME:
                    out.append(Frame(name, f.index, bytes(f.data), walk_record(bytes(f.data))))
        except Exception:         # a capture the reader refuses is not an assignment's business
            continue
    return tuple(out)


def const(name):
    """A PL_* constant of pktlab_record.h by its name without the prefix ("ST_OK", "L_IPV4")."""
    from ...packet import record as R
    return R.constants()["PL_" + name]


def _ip(raw, version):
    return str(ipaddress.ip_address(bytes(raw[:4] if version == 4 else raw[:16])))


def describe(r):
    """A walker record in words: tags, EtherType, addresses, protocol, ports, flags, status."""
    from ...packet import record as R
    parts = []
    for i in range(int(r.vlan_depth)):
        parts.append(f"VLAN {int(r.vlan_tci[i]) & 0xFFF}")
    ep = int(r.eth_proto)
    parts.append(ETHER_NAMES.get(ep, f"EtherType 0x{ep:04x}"))
    v = int(r.ip_version)
    if ep in (0x0800, 0x86DD) and v in (4, 6) and int(r.status) != const("ST_BAD_VERSION"):
        parts.append(f"{_ip(r.src_ip, v)} → {_ip(r.dst_ip, v)}")
        p = int(r.l4_proto)
        name = PROTO_NAMES.get(p, f"protocol {p}")
        if p in (6, 17) and (int(r.sport) or int(r.dport)):
            name += f" {int(r.sport)} → {int(r.dport)}"
        if p == 6 and int(r.tcp_flags):
            name += " [" + "".join(c for i, c in enumerate(TCP_FLAGS)
                                   if int(r.tcp_flags) >> i & 1) + "]"
        parts.append(name)
        if v == 4 and int(r.ip4_hdr_len) != 20:
            parts.append(f"IPv4 header {int(r.ip4_hdr_len)} bytes")
    st = int(r.status)
    if st:
        parts.append(f"walk stopped: {R.status_name(st)} at {R.layer_name(int(r.layer))}")
    return ", ".join(parts)


# --- running a program on the corpus --------------------------------------------------------------

def map_of(prog, name):
    """The learner program's map `name`; AnswerShape naming the maps it has when missing."""
    if name not in prog.maps:
        have = ", ".join(sorted(prog.maps)) or "none"
        raise AnswerShape(f"your program has no map named {name} (its maps: {have}); the "
                          "checker reads the map by that name")
    return prog.maps[name]


def _number(v, name):
    if isinstance(v, dict) and set(v) == {"per_cpu", "sum"}:
        v = v["sum"]
    if isinstance(v, bool) or not isinstance(v, int):
        raise AnswerShape(f"{name}'s values are not numbers ({json.dumps(v)[:60]}): make the "
                          "value a u64 count")
    return v


def snapshot(m):
    """A map's contents now: {key text: number} (per-CPU values summed)."""
    from ...kernel import mapdump
    entries, _info = m.dump_map() if hasattr(m, "dump_map") else mapdump.dump_map(m)
    return {k: _number(v, m.name) for k, v in entries.items()}


def test_run_all(prog, frames):
    """Each frame test-run once (a program in pktlabd: in one request)."""
    from ...errors import BPFError
    if not hasattr(prog, "test_runs"):
        for data in frames:
            prog.test_run(data)
        return
    for rc, why in prog.test_runs(list(frames))["runs"]:
        if rc is None:
            raise BPFError(why)


def delta(before, after):
    """What one frame changed: {key: after - before} for the keys that changed (a key gone,
    e.g. evicted from an LRU map, is left out)."""
    out = {}
    for k, v in after.items():
        d = v - before.get(k, 0)
        if d:
            out[k] = d
    return out


def runnable(fr, prog_type):
    """Whether the kernel test-runs this frame for this program type: an skb test run (TC)
    refuses a frame whose EtherType is IPv4 or IPv6 but whose network header does not fit
    (bpf_prog_test_run_skb checks skb_headlen(); tests/test_kernel_parse.py measures it)."""
    if prog_type != "SCHED_CLS":
        return True
    et = fr.data[12:14]
    return not ((et == b"\x08\x00" and len(fr.data) < 14 + 20) or
                (et == b"\x86\xdd" and len(fr.data) < 14 + 40))


def corpus_problems(prog, problem, map_name=None):
    """(problems, frames run): every corpus frame test-run once, judged by
    ``problem(frame, return code, the map's change)`` -> None or (what, hint); each problem
    as (frame, what, hint). AnswerShape (a map not as the assignment says) goes through."""
    problems, n = [], 0
    for fr, rc, change in run_corpus(prog, map_name):
        n += 1
        p = problem(fr, rc, change)
        if p is not None:
            problems.append((fr, *p))
    return problems, n


def run_corpus(prog, map_name=None, frames=None):
    """Test-run every frame once (those the kernel takes for the program's type): yield
    (Frame, return code, the map's change)."""
    m = map_of(prog, map_name) if map_name else None
    if hasattr(prog, "test_runs"):          # in pktlabd: every frame in one request
        yield from _run_corpus_remote(prog, m, frames)
        return
    before = snapshot(m) if m is not None else {}
    for fr in corpus() if frames is None else frames:
        if not runnable(fr, prog.prog_type):
            continue
        rc, _ns = prog.test_run(fr.data)
        if m is None:
            yield fr, rc, {}
            continue
        after = snapshot(m)
        yield fr, rc, delta(before, after)
        before = after


def _run_corpus_remote(prog, m, frames):
    """run_corpus for a program in pktlabd: the frames test-run in one request, the map's
    contents before and its changes frame by frame sent back, judged here the same way."""
    from ...errors import BPFError
    todo = [fr for fr in (corpus() if frames is None else frames)
            if runnable(fr, prog.prog_type)]
    doc = prog.test_runs([fr.data for fr in todo], watch=m.name if m is not None else None)
    raw = dict(doc["watch"]["before"]) if m is not None else {}
    before = {k: _number(v, m.name) for k, v in raw.items()} if m is not None else {}
    for i, (fr, (rc, why)) in enumerate(zip(todo, doc["runs"])):
        if rc is None:
            raise BPFError(why)
        if m is None:
            yield fr, rc, {}
            continue
        changed, removed = doc["watch"]["each"][i]
        raw.update(changed)
        for k in removed:
            raw.pop(k, None)
        after = {k: _number(v, m.name) for k, v in raw.items()}
        yield fr, rc, delta(before, after)
        before = after


def verdict_name(prog_type, rc):
    from ...kernel.verdicts import NAMES
    return NAMES[prog_type].get(rc, f"return code {rc}")


def did(prog_type, rc, change, map_name):
    """What the learner's program did with a frame, in words."""
    out = [f"returned {verdict_name(prog_type, rc)}"] if rc is not None else []
    if map_name is not None:
        if not change:
            out.append(f"left {map_name} unchanged")
        else:
            out += [f"added {v} under key {k}" for k, v in sorted(change.items())]
    return ", ".join(out)


def first_wrong(label, problems, checked, hint_html=""):
    """The failed check for a list of (Frame, what your program did, hint): the first frame
    named, with its hint; how many went wrong in all, and in which captures."""
    fr, what, hint = problems[0]
    files = sorted({p[0].capture for p in problems})
    title = (f"{label}: frame {fr.where()} went wrong ({len(problems)} of {checked} frames "
             "in all)")
    body = table(["frame", "what it is", "your program"], [[fr.where(), fr.summary(), what]])
    body += f'<div class="pll-why"><b>hint</b>: {esc(hint)}</div>'
    body += (f"<p class='pll-note'>look at it: <code>{esc(fr.look())}</code>. Frames that "
             f"went wrong are in {esc(', '.join(files))}.</p>" + hint_html)
    text = f"{fr.where()} ({fr.summary()}): your program {what}.\nhint: {hint}"
    return CheckResult(False, title, body, text)


def passed(label, what, checked, t0):
    return CheckResult(True, f"{label}: {what}",
                       f"<p>{checked} corpus frames checked, each by a test run "
                       f"(BPF_PROG_TEST_RUN), in {time.monotonic() - t0:.1f} s.</p>",
                       f"{checked} frames")


# --- A4: a real lab ----------------------------------------------------------------------------

LAB_PREFIX = "plasg"  # the checker's own labs (not the lesson's): tests look for leftovers by it


def bounce_in_lab(prog, frames):
    """Attach the learner's XDP program (generic mode) on a fresh lab's dut, send `frames`
    from src one by one, and return, for each, the frames that arrived back at src while it
    was the last one sent (a list of bytes per frame), and the frames sent.

    The lab is the checker's own (the learner's lab has pktlab's XDP program on dut already):
    made and removed here, also when something fails; for a learner who is not root, by
    pktlabd (a throwaway lab counted in their quota, the program the daemon holds for them)."""
    from ...lab import Lab
    from ...workshop.opsprogram import bounce
    if hasattr(prog, "bounce"):        # in pktlabd: a throwaway lab of the learner's there
        return prog.bounce(list(frames))
    with Lab(prefix=LAB_PREFIX) as lab:
        return bounce(lab, prog.fd, frames)


def macs(data):
    def m(b):
        return ":".join(f"{x:02x}" for x in b)
    return f"dst {m(data[0:6])}, src {m(data[6:12])}"
