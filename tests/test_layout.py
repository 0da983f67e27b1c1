"""The package's rooms and the one way its imports run (DESIGN.md; pktlab/__init__.py).

Every import in pktlab/ (at module level or inside a function: both run) is read with ast and
resolved to the module it names. A room may import only rooms below it; no two modules import
each other, directly or round a circle; every room's __init__ says what lives there and what it
may import; no module or function grows past the size a reader can hold.
"""

import ast
import os
import sys

import pytest

from conftest import REPO

PKG = os.path.join(REPO, "pktlab")

#: rooms, bottom (0) to top; a room imports only rooms of a lower rank
RANK = {
    "errors": 0, "progress": 0, "resources": 0, "owned": 0,
    "packet": 1,
    "lab": 2,
    "kernel": 3,
    "replay": 4, "bench": 4, "sockets": 4, "mptcp": 4,
    "doctor": 4.25,                  # proves the hooks of the rooms below it, in a lab
    "workshop": 4.5,                 # the daemon drives replays and runs the doctor for
                                     # its learners (opsmptcp): above both
    "lessons": 6,
    "cli": 7,
}
BASE = 0
MODULE_LINES = 650
FUNCTION_LINES = 120
LONG_ON_PURPOSE = "one function on purpose"


def _modules():
    """{dotted name: path} of every module under pktlab/ (data packages left out)."""
    out = {}
    for dirpath, dirnames, files in os.walk(PKG):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), REPO)[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                out[".".join(rel)] = os.path.join(dirpath, f)
    return out


MODULES = _modules()


def _package(mod, path):
    return mod if path.endswith("__init__.py") else mod.rsplit(".", 1)[0]


def _resolve(base, name):
    """A dotted name to the module it is: itself, or its parent for `from pkg import attr`."""
    if name in MODULES:
        return name
    parent = name.rsplit(".", 1)[0]
    return parent if parent in MODULES else None


def _imports(mod, path):
    """The pktlab modules `mod` imports, with the line of each."""
    tree = ast.parse(open(path).read())
    pkg = _package(mod, path)
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            for a in n.names:
                if a.name.split(".")[0] == "pktlab":
                    out.append((_resolve(pkg, a.name), n.lineno))
        elif isinstance(n, ast.ImportFrom):
            if n.level:
                base = pkg.split(".")
                base = base[:len(base) - (n.level - 1)]
                target = ".".join(base + ([n.module] if n.module else []))
            elif n.module and n.module.split(".")[0] == "pktlab":
                target = n.module
            else:
                continue
            for a in n.names:
                t = _resolve(pkg, f"{target}.{a.name}") if f"{target}.{a.name}" in MODULES \
                    else _resolve(pkg, target)
                out.append((t, n.lineno))
    return [(t, line) for t, line in out if t and t != mod]


def _room(mod):
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "pktlab"


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def test_every_module_is_in_a_known_room():
    rooms = {_room(m) for m in MODULES} - {"pktlab", "_snippets", "_pcaps"}
    assert rooms <= set(RANK), f"rooms without a rank here: {rooms - set(RANK)}"


def test_imports_only_go_down():
    bad = []
    for mod, deps in GRAPH.items():
        src = _room(mod)
        if src == "pktlab":
            continue                    # the package's own __init__ imports nothing
        for dep, line in deps:
            dst = _room(dep)
            if dst == src:
                continue
            if dst == "pktlab" or not (RANK[dst] < RANK[src] or RANK[dst] == RANK[src] == BASE):
                bad.append(f"{MODULES[mod][len(REPO) + 1:]}:{line}: {src} imports {dep} "
                           f"({dst}, not below it)")
    assert not bad, "imports that climb or cross a layer:\n" + "\n".join(bad)


def test_no_import_circles():
    index, low, stack, on, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w, _line in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


@pytest.mark.parametrize("room", sorted(r for r in RANK if os.path.isdir(os.path.join(PKG, r))))
def test_every_room_says_what_lives_there_and_what_it_may_import(room):
    doc = ast.get_docstring(ast.parse(open(os.path.join(PKG, room, "__init__.py")).read()))
    assert doc and doc.startswith(f"{room}:"), f"pktlab/{room}/__init__.py: no docstring naming the room"
    assert "May import" in doc, f"pktlab/{room}/__init__.py: does not say what it may import"


def test_modules_and_functions_stay_readable():
    long_modules = [f"{p[len(REPO) + 1:]}: {n} lines" for p in MODULES.values()
                    if (n := sum(1 for _ in open(p))) > MODULE_LINES]
    long_functions = []
    for p in MODULES.values():
        src = open(p).read()
        lines = src.split("\n")
        for n in ast.walk(ast.parse(src)):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = n.end_lineno - n.lineno + 1
                head = "\n".join(lines[max(0, n.lineno - 4):n.lineno + 8])
                if size > FUNCTION_LINES and LONG_ON_PURPOSE not in head:
                    long_functions.append(f"{p[len(REPO) + 1:]}:{n.lineno} {n.name}: {size} lines")
    assert not long_modules, f"modules over {MODULE_LINES} lines: {long_modules}"
    assert not long_functions, (f"functions over {FUNCTION_LINES} lines without a comment "
                                f"saying why ('{LONG_ON_PURPOSE}'): {long_functions}")


def test_the_checks_see_a_circle_and_a_climb(tmp_path, monkeypatch):
    """The guards themselves: an upward import and a circle are caught (so a pass means
    something)."""
    fake = dict(GRAPH)
    fake["pktlab.packet.walker"] = GRAPH["pktlab.packet.walker"] + [("pktlab.kernel.bpf", 1)]
    monkeypatch.setattr(sys.modules[__name__], "GRAPH", fake)
    with pytest.raises(AssertionError, match="packet imports pktlab.kernel.bpf"):
        test_imports_only_go_down()
    fake2 = dict(GRAPH)
    fake2["pktlab.packet.record"] = GRAPH["pktlab.packet.record"] + [("pktlab.packet.walker", 1)]
    monkeypatch.setattr(sys.modules[__name__], "GRAPH", fake2)
    with pytest.raises(AssertionError, match="import circles"):
        test_no_import_circles()
