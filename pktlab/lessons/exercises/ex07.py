"""Lesson 07's exercise: the frames of a capture a hook recorded as explained differences,
checked by sending the capture across the learner's lab.
"""

from ..html import NotHere
from ..pcaps import frames
from .common import CheckResult


def check_explained(answer, lab, name="vlan.pcap", hook="tc-ingress"):
    """Lesson 07: the frame numbers of ``name`` whose ``hook`` record was an explained
    difference. Checked by sending the capture across ``lab``."""
    if not lab:
        return NotHere("checking explained frames", lab.why() if hasattr(lab, "why") else "")
    if hook not in lab.hooks:
        return NotHere("checking explained frames", f"{hook} is not attached: "
                       + lab.unavailable.get(hook, ""))
    from ...replay import compare
    br = lab.run(frames(name))
    v = br.hooks[hook].verdict
    want = sorted(int(i) + 1 for i in range((len(v))) if v[i] == compare.EXPLAINED)
    got = sorted(int(a) for a in (answer or ()))
    if got == want:
        reasons = {compare.REASONS[int(br.hooks[hook].reason[i - 1])] for i in want}
        return CheckResult(True, f"frames {want}: " + "; ".join(sorted(reasons)))
    return CheckResult(False, f"{got}: not the frames {hook} explained in {name} "
                              f"({len(want)} frames are)")
