"""Lesson 09's checkers: the right answer passes, a wrong one does not, and none raises; the six
mistakes each get the verifier's explanation at the right line; the shipped firewall passes."""

import pytest

from conftest import require_hook

from pktlab.lessons import exercises
from pktlab.lessons.exercises import ex09

#: the words of the explanation each mistake must get (pktlab.kernel.verifier's patterns)
EXPECTED = {       # (the kind of refusal, the line of the mistake in the variant)
    "forgot_release": ("reference leak", 43),
    "release_one_branch": ("reference leak on a path", 43),
    "use_after_release": ("use after release", 50),
    "double_release": ("released twice", 52),
    "read_before_null_check": ("NULL not checked", 45),
    "release_without_null_check": ("NULL not checked", 45),
}


def test_every_mistake_is_one_edit_of_the_shipped_firewall():
    shipped = ex09.firewall_source()
    for name in ex09.MISTAKES:
        v = ex09.variant_source(name)
        assert v != shipped
        assert abs(len(v.splitlines()) - len(shipped.splitlines())) <= 4, name


@pytest.mark.parametrize("name", sorted(ex09.MISTAKES))
def test_each_mistake_is_refused_and_explained(name):
    require_hook("tc-ingress")
    report = ex09.verify_source(ex09.variant_source(name))
    assert not report.ok and report.stage == "load"
    kind, line = EXPECTED[name]
    first = report.errors[0]
    assert (first["kind"], first["line"]) == (kind, line), (name, report.errors)
    assert first["explanation"] and first["fix"]
    # the line named is the one the edit made (the lookup for a leak, the read or release else)
    src = ex09.variant_source(name).splitlines()[line - 1]
    assert ("bpf_sk_lookup_tcp" if "leak" in kind else "sk") in src, src


def test_the_shipped_firewall_passes_the_checker_and_a_broken_one_does_not(learner_loads):
    require_hook("tc-ingress")
    from pktlab.kernel import loader
    owners = learner_loads
    assert exercises.check_lookup(ex09.firewall_source()).passed
    # loaded once, by the learner loader's account (the kernel's record of who loaded it)
    assert owners == [loader.account()[0]]
    assert not exercises.check_lookup(ex09.variant_source("forgot_release")).passed
    # loads, but lets through what no socket would take: the lab test catches it
    lax = ex09.firewall_source().replace(
        "verdict = TC_ACT_SHOT;          /* no socket would take it */", "verdict = TC_ACT_OK;")
    r = exercises.check_lookup(lax)
    assert not r.passed and "nothing listens" in repr(r)


def test_a_checker_never_raises_on_nonsense():
    r = exercises.check_lookup("this is not C")
    assert not r.passed
    doc = {"variants": {"hash": {"connected": 256}}}
    assert exercises.check_hash_connected(256, doc).passed
    for wrong in (1000, "many", None):
        r = exercises.check_hash_connected(wrong, doc)
        assert not r.passed and "256" not in repr(r)       # the answer is never stated
    assert exercises.check_timewait_lookup("bpf_skc_lookup_tcp()").passed
    assert not exercises.check_timewait_lookup("bpf_sk_lookup_tcp").passed
    assert not exercises.check_timewait_lookup(42).passed
