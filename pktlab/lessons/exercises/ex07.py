"""Lesson 07's exercises: the frames of a capture a hook recorded as explained differences
(checked by sending the capture across the learner's lab), and how many bytes of a cooked
capture's frames pktlab made up (read from the capture as pktlab reads it).
"""

from ..html import NotHere, esc
from ..pcaps import frames, read
from .common import CheckResult


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
