"""Where pktlab's files are: the eBPF sources (bpf_snippets/), the bundled captures (pcaps/),
the lessons as shipped (notebooks/NN-topic.ipynb) and a learner's working copy of them (work/).

In the repository they sit next to the package; an installed wheel carries them inside it, as
the data packages ``pktlab._snippets``, ``pktlab._pcaps`` and ``pktlab._lessons``
(pyproject.toml maps the folders there). They are found the same way, first match wins:

1. the environment variable ($PKTLAB_BPF_SNIPPETS, $PKTLAB_PCAPS, $PKTLAB_LESSONS);
2. the data package, wherever the installed package put it;
3. the folder next to the package (a checkout used without installing).

Nothing is looked up at import time.
"""

import functools
import os
from importlib import util as _util

from .errors import EnvironmentProblem

SNIPPETS_ENV = "PKTLAB_BPF_SNIPPETS"
PCAPS_ENV = "PKTLAB_PCAPS"
RECORD_HEADER = "pktlab_record.h"

#: the folder that holds the pktlab package (a child process puts it on sys.path)
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _data_package(name):
    """The folder of a data package (a namespace package: no __init__.py, only files)."""
    try:
        spec = _util.find_spec(name)
    except (ModuleNotFoundError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    return locations[0] if locations else None


def _find(env, package, folder, marker, what):
    candidates = []
    if os.environ.get(env):
        candidates.append(os.environ[env])
    d = _data_package(package)
    if d:
        candidates.append(d)
    candidates.append(os.path.join(PACKAGE_PARENT, folder))
    for c in candidates:
        if os.path.isfile(os.path.join(c, marker)):
            return c
    raise EnvironmentProblem(
        f"pktlab {what} ({marker}): not found in {', '.join(candidates)}; the checkout is "
        f"incomplete or pktlab was installed without its data; reinstall it (pip install .) "
        f"or set {env}")


@functools.lru_cache(maxsize=None)
def _snippets(env_value):
    return _find(SNIPPETS_ENV, "pktlab._snippets", "bpf_snippets", RECORD_HEADER,
                 "eBPF sources")


def snippets_dir():
    """The directory of the eBPF programs and the shared C headers."""
    return _snippets(os.environ.get(SNIPPETS_ENV))


def snippet_path(name):
    """A file in the snippets directory."""
    return os.path.join(snippets_dir(), name)


@functools.lru_cache(maxsize=None)
def bundled_pcaps_dir():
    """The captures that come with pktlab (pcaps/, made by pcaps/generate.py)."""
    return _find("PKTLAB_BUNDLED_PCAPS", "pktlab._pcaps", "pcaps", "MANIFEST.json",
                 "bundled captures")


def pcaps_dir():
    """The lessons' capture folder: $PKTLAB_PCAPS (an instructor's), else the bundled one."""
    return os.environ.get(PCAPS_ENV) or bundled_pcaps_dir()


def bundled_pcap(name):
    """A bundled capture by file name."""
    return os.path.join(bundled_pcaps_dir(), name)


LESSONS_ENV = "PKTLAB_LESSONS"
WORKDIR_ENV = "PKTLAB_WORKDIR"


@functools.lru_cache(maxsize=None)
def _lessons(env_value):
    return _find(LESSONS_ENV, "pktlab._lessons", "notebooks", "00-setup-check.ipynb",
                 "lessons as shipped")


def lessons_dir():
    """The lesson notebooks as shipped (NN-topic.ipynb, without outputs): $PKTLAB_LESSONS, the
    data package ``pktlab._lessons`` of an installed wheel, else notebooks/ of the checkout."""
    return _lessons(os.environ.get(LESSONS_ENV))


def default_workdir():
    """Where a learner's copies of the lessons are: $PKTLAB_WORKDIR, else the work/ folder next
    to the package (what `make lab` serves)."""
    return os.environ.get(WORKDIR_ENV) or os.path.join(PACKAGE_PARENT, "work")
