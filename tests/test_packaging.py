"""pyproject.toml and environment.yml name the same Python dependencies; README and CI agree."""

import os
import re

import pytest

from conftest import REPO

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

# conda-forge names that differ from PyPI's, and packages only one side can have
CONDA_ONLY = {"python", "bcc"}   # bcc is not on PyPI: the venv gets it from the system


def _name(req):
    return re.split(r"[<>=!~\[; ]", req.strip(), 1)[0].lower()


def test_environment_yml_matches_pyproject():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        proj = tomllib.load(f)["project"]
    pypi = {_name(r) for r in proj["dependencies"]}
    for extra in proj.get("optional-dependencies", {}).values():
        pypi |= {_name(r) for r in extra}
    conda = set()
    with open(os.path.join(REPO, "environment.yml")) as f:
        in_deps = False
        for line in f:
            if line.startswith("dependencies:"):
                in_deps = True
                continue
            m = re.match(r"^\s+-\s+([A-Za-z0-9_.\-]+)", line)
            if in_deps and m:
                conda.add(m.group(1).lower())
    assert conda - CONDA_ONLY == pypi, (f"only in environment.yml: {conda - CONDA_ONLY - pypi}; "
                                        f"only in pyproject.toml: {pypi - conda}")


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one():
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    with open(os.path.join(REPO, ".ci", "run")) as f:
        ci = f.read()
    assert "make lab" in readme and "make test" in readme
    assert re.search(r"^\s*make test\b", ci, re.M), ".ci/run must call the README's test command"


# --- the wheel: an installed (non-editable) pktlab carries every room and its data ----------

@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel, built once for the tests below (each built its own: 10 s and more)."""
    return _wheel(tmp_path_factory.mktemp("wheel"))


def _wheel(tmp_path):
    import glob
    import subprocess
    import sys
    import shutil
    # built from a copy of the checkout's files (tracked and new, not ignored): setuptools'
    # build/ directory in the checkout would otherwise carry modules that no longer exist
    src = tmp_path / "src"
    files = subprocess.run(["git", "-C", REPO, "ls-files", "-co", "--exclude-standard"],
                           capture_output=True, text=True, check=True).stdout.split("\n")
    for f in filter(None, files):
        if os.path.isfile(os.path.join(REPO, f)):
            os.makedirs(src / os.path.dirname(f), exist_ok=True)
            shutil.copy2(os.path.join(REPO, f), src / f)
    out = tmp_path / "dist"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
                        str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = glob.glob(str(out / "pktlab-*.whl"))
    return whl


def test_the_wheel_carries_every_room_and_the_data_they_need(wheel):
    import zipfile
    names = set(zipfile.ZipFile(wheel).namelist())
    for dirpath, dirnames, files in os.walk(os.path.join(REPO, "pktlab")):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), REPO).replace(os.sep, "/")
                assert rel in names, f"{rel} is missing from the wheel (pyproject's packages)"
    for f in os.listdir(os.path.join(REPO, "bpf_snippets")):
        assert f"pktlab/_snippets/{f}" in names, f"bpf_snippets/{f} missing from the wheel"
    for f in os.listdir(os.path.join(REPO, "pcaps")):
        if f.endswith((".pcap", ".pcapng")) or f == "MANIFEST.json":
            assert f"pktlab/_pcaps/{f}" in names, f"pcaps/{f} missing from the wheel"


def test_an_installed_wheel_casts_and_runs_the_doctor_from_anywhere(wheel, tmp_path):
    """pip install of the wheel (not editable) into a scratch venv, run away from the checkout:
    `pktlab cast` of a bundled capture and `pktlab doctor` (which compiles and loads every hook
    program from the sources the wheel carries) work, and use the wheel's files."""
    import json
    import subprocess
    import sys
    import sysconfig
    from conftest import require_root
    whl = wheel
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # the dependencies come from the project's venv (a .pth), pktlab only from the wheel
    site = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    deps = sysconfig.get_paths()["purelib"]
    with open(os.path.join(site, "pktlab-test-deps.pth"), "w") as f:
        f.write(deps + "\n" + "/usr/lib/python3/dist-packages\n")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                        "--target", site, whl], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    py = str(venv / "bin" / "python")
    where = subprocess.run([py, "-c", "import pktlab, pktlab.resources as r; "
                            "print(pktlab.__file__); print(r.snippets_dir()); "
                            "print(r.bundled_pcaps_dir())"],
                           capture_output=True, text=True, cwd=str(tmp_path), check=True)
    pkg, snippets, pcaps = where.stdout.split()
    for p in (pkg, snippets, pcaps):
        assert p.startswith(site), f"{p}: not from the installed wheel ({site})"
    r = subprocess.run([py, "-m", "pktlab.cli", "cast", os.path.join(pcaps, "mixed.pcap")],
                       capture_output=True, text=True, cwd=str(tmp_path), timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("frame 1 ") and "Ethernet @0" in r.stdout
    require_root()
    r = subprocess.run([py, "-m", "pktlab.cli", "doctor", "--json"], capture_output=True,
                       text=True, cwd=str(tmp_path), timeout=600)
    doc = json.loads(r.stdout)
    assert doc["ok"], [c for c in doc["checks"] if not c["ok"]]
    assert doc["hooks"]["xdp"]["available"] and doc["hooks"]["tc-ingress"]["available"]
