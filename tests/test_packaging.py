"""pyproject.toml and environment.yml name the same Python dependencies; README and CI agree."""

import os
import re

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
