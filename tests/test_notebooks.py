"""The lessons: every notebook runs top to bottom, unattended, with its live parts really
running here; every committed notebook has no outputs and is what tools/make_notebooks.py
writes; a notebook whose hooks are missing still runs to the end and says why; solutions pass
their checkers; no lab namespace is left behind.

Executed copies go to test-output/notebooks/ (open them to see what a learner sees).
"""

import ast
import html
import os
import re
import subprocess
import sys
import time

import nbformat
import pytest

from conftest import REPO, require_hook

NB_DIR = os.path.join(REPO, "notebooks")
SOLUTIONS = os.path.join(NB_DIR, "solutions")
OUT_DIR = os.path.join(REPO, "test-output", "notebooks")
NOTEBOOKS = sorted(f[:-6] for f in os.listdir(NB_DIR) if f.endswith(".ipynb"))
CELL_TIMEOUT = 180          # the slowest cell (the doctor, a bench subset) takes ~15 s here
LAB_PREFIX = "plnb"         # pktlab.lessons.LAB_PREFIX: every lab a notebook opens
IMPORT = "from pktlab import lessons as pl"


def _read(stem):
    return nbformat.read(os.path.join(NB_DIR, stem + ".ipynb"), as_version=4)


def lesson_namespaces():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return sorted(ln.split()[0] for ln in out.splitlines() if ln.startswith(LAB_PREFIX))


def execute(stem, env_extra=None, save_as=None):
    """Run a notebook top to bottom in a fresh kernel; returns (executed notebook, seconds)."""
    from nbclient import NotebookClient
    nb = _read(stem)
    env = dict(os.environ)
    env.pop(("PKTLAB_PRETEND_MISSING"), None)
    env.update(env_extra or {})
    # the kernelspec says "python": jupyter_client runs sys.executable for it, i.e. this venv
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT,
                            startup_timeout=60, allow_errors=False,
                            resources={"metadata": {"path": NB_DIR}})
    t0 = time.monotonic()
    try:
        client.execute(env=env)
    finally:
        os.makedirs(OUT_DIR, exist_ok=True)
        nbformat.write(nb, os.path.join(OUT_DIR, (save_as or stem) + ".ipynb"))
    return nb, time.monotonic() - t0


def output_text(cell):
    """Everything a cell showed, as text (HTML tags stripped)."""
    parts = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type in ("display_data", "execute_result"):
            d = o.get("data", {})
            parts.append(d.get("text/html") or d.get("text/plain") or "")
        elif o.output_type == "error":
            parts.append(f"{o.ename}: {o.evalue}")
    return html.unescape(re.sub(r"<[^>]+>", " ", "\n".join(parts)))


def widget_html(nb):
    """The HTML the notebook's widgets showed (their saved state), one string."""
    state = (nb.metadata.get("widgets", {})
             .get("application/vnd.jupyter.widget-state+json", {}).get("state", {}))
    parts = []
    for model in state.values():
        v = model.get("state", {}).get("value")
        if isinstance(v, str):
            parts.append(v)
    return "\n".join(parts)


def assert_clean_run(nb):
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            assert o.output_type != "error", (cell.source, o.ename, o.evalue)
            if o.output_type == "stream" and o.name == "stderr":
                assert "Traceback" not in o.text and "Error" not in o.text, (cell.source, o.text)
    last = nb.cells[-1]
    assert last.source.strip() == "pl.close_all()"
    assert "nothing left behind" in output_text(last), output_text(last)


# --- what is committed ---------------------------------------------------------------------------

@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_committed_without_outputs(stem):
    nb = _read(stem)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{stem}: a cell has outputs: {cell.source[:60]!r}"
            assert cell.execution_count is None, f"{stem}: execution_count in {cell.source[:60]!r}"
    assert "widgets" not in nb.metadata, f"{stem}: widget state is committed"


def test_notebooks_are_what_the_generator_writes():
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "make_notebooks.py"),
                        "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


#: the instructor kit's first paragraph of every lesson: its time and what comes before it
TIME_LINE = re.compile(r"\*About (\d+) minutes\. Before: [^*]+\*")


def time_line(source):
    """The '*About N minutes. Before: ...*' paragraph of a cell (its match), or None."""
    for para in source.split("\n\n"):
        m = TIME_LINE.fullmatch(" ".join(para.split()))
        if m:
            return m
    return None


def lesson_minutes(stem):
    """The minutes a lesson's first cell says it takes."""
    m = time_line(_read(stem).cells[0].source)
    return int(m.group(1)) if m else None


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_lesson_shape(stem):
    """NN-topic; one import first; opens with its time, prerequisites and what you will learn;
    exercises, then a summary, then the clean-up; logic stays in pktlab."""
    assert re.fullmatch(r"\d\d-[a-z0-9-]+", stem)
    nb = _read(stem)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source.strip() == IMPORT
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {stem[:2]} ")
    assert time_line(first.source), \
        f"{stem}: the first cell has no '*About N minutes. Before: ...*' line"
    assert "What you will learn" in first.source, f"{stem}: no goals in the first cell"
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "What you will learn" in text and "## Exercises" in text
    ex_at = next(i for i, c in enumerate(nb.cells) if "## Exercises" in c.source)
    summary = [i for i, c in enumerate(nb.cells)
               if c.cell_type == "markdown" and c.source.startswith("## Summary")]
    assert summary and summary[0] > ex_at, f"{stem}: no '## Summary' after the exercises"
    assert nb.cells[summary[0] + 1].source.startswith("## Clean up"), \
        f"{stem}: the summary is not the last thing before the clean-up"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.source.startswith("%%bpf "):
            continue            # C for the cell magic (a learner's program), not Python
        tree = ast.parse(cell.source)
        defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        assert not defs or i > ex_at, f"{stem}: logic defined outside the exercises: {cell.source[:80]!r}"
        imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert not imports or cell is code[0], f"{stem}: a second import: {cell.source[:80]!r}"
    assert "solution" not in "\n".join(c.source for c in code).lower()


# --- running them ----------------------------------------------------------------------------------

def test_kernel_is_this_venv():
    from nbclient import NotebookClient
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    NotebookClient(nb, kernel_name="python3", timeout=60).execute()
    assert nb.cells[0].outputs[0].text.strip() == sys.executable


@pytest.mark.notebook
@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(stem):
    before = lesson_namespaces()
    nb, took = execute(stem)
    print(f"{stem}: {took:.1f} s")
    assert_clean_run(nb)
    assert lesson_namespaces() == before, \
        f"{stem} left lab namespaces: {sorted(set(lesson_namespaces()) - set(before))}"
    assert_live_where_the_doctor_says(stem, nb)
    assert_each_figure_shown_once(stem, nb)


def _hooks_opened(nb):
    """The hooks a notebook's pl.open_lab(...) and pl.open_belt(...) cells ask for."""
    from pktlab.kernel.hooks import parse_hooks
    from pktlab.sockets.belt import parse_belt_hooks
    asked = []
    for cell in nb.cells:
        src = cell.source if cell.cell_type == "code" else ""
        for m in re.finditer(r"open_lab\(([^)]*)\)", src):
            asked += parse_hooks(ast.literal_eval(m.group(1)) if m.group(1).strip() else "all")
        for m in re.finditer(r"open_belt\(([^)]*)\)", src):
            call = ast.parse(f"f({m.group(1)})").body[0].value
            kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
            asked += parse_belt_hooks(kw.get("hooks", "all"))
    return tuple(dict.fromkeys(asked))


def assert_each_figure_shown_once(stem, nb):
    """A cell that ends in a view's plot call (`ct.plot()`) shows its figure once, as its
    value (a figure made through pyplot showed twice: pyplot's inline flush and the value),
    or says why it cannot run here."""
    for cell in nb.cells:
        lines = cell.source.strip().splitlines() if cell.cell_type == "code" else []
        if not lines or not re.fullmatch(r"\w+\.plot\w*\(\)", lines[-1].strip()):
            continue
        shown = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        assert len(shown) == 1 or (not shown and "not run here" in output_text(cell)), \
            f"{stem}: `{lines[-1].strip()}` showed {len(shown)} figures"


def assert_live_where_the_doctor_says(stem, nb):
    """Whether a hook ran live is the doctor's call (run once, in conftest), never the page's:
    a hook the doctor proved here must show up attached, and the lab must have been used and
    closed; a hook it did not must show the doctor's reason. A failed attach that falls back to
    the offline branch fails here."""
    from conftest import doctor_report
    if os.geteuid() != 0:
        return      # nothing can be live; the lessons say so in their own (non-root) words
    hooks = doctor_report()["hooks"]
    shown = "\n".join(output_text(c) for c in nb.cells)
    asked = _hooks_opened(nb)
    for h in asked:
        if hooks[h]["available"]:
            assert re.search(rf"\b{h}\s+attached\b", shown), \
                f"{stem}: the doctor proved {h} here, but the lesson did not attach it"
        else:       # never attached (lessons.py), and the doctor's reason is on the page
            assert not re.search(rf"\b{h}\s+attached\b", shown), f"{stem}: {h} attached"
            assert hooks[h]["why"][:60] in shown, f"{stem}: {h} missing, the reason not shown"
    live = [h for h in asked if hooks[h]["available"]]
    if live:
        for offline in ("no live lab", "not run here", "could not be opened"):
            assert offline not in shown, f"{stem}: {offline!r} although {live} can run here"
        assert re.search(r"closed lab plnb[0-9a-f]{6}", shown), shown[-500:]
    # the cells that ask the doctor, and the bench, say live what the doctor says
    for cell in nb.cells:
        m = re.fullmatch(r'pl\.hook_available\("([a-z-]+)"\), pl\.why_not\("\1"\)',
                         cell.source.strip())
        if m:
            want = "(True, '')" if hooks[m.group(1)]["available"] else "(False, '"
            assert output_text(cell).strip().startswith(want), (cell.source, output_text(cell))
    if stem == "06-hook-throughput":
        # the panel shows the figures (in its widgets), once: no cell prints them again
        panel = widget_html(nb)
        for hook, row in (("xdp", "xdp"), ("tc-ingress", "tc")):
            if hooks[hook]["available"]:
                assert re.search(rf"<td[^>]*>{row}</td><td[^>]*>[^<]*</td><td[^>]*>\d+\.\d<",
                                 panel), \
                    f"{stem}: no measured {row} row although the doctor proved {hook} here"
        assert "ns per packet" not in shown, f"{stem}: a cell prints the figures again"
        assert not [o for c in nb.cells for o in c.get("outputs", [])
                    if "image/png" in o.get("data", {})], f"{stem}: a cell prints the chart again"


@pytest.mark.notebook
@pytest.mark.parametrize("stem,missing,live", [
    ("02-xdp", "all", None),
    ("04-kprobe", "kprobe", "xdp"),
    ("05-conveyor-belt", "kprobe,xdp", "tc-ingress"),
    ("08-socket-end", "cgroup-ingress,sk-skb", "recv"),
])
def test_notebook_without_its_hooks_says_why_and_runs_on(stem, missing, live):
    """A learner's machine without the hook: the reason is shown, and the notebook ends."""
    before = lesson_namespaces()
    nb, _took = execute(stem, {"PKTLAB_PRETEND_MISSING": missing},
                        save_as=f"{stem}.without-{missing.replace(',', '-')}")
    assert_clean_run(nb)
    shown = "\n".join(output_text(c) for c in nb.cells)
    assert "pretending it is missing" in shown
    if missing == "all":
        assert "not run here" in shown and "no live lab" in shown
    else:
        assert re.search(rf"{live}\s+attached", shown), "the available hooks still ran"
    assert_each_figure_shown_once(stem, nb)
    assert lesson_namespaces() == before


# --- exercises: the solutions pass, the starting code does not ------------------------------------

def _solution_module(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"solution_{name}",
                                                  os.path.join(SOLUTIONS, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _solution_c(name):
    with open(os.path.join(SOLUTIONS, name + ".c")) as f:
        return f.read()


def test_dscp_solution_passes_and_the_starting_code_does_not():
    from pktlab.lessons import exercises
    from pktlab.packet import headers
    assert exercises.check_dscp(_solution_module("dscp").dscp).passed
    assert not exercises.check_dscp(lambda f: headers.IPv4.cast(f, 14).tos).passed
    assert not exercises.check_dscp(lambda f: 1 / 0).passed      # raises: shown, not fatal


@pytest.mark.parametrize("name,fn", [("eth-bounds", "parse_ethhdr"),
                                     ("ihl-minimum", "parse_iphdr")])
def test_c_solutions_pass_and_the_broken_functions_do_not(name, fn, learner_loads):
    require_hook("xdp")
    from pktlab.kernel import loader
    from pktlab.lessons import exercises
    owners = learner_loads
    broken = exercises.check_c(name, exercises.exercise_source(name))
    assert not broken.passed
    if name == "eth-bounds":
        assert "refused" in repr(broken) and "invalid access to packet" in repr(broken)
    else:
        assert "loads, but" in repr(broken)            # the verifier accepts; the corpus does not
    assert exercises.check_c(name, _solution_c(fn)).passed
    # each check loaded the program once, through the learner loader: the kernel records the
    # pktlab-loader account as the loader of the one that loaded (None: refused)
    uid = loader.account()[0]
    assert owners == ([None, uid] if name == "eth-bounds" else [uid, uid]), owners


def test_question_checkers_accept_the_answers_in_the_solutions():
    require_hook("xdp")
    from pktlab.lessons import exercises
    from pktlab import lessons as pl
    assert exercises.check_wire_order(["tc-egress", "kprobe", "xdp", "tc-ingress"]).passed
    assert not exercises.check_wire_order(["xdp", "tc-ingress", "kprobe", "tc-egress"]).passed
    off = pl.btf_offset("sk_buff.protocol")[0]
    assert exercises.check_btf_field("sk_buff.protocol", off).passed
    assert not exercises.check_btf_field("sk_buff.protocol", off + 1).passed
    assert exercises.check_vlan_flag("flags").passed
    assert exercises.check_cheapest_hook("a", {"micro": {"a": {"ns_per_pkt": 10},
                                                         "b": {"ns_per_pkt": 30}}}).passed
    with pl.open_lab(["tc-ingress"]) as lab:
        assert exercises.check_explained([1, 2, 3, 4, 5], lab, "vlan.pcap").passed
        assert not exercises.check_explained([1], lab, "vlan.pcap").passed
    assert lesson_namespaces() == []


def test_lesson_08_checkers_accept_the_solutions_and_refuse_the_starting_answers():
    require_hook("sk-skb")
    from pktlab.lessons import exercises
    sol = _solution_module("belt")
    assert exercises.check_belt_order(sol.ORDER).passed
    assert not exercises.check_belt_order([]).passed
    assert not exercises.check_belt_order(list(reversed(sol.ORDER))).passed
    assert exercises.check_only_above(sol.FIELD).passed
    assert not exercises.check_only_above("").passed
    assert not exercises.check_only_above("sport").passed       # the TCP header: both see it
    assert exercises.check_insert_moment(sol.OP).passed          # measured in a real lab
    assert not exercises.check_insert_moment("BPF_SOCK_OPS_TCP_CONNECT_CB").passed
    assert not exercises.check_insert_moment("BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB").passed
    assert lesson_namespaces() == []


def test_the_lab_goes_when_the_kernel_is_killed():
    """SIGKILL skips atexit: the reaper process removes the notebook's lab."""
    require_hook("xdp")
    code = ("from pktlab import lessons as pl; lab = pl.open_lab(['xdp']); "
            "print(lab.name, flush=True); import time; time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        name = p.stdout.readline().strip()
        assert name.startswith(LAB_PREFIX) and f"{name}-dut" in lesson_namespaces()
    finally:
        p.kill()
        p.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and f"{name}-dut" in lesson_namespaces():
        time.sleep(0.1)
    assert f"{name}-dut" not in lesson_namespaces()
