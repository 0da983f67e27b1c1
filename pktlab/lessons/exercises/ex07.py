"""Lesson 07's exercises: the frames of a capture a hook recorded as explained differences
(checked by sending the capture across the learner's lab), and how many bytes of a cooked
capture's frames pktlab made up (read from the capture as pktlab reads it).
"""

from ..html import NotHere, esc
from ..pcaps import frames, read
from .common import CheckResult, guarded


@guarded
def check_explained(answer, lab, name="vlan.pcap", hook="tc-ingress"):
    """Lesson 07: the frame numbers of ``name`` whose ``hook`` record was an explained
    difference. Checked by sending the capture across ``lab``; wrong answers say which kind of
    mistake, never which frames or how many."""
    if not lab:
        return NotHere("checking explained frames", lab.why() if hasattr(lab, "why") else "")
    if hook not in lab.hooks:
        return NotHere("checking explained frames", f"{hook} is not attached: "
                       + lab.unavailable.get(hook, ""))
    from ...replay import compare
    br = lab.run(frames(name))
    v = br.hooks[hook].verdict
    want = sorted(int(i) + 1 for i in range((len(v))) if v[i] == compare.EXPLAINED)
    try:
        got = sorted({int(a) for a in (answer or ())})
    except (TypeError, ValueError):
        return CheckResult(False, f"{answer!r}: give frame numbers, 1 for the first frame")
    if got == want:
        reasons = {compare.REASONS[int(br.hooks[hook].reason[i - 1])] for i in want}
        return CheckResult(True, f"frames {want}: " + "; ".join(sorted(reasons)))
    notes = []
    if set(got) - set(want):
        notes.append(f"some frames you listed were not explained at {hook} (they agree)")
    if set(want) - set(got):
        notes.append("some explained frames are missing from your list")
    return CheckResult(False, f"{got}: not the frames {hook} explained in {name}",
                       "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"
                       "<p class='pll-note'>the replay's table counts them; the stepper shows "
                       "each frame's badge</p>")


@guarded
def check_synthesized(answer, name="cooked-sll.pcap"):
    """Lesson 07, exercise 2: how many bytes at the start of each frame of a cooked capture
    pktlab made up (they were not in the capture). Read from the capture as pktlab reads it."""
    # a synthesized header is a whole Ethernet header, in place of the cooked one
    want = 14 if any(f.synthesized_eth for f in read(name)) else 0
    try:
        got = int(answer)
    except (TypeError, ValueError):
        return CheckResult(False, f"{answer!r}: give a number of bytes")
    if got == want:
        return CheckResult(True, f"{want} bytes: a whole Ethernet header (MACs and EtherType), "
                                 "made up from the cooked header's protocol field. The lab "
                                 "sends the frame with it, so every hook parses the very "
                                 "bytes the walker did")
    return CheckResult(False, f"{got} bytes: not what pktlab made up. Look at the hex view's "
                              "first layer for a frame of cooked-sll.pcap: which header does "
                              "it say pktlab made, and how long is that header?")


# --- assignment 3: a header the parser does not know (exercises/assignments.py) -----------------

A3_MAP = "vxlan_ipv4"
VXLAN_PORT = 4789
VXLAN_HLEN = 8


def _vxlan(fr):
    """scapy's reading of a frame's UDP payload as VXLAN (the walker found the UDP header):
    (VNI, the inner frame's EtherType), or a reason why there is none: "short" (the VXLAN
    header or the inner Ethernet header cut short)."""
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN
    r = fr.rec
    off, n = int(r.payload_off), int(r.payload_len)
    payload = fr.data[off:off + n]
    if len(payload) < VXLAN_HLEN + 14:
        return "short"
    v = VXLAN(payload)
    inner = v[Ether] if Ether in v else Ether(bytes(v.payload))
    return int(v.vni), int(inner.type)


def _a3_rule(fr):
    """("count", VNI) for an untagged IPv4/UDP frame to port 4789 carrying a whole VXLAN
    header and an inner Ethernet frame whose EtherType is IPv4; ("none", why) for the
    others; ("either",) for tagged or malformed ones."""
    from .assignments import const
    r = fr.rec
    if int(r.vlan_depth) or fr.data[12:14] in (b"\x81\x00", b"\x88\xa8"):
        return ("either",)
    if int(r.eth_proto) != 0x0800:
        return ("none", "not IPv4")
    if int(r.status) != const("ST_OK"):
        return ("either",)
    if int(r.l4_proto) != 17:
        return ("none", "not UDP")
    if int(r.dport) != VXLAN_PORT:
        return ("none", "port")
    v = _vxlan(fr)
    if v == "short":
        return ("none", "short")
    vni, inner = v
    return ("count", vni) if inner == 0x0800 else ("none", "inner")


_A3_NONE = {
    "not IPv4": "This frame is not IPv4, yet your program counted it: test the outer EtherType "
                "first.",
    "not UDP": "This frame is not UDP, so it is not VXLAN: test the IPv4 protocol field.",
    "port": "This UDP frame is not sent to port 4789, the VXLAN port (whatever its payload "
            "looks like): compare the destination port, big-endian in the header.",
    "short": "Its VXLAN header or the inner Ethernet header is cut short: there is no inner "
             "EtherType to read. Prove each header is whole before you read it.",
    "inner": "Its inner frame is not IPv4: read the inner Ethernet header's EtherType (it "
             "starts right after the 8 bytes of VXLAN).",
}


def _a3_problem(fr, rc, change):
    from .assignments import did
    rule = _a3_rule(fr)
    what = did("XDP", rc, change, A3_MAP)
    if rc != 2:
        return what, "This assignment only counts: every frame goes on (XDP_PASS)."
    if len(change) > 1 or any(v != 1 for v in change.values()):
        return what, "One frame, one count: add 1, under one key."
    if rule[0] == "either":
        return None
    if rule[0] == "none":
        return (what, _A3_NONE[rule[1]]) if change else None
    if not change:
        if int(fr.rec.ip4_hdr_len) > 20:
            return what, (f"Its outer IPv4 header is {int(fr.rec.ip4_hdr_len)} bytes long: the "
                          "UDP header starts where it ends (IHL, in 4-byte words), not 20 "
                          "bytes in.")
        return what, ("This VXLAN frame carries an IPv4 frame and your program did not count "
                      "it. Walk it layer by layer: Ethernet, IPv4 (IHL × 4 bytes), UDP to "
                      "port 4789, 8 bytes of VXLAN, then the inner Ethernet header and its "
                      "EtherType.")
    if str(rule[1]) not in change:
        return what, ("Your program counted it, but under a key that is not this frame's VNI: "
                      "the VNI is 24 bits, bytes 4 to 6 of the VXLAN header, the most "
                      "significant byte first (compare with the frame: look at it, scapy "
                      "names the field).")
    return None


@guarded
def check_a3(program):
    """Assignment 3 (lesson 07, XDP): VXLAN, a header pktlab's parser does not know: count,
    per VNI, the VXLAN frames whose inner Ethernet frame is IPv4, in the map vxlan_ipv4.
    Every corpus frame is test-run once; the outer layers are the walker's, the VXLAN header
    and the inner frame scapy's."""
    from ..here import in_lab_thread
    from . import assignments as A
    why = A.not_here("assignment 3")
    if why is not None:
        return why
    return in_lab_thread(_check_a3, program)


def _check_a3(program):
    import time

    from . import assignments as A
    t0 = time.monotonic()
    prog, refused = A.load_answer(program, "a3.c", "XDP", "A3")
    if refused is not None:
        return refused
    with prog:
        try:
            problems, n = A.corpus_problems(prog, _a3_problem, A3_MAP)
        except A.AnswerShape as e:
            return CheckResult(False, f"A3: {e}")
    if problems:
        return A.first_wrong("A3", problems, n)
    return A.passed("A3", "loads, and counts the VXLAN frames carrying IPv4 by network, as "
                          "scapy reads them, on the whole corpus", n, t0)
