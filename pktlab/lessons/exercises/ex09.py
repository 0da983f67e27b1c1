"""Lesson 09: the socket table as a connection tracker, and the verifier's reference tracking.

The lesson's firewall is bpf_snippets/sk_lookup_fw.bpf.c. Its six broken versions are made from
it here, each by one edit the learner can see (`variant_source`), so they never drift from the
program that works: forgot the release, released on one branch only, used after release,
released twice, read before the NULL check, released without a NULL check.

Checkers:
- check_lookup(source): the learner's firewall loads (the verifier is the judge of the
  reference rules) AND does its job on a real lab: a connection to a listening port still
  works, and a SYN to a port where nothing listens is dropped (no RST comes back: the client
  times out instead of being refused).
- check_hash_connected(answer, result): how many flows the HASH firewall let connect, against
  the run the lesson just made (the feedback never states the number).
- check_timewait_lookup(answer): which helper finds a time-wait socket.
"""

import os
import tempfile

from .common import CheckResult
from ... import resources
from ..here import in_lab_thread, not_here

FIREWALL = "sk_lookup_fw.bpf.c"
FUNC = "sk_lookup_fw"

_RELEASE = "\tbpf_sk_release(sk);\n"
_NULL_CHECK = ("\tif (!sk) {\n\t\tverdict = TC_ACT_SHOT;          /* no socket would take it */\n"
               "\t\tgoto out;\n\t}\n")
_STATE = ("\t/* a listener takes only a SYN, or the last ACK of a handshake it answered */\n"
          "\tif (sk->state == BPF_TCP_LISTEN && !(th->flags & 0x02) && !(th->flags & 0x10))\n"
          "\t\tverdict = TC_ACT_SHOT;\n")
_LOOKUP = "\tsk = bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);\n"


def firewall_source():
    """The lesson's firewall as it ships: it loads, and it works."""
    with open(resources.snippet_path(FIREWALL)) as f:
        return f.read()


def _edit(text, old, new):
    if old not in text:
        raise RuntimeError(f"{FIREWALL} changed: lesson 09's variants no longer apply; update "
                           "pktlab/lessons/exercises/ex09.py")
    return text.replace(old, new, 1)


def _forgot_release(t):
    return _edit(t, _RELEASE, "")


def _release_one_branch(t):
    branch = ("\tif (sk->state == BPF_TCP_LISTEN && !(th->flags & 0x02) && !(th->flags & 0x10)) {\n"
              "\t\tverdict = TC_ACT_SHOT;\n\t\tbpf_sk_release(sk);\n\t}\n")
    t = _edit(t, _RELEASE, "")          # first: the branch's own release contains its text
    return _edit(t, _STATE, "\t/* a listener takes only a SYN, or the last ACK of a handshake it "
                            "answered */\n" + branch)


def _use_after_release(t):
    t = _edit(t, _RELEASE, "")
    return _edit(t, _STATE, _RELEASE + _STATE)


def _double_release(t):
    return _edit(t, _RELEASE, _RELEASE + _RELEASE)


def _read_before_null_check(t):
    t = _edit(t, _STATE, "")
    return _edit(t, _LOOKUP, _LOOKUP + _STATE)


def _release_without_null_check(t):
    return _edit(t, _NULL_CHECK, "")


#: name -> (what is wrong, in the lesson's words; the edit that makes it)
MISTAKES = {
    "forgot_release": ("forgot the release", _forgot_release),
    "release_one_branch": ("released on one branch only", _release_one_branch),
    "use_after_release": ("used after release", _use_after_release),
    "double_release": ("released twice", _double_release),
    "read_before_null_check": ("read before the NULL check", _read_before_null_check),
    "release_without_null_check": ("released (and read) without a NULL check",
                                   _release_without_null_check),
}


def variant_source(name):
    """The firewall with one mistake in it (MISTAKES)."""
    try:
        _words, edit = MISTAKES[name]
    except KeyError:
        raise ValueError(f"mistake {name!r}: choose one of {', '.join(MISTAKES)}") from None
    return edit(firewall_source())


def verify_source(source, hook="tc-ingress", func=None, name="lesson09.c"):
    """pktlab verify on C text (a notebook cell): the Report, lines numbered as in the text."""
    from ...kernel.verifier import verify
    with tempfile.TemporaryDirectory(prefix="pktlab-verify-") as d:
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(source)
        return verify(path, hook, func=func)


def _load(source):
    """Load the learner's firewall through the learner loader (pktlab.kernel.loader: a
    restricted worker as pktlab-loader; this process only holds the fds): (the verifier's
    Report as pktlab verify makes it, LearnerProgram or None)."""
    from ...sockets.conntrack import load_learner_firewall
    return load_learner_firewall(source, "lesson09.c", FUNC)


def _works_in_a_lab(prog):
    """Attach the learner's loaded firewall (a LearnerProgram) at TC ingress on a fresh lab's
    dut; (ok, what happened)."""
    from ...lab import Lab
    from ...sockets.conntrack import try_firewall
    with Lab(prefix="plex") as lab:
        return try_firewall(lab, prog.fd)


def _checked_here(source):
    """(report as a dict, ok or None when it did not load, what happened): as root."""
    try:
        report, prog = in_lab_thread(_load, source)
    except (OSError, ValueError) as e:
        return None, None, f"could not verify it: {e}"
    if prog is None or not report.ok:
        if prog is not None:
            prog.close()
        return report.to_dict(), None, ""
    with prog:
        try:
            ok, what = in_lab_thread(_works_in_a_lab, prog)
        except Exception as e:      # a learner's program may fail anywhere: say so, never raise
            return report.to_dict(), False, f"trying it in a lab failed: {e}"
    return report.to_dict(), ok, what


def check_lookup(source):
    """The learner's firewall: loaded by the learner loader (the verifier is the judge of the
    reference rules), then attached and tried on a real lab (in pktlabd, in a lab of the
    learner's, when they are not root)."""
    from ..remote import through_daemon
    if through_daemon():
        from ...errors import PktlabError
        from ...workshop.client import Client
        try:
            with Client() as c:
                got = c.call("check_firewall", {}, str(source).encode())[0]
            report, ok, what = got["report"], got["ok"], got["what"]
        except (PktlabError, OSError, ValueError) as e:    # (trying it failed: said so)
            report, ok, what = None, None, f"could not verify it: {e}"
    else:
        why = not_here("the firewall check", "tc-ingress")
        if why is not None:
            return why
        report, ok, what = _checked_here(source)
    if report is None:
        return CheckResult(False, what)
    if ok is None:
        first = report["errors"][0] if report["errors"] else {}
        where = f" (line {first.get('line')})" if first.get("line") else ""
        return CheckResult(False, f"the verifier refused it{where}: "
                                  f"{first.get('explanation') or first.get('message', '')} "
                                  "Read its lines with pl.verify(...), fix, and check again.")
    if what.startswith("trying it in a lab failed"):
        return CheckResult(False, f"it loads, but {what}")
    return CheckResult(ok, what if ok else f"it loads, but {what}.")


def check_hash_connected(answer, result):
    """How many of the flows the HASH firewall let connect, in the run `result` (the
    conntrack document the lesson made)."""
    if not result:              # the comparison did not run here: its reason, shown again
        return result
    try:
        got = int(answer)
    except (TypeError, ValueError):
        return CheckResult(False, "answer with a whole number of flows")
    want = result["variants"]["hash"]["connected"]
    if got == want:
        return CheckResult(True, "right: a flow can connect only if its SYN found room in the "
                                 "map, and the map never frees an entry")
    hint = ("more" if got < want else "fewer")
    return CheckResult(False, f"not what the run measured: it let {hint} flows connect. Think "
                              "of what happens to a SYN when the map is full.")


def check_timewait_lookup(answer):
    """Which helper finds a socket in TIME_WAIT: bpf_skc_lookup_tcp."""
    a = str(answer).strip().replace("()", "")
    if a == "bpf_skc_lookup_tcp":
        return CheckResult(True, "right: it finds any socket, a time-wait mini-socket included "
                                 "(and bpf_sk_fullsock() is NULL for one of those)")
    if a == "bpf_sk_lookup_tcp":
        return CheckResult(False, "that is the one whose lookup misses them; look at the trap "
                                  "above again")
    return CheckResult(False, "name one of the two lookup helpers the lesson used")

