"""Shared fixtures. Kernel tests skip only when `pktlab doctor` says the feature is missing
here, and print the doctor's reason."""

import functools
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PCAPS = os.path.join(REPO, "pcaps")


@functools.lru_cache(maxsize=1)
def doctor_report():
    from pktlab import doctor
    report, _ = doctor.run()
    return report


def require_root():
    if os.geteuid() != 0:
        pytest.skip("pktlab doctor: not root (eBPF and namespaces need root)")


def require_hook(hook):
    """Skip unless the doctor proved `hook` works here; returns its `via`."""
    require_root()
    info = doctor_report()["hooks"][hook]
    if not info["available"]:
        pytest.skip(f"pktlab doctor: hook {hook} is not available here: {info['why']}")
    return info["via"]


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
