"""Shared fixtures, and the skip policy.

`pktlab doctor` runs once per test session (doctor_report()); a kernel test is skipped only
through require_root() / require_hook() / require_kprobe_mechanism(), and only with the
doctor's reason in the skip message (`pytest -ra` prints it).

Strict mode (the environment variable CI set, or PKTLAB_STRICT=1; scripts/test.sh sets it when
CI is set): a skip is allowed only where the doctor proved the feature missing on this machine.
It is a failure when
- a kernel test (one that called require_root/require_hook) skips for any other reason while the
  doctor says what it needs is available;
- a hook is unavailable only because the doctor could not try it (not root, bcc or the
  compile of pktlab's own program failed): that is this checkout or its setup, not the machine.

The kprobe hook's mechanisms this machine cannot use (kprobe, fentry) are reported in the
summary as "untested here" with the doctor's reason, never as passed.
"""

import functools
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PCAPS = os.path.join(REPO, "pcaps")

#: the doctor's checks a hook probe needs (doctor.run's `required`): when one failed, the doctor
#: did not try the hooks, so "unavailable" says nothing about this machine
HOOK_PREREQUISITES = ("privileges", "bpf syscall", "bcc", "bcc compile", "kernel headers", "btf",
                      "ip")
KPROBE_MECHANISMS = ("kprobe", "fentry", "raw_tracepoint")


def strict():
    return bool(os.environ.get("CI")) or os.environ.get("PKTLAB_STRICT") == "1"


@functools.lru_cache(maxsize=1)
def doctor_report():
    from pktlab import doctor
    report, _ = doctor.run()
    return report


# --- what the running test asked for (tests run one at a time in this process) -------------
class _Current:
    nodeid = None
    needs = []            # features the test required and the doctor says are available
    allowed_skip = None   # the doctor's reason, when a helper skipped the test


_untested = {}            # "kprobe hook via fentry" -> the doctor's reason


def _needs(feature):
    _Current.needs.append(feature)


def _skip(reason):
    """Skip with the doctor's reason; allowed in strict mode (the machine lacks the feature)."""
    _Current.allowed_skip = reason
    pytest.skip(reason)


def require_root():
    if os.geteuid() != 0:
        why = f"running as uid {os.geteuid()}, not root (eBPF and namespaces need root)"
        if strict():
            pytest.fail(f"strict mode: {why}; CI runs the tests as root (scripts/test.sh "
                        "re-executes itself with sudo)", pytrace=False)
        _skip(f"pktlab doctor: {why}")
    _needs("root")


def _untried_because():
    """The doctor's failed prerequisite checks ('' when it could try the hooks)."""
    failed = [c for c in doctor_report()["checks"]
              if c["name"] in HOOK_PREREQUISITES and not c["ok"]]
    return "; ".join(f"{c['name']}: {c['detail']}" for c in failed)


def require_hook(hook):
    """Skip unless the doctor proved `hook` works here; returns its `via`."""
    require_root()
    info = doctor_report()["hooks"][hook]
    if info["available"]:
        _needs(f"hook {hook}")
        return info["via"]
    untried = _untried_because() or (info["why"] if info["why"].startswith("not tried") else "")
    if untried and strict():
        pytest.fail(f"strict mode: hook {hook} is unavailable only because the doctor could not "
                    f"try it ({untried}); that is this checkout or its setup, not this machine",
                    pytrace=False)
    _skip(f"pktlab doctor: hook {hook} is not available here: {info['why']}")


def kprobe_mechanism_refusals():
    """{mechanism: the doctor's reason it cannot be used here}, from the kprobe hook's `why`
    ("not kprobe: ...; not fentry: ..."): only mechanisms the doctor tried and refused."""
    why = doctor_report()["hooks"]["kprobe"]["why"] or ""
    out = {}
    for m in KPROBE_MECHANISMS:
        tag = f"not {m}: "
        at = why.find(tag)
        if at < 0:
            continue
        text = why[at + len(tag):]
        ends = [text.find(f"; not {o}: ") for o in KPROBE_MECHANISMS if o != m]
        ends = [e for e in ends if e >= 0]
        out[m] = text[:min(ends)] if ends else text
    return out


def require_kprobe_mechanism(mech):
    """Run only where the doctor did not refuse `mech` for the kprobe hook; where it did, the
    test is reported as untested here (with the doctor's reason), not passed."""
    require_hook("kprobe")
    refused = kprobe_mechanism_refusals()
    if mech in refused:
        _untested[f"kprobe hook via {mech}"] = refused[mech]
        _skip(f"untested here: kprobe hook via {mech}: pktlab doctor: {refused[mech]}")
    _needs(f"kprobe mechanism {mech}")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _Current.nodeid, _Current.needs, _Current.allowed_skip = item.nodeid, [], None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not (rep.skipped and strict() and _Current.nodeid == item.nodeid and _Current.needs):
        return
    if _Current.allowed_skip is not None or hasattr(rep, "wasxfail"):
        return
    reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
    rep.outcome = "failed"
    rep.longrepr = (f"strict mode: a kernel test skipped although the doctor says what it needs "
                    f"is available here ({', '.join(dict.fromkeys(_Current.needs))}); "
                    f"skip reason: {reason}")


def pytest_terminal_summary(terminalreporter):
    if doctor_report.cache_info().currsize == 0:
        return          # no kernel test ran: the doctor was not asked
    tr = terminalreporter
    tr.write_sep("=", "pktlab doctor (decides the kernel tests' skips)" +
                 (", strict mode" if strict() else ""))
    for hook, info in doctor_report()["hooks"].items():
        state = f"available via {info['via']}" if info["available"] else "NOT available"
        tr.write_line(f"{hook}: {state}: {info['why']}")
    # mechanisms the doctor refused are never exercised here: said so, whatever tests ran
    for mech, why in kprobe_mechanism_refusals().items():
        _untested.setdefault(f"kprobe hook via {mech}", why)
    for what, why in sorted(_untested.items()):
        tr.write_line(f"untested here: {what}: {why}")


@pytest.fixture
def lab():
    """A fresh lab, torn down after the test whatever happened (pyroute2's nsname idiom)."""
    require_root()
    from pktlab.lab import Lab, leftovers
    lb = Lab(prefix="pltest")
    lb.up()
    try:
        yield lb
    finally:
        name = lb.name
        lb.close()
        assert leftovers(name) == [], f"lab {name} left resources behind"


def corpus_files():
    import json
    if not os.path.exists(os.path.join(PCAPS, "MANIFEST.json")):
        pytest.fail("pcaps/MANIFEST.json is missing: run `python pcaps/generate.py`")
    with open(os.path.join(PCAPS, "MANIFEST.json")) as f:
        manifest = json.load(f)
    files = manifest["files"] if isinstance(manifest, dict) and "files" in manifest else manifest
    if isinstance(files, dict):
        return [os.path.join(PCAPS, name) for name in sorted(files)]
    return [os.path.join(PCAPS, entry["file"] if "file" in entry else entry["name"])
            for entry in files]


@pytest.fixture
def learner_loads(monkeypatch):
    """A list that gets, for every program a checker loads through the learner loader, the uid
    the kernel records as its loader (None: refused); and bcc compiling C *text* as root fails
    the test (pktlab's own files, the doctor's hooks, may still be compiled)."""
    from pktlab.kernel import bpf, loader
    real_load, real_compile, owners = loader.load, bpf.compile_program, []

    def spy_load(req, *a, **kw):
        attempt, prog = real_load(req, *a, **kw)
        owners.append(None if prog is None else prog.created_by_uid)
        return attempt, prog

    def no_root_compile(*a, **kw):
        if kw.get("text") is not None or len(a) > 4:
            raise AssertionError("the learner's C was compiled as root (bpf.compile_program)")
        return real_compile(*a, **kw)
    monkeypatch.setattr(loader, "load", spy_load)
    monkeypatch.setattr(bpf, "compile_program", no_root_compile)
    return owners
