"""JupyterLab, driven in a real headless browser (Debian's chromium through Python playwright).

Starts JupyterLab on localhost with a random token, opens lessons 01 and 02, runs every cell
above the last (Run > Run All Above Selected Cell), then checks what a learner would see: the
layered hex view rendered, pressing *step* and moving the frame slider change what is shown (in
02 with the XDP hook's live record of each frame), no cell errored. Then it runs the last cell,
which closes the lab, and stops JupyterLab; no lab namespace may be left. Lesson 08 the same
way: the belt of one real request rendered with every hook the doctor proved, its plots, and
the hook chooser: unticking a hook follows a new request without it. Lesson 09 (another
engineer's, the socket table as a connection tracker) runs there too, its firewalls' table shown.
A scratch notebook of %%bpf cells (a learner's own programs): "loaded" with a live map table
that fills, and a refusal shown at the cell's own line.

The server serves a scratch copy of notebooks/ (with autosave off): the browser must never write
outputs into the committed lessons. Screenshots go to test-output/browser/.
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import nbformat
import pytest

from conftest import REPO, doctor_report

pytestmark = pytest.mark.browser

NB_DIR = os.path.join(REPO, "notebooks")
SHOTS = os.path.join(REPO, "test-output", "browser")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LAB_PREFIX = "plnb"
RUN_TIMEOUT_MS = 150_000

#: JupyterLab settings for the test server: every cell in the DOM (no windowing, so the test
#: sees all of them), no autosave, no news/update pop-ups over the screenshots.
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
}


def lesson_namespaces():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return sorted(ln.split()[0] for ln in out.splitlines() if ln.startswith(LAB_PREFIX))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, token, method="GET", timeout=2):
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (scripts/setup.sh --test)")
    tmp = tmp_path_factory.mktemp("jupyterlab")
    root = tmp / "notebooks"
    shutil.copytree(NB_DIR, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = tmp / "settings"
    for rel, value in SETTINGS.items():
        p = settings / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(value))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, PKTLAB_PCAPS=os.path.join(REPO, "pcaps"),
               JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"))
    env.pop("PKTLAB_PRETEND_MISSING", None)
    os.makedirs(SHOTS, exist_ok=True)
    log = open(os.path.join(SHOTS, "jupyterlab.log"), "w")
    before = lesson_namespaces()
    proc = subprocess.Popen(
        [os.path.join(REPO, ".venv", "bin", "jupyter"), "lab", "--ip=127.0.0.1", f"--port={port}",
         "--no-browser", "--allow-root", f"--ServerApp.token={token}",
         f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={settings}",
         f"--LabApp.workspaces_dir={tmp / 'workspaces'}"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if _get(f"{base}/api/status", token)[0] == 200:
                    break
            except (urllib.error.URLError, OSError):
                pass
            assert proc.poll() is None, "JupyterLab exited; see test-output/browser/jupyterlab.log"
            assert time.monotonic() < deadline, "JupyterLab did not answer within 90 s"
            time.sleep(0.3)
        yield {"base": base, "token": token, "proc": proc, "root": root}
    finally:
        # a clean stop: the server shuts its kernels down (their atexit closes any lab)
        try:
            _get(f"{base}/api/shutdown", token, method="POST", timeout=10)
        except (urllib.error.URLError, OSError):
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)     # the group this fixture started
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        deadline = time.monotonic() + 10         # a killed kernel's reaper needs a moment
        while lesson_namespaces() != before and time.monotonic() < deadline:
            time.sleep(0.2)
        left = sorted(set(lesson_namespaces()) - set(before))
        assert not left, f"labs left behind after JupyterLab stopped: {left}"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _kernel_ready(page, timeout=90_000):
    """The notebook's kernel is connected and idle: before that the execution indicator says
    idle already ("No Kernel | Initializing"), and a Run command given then is dropped."""
    page.wait_for_function(
        "() => /\\(ipykernel\\) \\| Idle/.test(document.body.innerText)", timeout=timeout)


def _menu(page, menu, item):
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{menu}$")).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(item)}$")).first.click()


def _wait_changed(page, locator, before, timeout=30_000):
    page.wait_for_function("([el, b]) => el.innerText !== b",
                           arg=[locator.element_handle(), before], timeout=timeout)
    return locator.inner_text()


def _frame_no(text):
    m = re.search(r"frame (\d+) of (\d+)", text)
    assert m, text[:200]
    return int(m.group(1))


def _errors(panel):
    """Error outputs and widgets that failed to render, as text."""
    bad = []
    for el in panel.locator('[data-mime-type="application/vnd.jupyter.stderr"]').all():
        t = el.inner_text()
        if "Traceback" in t or "Error" in t:
            bad.append(t[:2000])
    for el in panel.locator(".jp-OutputArea-output").all():
        t = el.inner_text()
        if "Error displaying widget" in t or "could not show frame" in t:
            bad.append(t[:500])
    return bad


def _xdp_proved_here():
    return os.geteuid() == 0 and doctor_report()["hooks"]["xdp"]["available"]


@pytest.mark.parametrize("stem", ["01-casting-headers", "02-xdp"])
def test_lesson_in_jupyterlab(jupyterlab, browser, stem):
    ncells = len(nbformat.read(os.path.join(NB_DIR, stem + ".ipynb"), as_version=4).cells)
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    shot = lambda name: page.screenshot(path=os.path.join(SHOTS, f"{stem}-{name}.png"))  # noqa: E731
    try:
        page.goto(f"{jupyterlab['base']}/lab/tree/{stem}.ipynb?reset&token={jupyterlab['token']}")
        panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        cells = panel.locator(".jp-Notebook .jp-Cell")
        page.wait_for_function(
            "n => { const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');"
            " return p && p.querySelectorAll('.jp-Notebook .jp-Cell').length >= n; }",
            arg=ncells, timeout=60_000)
        panel.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').wait_for(timeout=60_000)
        _kernel_ready(page)
        page.keyboard.press("Control+b")            # hide the file browser: room for the lesson
        # everything but the last cell (which closes the lab): run, then play with the widget
        cells.last.locator(".jp-InputPrompt").click()
        _menu(page, "Run", "Run All Above Selected Cell")
        page.wait_for_function(
            "() => { const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');"
            " const pr = [...p.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].slice(0, -1);"
            " const ind = p.querySelector('.jp-Notebook-ExecutionIndicator');"
            " return pr.every(x => /\\[\\d+\\]/.test(x.textContent)) &&"
            " ind && ind.getAttribute('data-status') === 'idle'; }",
            timeout=RUN_TIMEOUT_MS)
        shot("1-ran")
        assert _errors(panel) == []
        if stem == "02-xdp" and _xdp_proved_here():       # the %%bpf demo, "Your own program"
            assert panel.locator(".jp-OutputArea-output",
                                 has_text="count_dest as XDP (hook xdp)").count() == 1

        # the layered hex view rendered (pktlab/views.py's HTML), in outputs and in the stepper
        assert panel.locator(".jp-OutputArea-output .pl-view pre.pl-hex").count() >= 1
        stepper = panel.locator(".pl-stepper").first
        stepper.scroll_into_view_if_needed()
        hexview = stepper.locator(".pl-stepper-hex")
        assert hexview.locator(".pl-view pre.pl-hex").count() == 1
        records = stepper.locator(".pl-stepper-records")
        # live or not is the doctor's call (run once, in conftest), never the page's: a failed
        # attach that falls back to "walker and scapy only" must fail here, not pass offline
        live = stem == "02-xdp" and _xdp_proved_here()
        if stem == "02-xdp":
            status = stepper.locator(".pl-stepper-status").inner_text()
            if not live:      # only where the doctor says XDP cannot run here; it says why
                assert "walker and scapy only" in status, status
            else:
                assert records.locator("th", has_text="xdp").count() == 1, \
                    f"the doctor proved XDP here, but the stepper shows no XDP record: {status}"
                assert records.locator(".pll-badge").count() >= 1
        shot("2-stepper")

        # pressing step shows the next frame (and, live, its XDP record)
        before = hexview.inner_text()
        n0 = _frame_no(before)
        stepper.locator("button", has_text="step").click()
        after = _wait_changed(page, hexview, before)
        assert _frame_no(after) == n0 + 1
        if live:
            page.wait_for_function(
                "el => /frame \\d+ of \\d+: sent across lab/.test(el.innerText)",
                arg=stepper.locator(".pl-stepper-status").element_handle(), timeout=15_000)
            assert records.locator("th", has_text="xdp").count() == 1
            assert records.locator(".pll-badge", has_text=re.compile("agree|explained")).count() == 1
        # moving the frame slider (keyboard on its handle) shows another frame
        before = after
        stepper.locator(".noUi-handle").first.focus()
        page.keyboard.press("ArrowRight")
        after = _wait_changed(page, hexview, before)
        assert _frame_no(after) == n0 + 2
        if live:
            # the hook chooser attaches TC ingress to the open lab; the next frame shows it
            box = stepper.locator(".pl-hook-chooser .widget-checkbox", has_text="tc-ingress")
            box.locator("input[type=checkbox]").check()
            page.wait_for_function(
                "el => el.innerText.includes('tc-ingress')",
                arg=records.element_handle(), timeout=30_000)
            assert records.locator(".pll-badge").count() == 2
        stepper.scroll_into_view_if_needed()
        shot("3-stepped")
        # the capture chooser: a VLAN capture; live, TC ingress differs for a reason (amber)
        before = hexview.inner_text()
        stepper.locator("select").first.select_option("vlan.pcap")
        after = _wait_changed(page, hexview, before)
        assert "frame 1 of 5" in after and "802.1Q" in after
        if live:
            page.wait_for_function("el => el.querySelectorAll('.pll-expl').length > 0",
                                   arg=records.element_handle(), timeout=15_000)
            assert records.locator(".pll-badge", has_text="explained").count() == 1
            assert records.locator(".pll-diff").count() == 0      # no disagreement
            assert "skb_vlan_untag" in records.inner_text()
        shot("4-vlan")
        assert _errors(panel) == []

        # the last cell closes everything
        cells.last.locator(".jp-InputPrompt").click()
        _menu(page, "Run", "Run Selected Cell and Do not Advance")
        panel.locator(".jp-OutputArea-output", has_text="nothing left behind").wait_for(
            timeout=60_000)
        cells.last.scroll_into_view_if_needed()
        shot("5-closed")
        assert _errors(panel) == []
        assert lesson_namespaces() == []
    except Exception:
        shot("failed")
        raise
    finally:
        page.close()


def _open_and_run_above_last(page, jupyterlab, stem, ncells=None):
    if ncells is None:
        ncells = len(nbformat.read(os.path.join(NB_DIR, stem + ".ipynb"), as_version=4).cells)
    page.goto(f"{jupyterlab['base']}/lab/tree/{stem}.ipynb?reset&token={jupyterlab['token']}")
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    cells = panel.locator(".jp-Notebook .jp-Cell")
    page.wait_for_function(
        "n => { const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');"
        " return p && p.querySelectorAll('.jp-Notebook .jp-Cell').length >= n; }",
        arg=ncells, timeout=60_000)
    panel.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').wait_for(timeout=60_000)
    _kernel_ready(page)
    page.keyboard.press("Control+b")
    cells.last.locator(".jp-InputPrompt").click()
    _menu(page, "Run", "Run All Above Selected Cell")
    page.wait_for_function(
        "() => { const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');"
        " const pr = [...p.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].slice(0, -1);"
        " const ind = p.querySelector('.jp-Notebook-ExecutionIndicator');"
        " return pr.every(x => /\\[\\d+\\]/.test(x.textContent)) &&"
        " ind && ind.getAttribute('data-status') === 'idle'; }",
        timeout=RUN_TIMEOUT_MS)
    return panel, cells


def test_lesson_08_in_jupyterlab(jupyterlab, browser):
    stem = "08-socket-end"
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    shot = lambda name: page.screenshot(path=os.path.join(SHOTS, f"{stem}-{name}.png"))  # noqa: E731
    from pktlab.sockets.belt import KERNEL_ORDER
    proved = ({h for h, v in doctor_report()["hooks"].items() if v["available"]} &
              set(KERNEL_ORDER) if os.geteuid() == 0 else set())
    try:
        panel, cells = _open_and_run_above_last(page, jupyterlab, stem)
        shot("1-ran")
        assert _errors(panel) == []
        text = panel.inner_text()
        if not proved:
            assert "not run here" in text or "no live belt" in text
        else:
            # the belt's table: a row per hook the doctor proved, in the order they saw it
            run = panel.locator(".jp-OutputArea-output", has_text="in the order the hooks saw it")
            assert run.count() >= 1
            belt_text = run.first.inner_text()
            for h in proved:
                assert h in belt_text, f"the doctor proved {h}, the belt does not show it"
            assert panel.locator(".jp-OutputArea-output img").count() >= 2   # plot and views
            chooser = panel.locator(".pl-belt-chooser").first
            chooser.scroll_into_view_if_needed()
            out = chooser.locator(".pl-belt-run")
            if "recv" in proved:
                assert "recv" in out.inner_text()
                before = out.inner_text()
                box = chooser.locator(".pl-hook-chooser .widget-checkbox", has_text="recv")
                box.locator("input[type=checkbox]").uncheck()
                after = _wait_changed(page, out, before, timeout=60_000)
                assert "recv" not in after and "in the order the hooks saw it" in after, after
            shot("2-chooser")
        assert _errors(panel) == []
        cells.last.locator(".jp-InputPrompt").click()
        _menu(page, "Run", "Run Selected Cell and Do not Advance")
        panel.locator(".jp-OutputArea-output", has_text="nothing left behind").wait_for(
            timeout=60_000)
        shot("3-closed")
        assert lesson_namespaces() == []
    except Exception:
        shot("failed")
        raise
    finally:
        page.close()


def test_lesson_09_in_jupyterlab(jupyterlab, browser):
    """Lesson 09 in JupyterLab: every cell above the last runs without an error, the four
    firewalls' table is shown (live where the doctor proved TC), the last cell leaves nothing."""
    stem = "09-socket-table"
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    shot = lambda name: page.screenshot(path=os.path.join(SHOTS, f"{stem}-{name}.png"))  # noqa: E731
    try:
        panel, cells = _open_and_run_above_last(page, jupyterlab, stem)
        shot("1-ran")
        assert _errors(panel) == []
        if os.geteuid() == 0 and doctor_report()["hooks"]["tc-ingress"]["available"]:
            table = panel.locator(".jp-OutputArea-output", has_text="insert_failed")
            assert table.count() >= 1
            for firewall in ("hash", "lru_hash", "sk_lookup"):
                assert firewall in table.first.inner_text()
        cells.last.locator(".jp-InputPrompt").click()
        _menu(page, "Run", "Run Selected Cell and Do not Advance")
        panel.locator(".jp-OutputArea-output", has_text="nothing left behind").wait_for(
            timeout=60_000)
        shot("2-closed")
        assert _errors(panel) == [] and lesson_namespaces() == []
    except Exception:
        shot("failed")
        raise
    finally:
        page.close()


def test_bpf_cells_in_jupyterlab(jupyterlab, browser):
    """%%bpf in JupyterLab (issue 15): a learner's program in a cell shows "loaded" and its map
    as a live table that fills after a test run; a refused one shows the verifier's words at
    the cell's own line; the last cell leaves nothing."""
    if not _xdp_proved_here():
        pytest.skip("pktlab doctor: XDP is not available here (a %%bpf cell says why instead)")
    data = os.path.join(REPO, "tests", "data", "program")
    with open(os.path.join(data, "drop_tcp.c")) as f:
        good = f.read()
    with open(os.path.join(data, "bounds.c")) as f:
        bad = f.read()
    wrong = 1 + next(n for n, ln in enumerate(bad.split("\n"), 1) if "the mistake" in ln)
    stem = "bpf-cells"
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                  "language": "python"}}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in (
        "from pktlab import lessons as pl", "%%bpf xdp\n" + good, "drop_tcp.maps",
        'drop_tcp.test_run("mixed.pcap")', "%%bpf xdp\n" + bad, "pl.close_all()")]
    nbformat.write(nb, str(jupyterlab["root"] / f"{stem}.ipynb"))
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    shot = lambda name: page.screenshot(path=os.path.join(SHOTS, f"{stem}-{name}.png"))  # noqa: E731
    try:
        panel, cells = _open_and_run_above_last(page, jupyterlab, stem, ncells=len(nb.cells))
        shot("1-ran")
        assert _errors(panel) == []
        loaded = panel.locator(".jp-OutputArea-output", has_text="the verifier accepted it")
        assert loaded.count() == 1 and "drop_tcp as XDP" in loaded.inner_text()
        tables = panel.locator(".pl-maps")
        assert tables.count() == 1 and "dropped" in tables.inner_text()
        # the live table: the test run's drops appear without running the cell again
        page.wait_for_function("el => /\\b0\\s+[1-9]\\d*/.test(el.innerText)",
                               arg=tables.element_handle(), timeout=15_000)
        loaded.scroll_into_view_if_needed()
        shot("2-loaded")
        refused = panel.locator(".jp-OutputArea-output", has_text="refused by the verifier")
        assert refused.count() == 1
        text = refused.inner_text()
        assert re.search(rf"at line\s+{wrong}\s+of the cell", text), text
        assert "if (eth->h_proto == htons(ETH_P_ARP))" in text
        assert "invalid access to packet" in text
        refused.scroll_into_view_if_needed()
        shot("3-refused")
        cells.last.locator(".jp-InputPrompt").click()
        _menu(page, "Run", "Run Selected Cell and Do not Advance")
        panel.locator(".jp-OutputArea-output", has_text="nothing left behind").wait_for(
            timeout=60_000)
        assert _errors(panel) == [] and lesson_namespaces() == []
    except Exception:
        shot("failed")
        raise
    finally:
        page.close()
