#!/usr/bin/env python3
"""Write the lesson notebooks (notebooks/NN-topic.ipynb) from this one source.

    .venv/bin/python tools/make_notebooks.py           # (re)write them
    .venv/bin/python tools/make_notebooks.py --check   # exit 1 if a committed one differs

The notebooks are committed as this script writes them: no outputs, execution_count null,
cell ids derived from the notebook and the cell's position, so a rerun changes nothing.
Exercise cells that hand the learner a C function take it from bpf_snippets/pktlab_parse.h
(minus the lines the exercise removes: pktlab/lessons/exercises/ex02.py), so they never drift
from the parser. Solutions live in notebooks/solutions/, never in a lesson. Each lesson's cells
are in tools/nbsrc/nbNN.py; what they share in tools/nbsrc/cells.py.
"""

import os
import sys

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(REPO, "notebooks")
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

from nbsrc.nb00 import nb00  # noqa: E402
from nbsrc.nb01 import nb01  # noqa: E402
from nbsrc.nb02 import nb02  # noqa: E402
from nbsrc.nb03 import nb03  # noqa: E402
from nbsrc.nb04 import nb04  # noqa: E402
from nbsrc.nb05 import nb05  # noqa: E402
from nbsrc.nb06 import nb06  # noqa: E402
from nbsrc.nb07 import nb07  # noqa: E402
from nbsrc.nb08 import nb08  # noqa: E402
from nbsrc.nb09 import nb09  # noqa: E402
from nbsrc.nb10 import nb10  # noqa: E402


NOTEBOOKS = {
    "00-setup-check": nb00,
    "01-casting-headers": nb01,
    "02-xdp": nb02,
    "03-tc": nb03,
    "04-kprobe": nb04,
    "05-conveyor-belt": nb05,
    "06-hook-throughput": nb06,
    "07-replay-your-pcap": nb07,
    "08-socket-end": nb08,
    "09-socket-table": nb09,
    "10-mptcp-sockops": nb10,
}


def build(stem, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                       "language": "python"},
        "language_info": {"name": "python"},
    }
    for i, (kind, text) in enumerate(cells):
        cid = f"{stem[:2]}-{i:02d}"
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(text, id=cid)
        else:
            cell = nbformat.v4.new_code_cell(text, id=cid)
            cell.execution_count = None
            cell.outputs = []
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def main(argv):
    check = "--check" in argv
    bad = []
    os.makedirs(OUT, exist_ok=True)
    for stem, fn in NOTEBOOKS.items():
        text = build(stem, fn())
        path = os.path.join(OUT, stem + ".ipynb")
        if check:
            try:
                with open(path) as f:
                    if f.read() != text:
                        bad.append(path)
            except FileNotFoundError:
                bad.append(path)
        else:
            with open(path, "w") as f:
                f.write(text)
    if check and bad:
        print("not as tools/make_notebooks.py writes them (run it): " + ", ".join(bad),
              file=sys.stderr)
        return 1
    if not check:
        print(f"wrote {len(NOTEBOOKS)} notebooks to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
