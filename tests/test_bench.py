"""pktlab bench: real kernel tests (programs loaded, labs made, traffic sent).

Timing is measured, never asserted (STYLE.md): the tests check structure, that every ratio is
computed from the same run's numbers, that rates are positive, and that nothing is left behind,
also after Ctrl-C.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO, require_hook, require_root

pytestmark = pytest.mark.kernel

PY = sys.executable


def _netns():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _test_labs(names):
    """Labs with the prefix only these tests use (plht). The bench's default prefixes (plhb
    live, plhm micro) may also belong to a notebook running the bench at the same time."""
    return {n for n in names if re.match(r"^plht[0-9a-f]{6}-(src|dut)$", n)}


def _labs_of(pid):
    """Names of the labs process `pid` owns (its state files), oldest first. Other engineers'
    labs may come and go meanwhile; only the owner's pid tells which are the bench's."""
    from pktlab.lab import STATE_DIR
    found = []
    for f in sorted(os.listdir(STATE_DIR)) if os.path.isdir(STATE_DIR) else []:
        try:
            with open(os.path.join(STATE_DIR, f)) as fh:
                st = json.load(fh)
        except (OSError, ValueError):
            continue
        if st.get("owner_pid") == pid:
            found.append((st.get("created", 0), st["name"]))
    return [n for _, n in sorted(found)]


def _nft_tables_left(labs):
    """The bench's nft table in the host namespace or in any namespace left of `labs`."""
    found = {}
    found["<host>"] = subprocess.run(["nft", "list", "tables"], capture_output=True,
                                     text=True).stdout
    for ns in _netns():
        if any(ns.startswith(lab + "-") for lab in labs):
            found[ns] = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "tables"],
                                       capture_output=True, text=True).stdout
    return {ns: t for ns, t in found.items() if "pktlab_bench" in t}


def _our_processes(lab=None):
    """The bench's reader and trafgen processes (of one lab, or of any bench lab)."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout
    mark = lab or "plh"
    return [ln for ln in out.splitlines()
            if ("_socket_reader_main" in ln or ln.split(None, 1)[-1].startswith("trafgen "))
            and mark in ln]


@pytest.fixture(scope="module")
def small_results():
    """One small micro + live run shared by the structure and plot tests."""
    require_hook("xdp")
    require_hook("tc-ingress")
    from pktlab.bench.live import live
    from pktlab.bench.micro import bundled_frames, micro
    from pktlab.bench.report import explain
    from pktlab.bench.suite import _machine
    frames, _ = bundled_frames(limit=40)
    before = _test_labs(_netns())
    res = {"machine": _machine(), "mode": "test"}
    res["micro"] = micro(rounds=3, repeat=300, frames=frames)
    res["live"] = live(points=["xdp_drop", "tc_drop"], sizes=[64, 512], duration=0.4,
                       slices=2, warmup=0.1, compare=(), prefix="plht")
    res["elapsed_s"] = 0.0
    res["explanation"] = explain(res)
    assert _test_labs(_netns()) - before == set(), "the bench left a lab behind"
    return res


# --- micro --------------------------------------------------------------------------------------
def test_micro_every_program_against_its_empty_program(small_results):
    from pktlab.bench.spec import MICRO_LIMITS, MICRO_PROGRAMS
    mi = small_results["micro"]
    assert mi["_meta"]["frames"] == 40
    bases = {}
    for name, (_, no_record, ptype, precise_ts) in MICRO_PROGRAMS.items():
        m = mi[name]
        assert not m.get("error"), f"{name}: {m.get('error')}"
        assert m["ns_per_pkt"] > 0 and m["baseline_ns_per_pkt"] > 0
        # the ratio is computed from this run's two numbers, nothing else
        assert m["ratio"] == m["ns_per_pkt"] / m["baseline_ns_per_pkt"]
        assert m["added_ns_per_pkt"] == m["ns_per_pkt"] - m["baseline_ns_per_pkt"]
        for key in ("spread", "baseline_spread", "ratio_spread"):
            sp = m[key]
            assert sp["min"] <= sp["median"] <= sp["max"]
        assert m["spread"]["median"] == m["ns_per_pkt"]
        assert m["baseline_spread"]["median"] == m["baseline_ns_per_pkt"]
        assert m["rounds"] == 3 and m["repeat"] == 300
        assert m["runs"] == 3 * 300 * 40
        # one empty program per type, measured once per round: programs of a type share it
        bases.setdefault(ptype, m["baseline_ns_per_pkt"])
        assert m["baseline_ns_per_pkt"] == bases[ptype]
        if name in MICRO_LIMITS:
            assert m["within_limit"] == (m["ratio"] <= MICRO_LIMITS[name])
        if name in ("xdp", "tc", "xdp_ns_ts", "tc_ns_ts"):
            # every run wrote its record, none was lost (the ring was drained between calls)
            assert m["lost"] == 0
            assert m["records_read"] == m["runs"]
            assert m["timestamp"].startswith("bpf_ktime" if precise_ts else "jiffies")


def test_micro_refuses_a_repeat_the_ring_cannot_hold():
    require_root()
    from pktlab.bench.micro import micro
    with pytest.raises(ValueError, match="record ring"):
        micro(programs=["xdp"], repeat=10 ** 6, frames=[b"\x00" * 60])


# --- live ---------------------------------------------------------------------------------------
def test_live_points_have_positive_rates_from_this_run(small_results):
    lv = small_results["live"]
    assert lv["generator"] in ("xdp-live-frames", "trafgen")
    assert lv["errors"] == {}
    for size in ("64", "512"):
        row = lv["by_size"][size]
        gen = row["generator"]["pps"]
        assert gen > 0
        for p in ("xdp_drop", "tc_drop"):
            m = row[p]
            assert m["pps"] > 0 and m["tx_pps"] > 0
            assert m["ratio"] == m["pps"] / gen
            assert 0 < m["delivered"] <= 1.05
            sp = m["pps_spread"]
            assert sp["min"] <= m["pps"] <= sp["max"]
    # the contract keys: the smallest size's figures at the top
    assert lv["generator_pps"] == lv["by_size"]["64"]["generator"]["pps"]
    assert lv["xdp_drop_pps"] == lv["by_size"]["64"]["xdp_drop"]["pps"]
    assert lv["tc_drop_pps"] == lv["by_size"]["64"]["tc_drop"]["pps"]


class _CountingHookSet:
    """Wraps pktlab.kernel.hooks.HookSet: the records each hook set wrote (its per-status `seen`
    counts: a packet whose record found no slot is not parsed, only counted in `lost`) and
    refused, read as it closes (after the bench's last drain)."""

    def __init__(self, monkeypatch):
        from pktlab.kernel import hooks
        self.closed = []
        real, closed = hooks.HookSet, self.closed

        class HookSet(real):
            def close(self):
                if not self.closed:
                    closed.append({"written": sum(sum(s.values()) for s in self.seen().values()),
                                   "lost": sum(self.lost().values())})
                super().close()
        monkeypatch.setattr(hooks, "HookSet", HookSet)


def test_live_socket_nft_and_parse_points(lab, monkeypatch):
    """The other points, each once, on a small frame: positive rates, nothing left in dut;
    at the parse points every record a hook wrote was read, and every one it refused is
    counted lost."""
    require_hook("xdp")
    require_hook("tc-ingress")
    from pktlab.bench.generators import _choose_generator, udp_frame
    from pktlab.bench.live import _cpus, _Live
    from pktlab.bench.measure import LinkStats, _set_gro
    counted = _CountingHookSet(monkeypatch)
    stats = LinkStats(lab)
    try:
        _set_gro(lab, True)
        gen, _ = _choose_generator(lab, stats, _cpus()[0])
        runner = _Live(lab, stats, gen, *_cpus(), duration=0.3, warmup=0.1,
                       slices=1)
        frame = udp_frame(128, lab.mac("dut"), lab.mac("src"), lab.src_ip4, lab.dut_ip4)
        assert len(frame) == 128
        try:
            for p in ("nft_drop", "socket_drop", "xdp_parse", "tc_ingress_parse"):
                m = runner.point(p, frame)
                assert m["pps"] > 0, p
                if p.endswith("_parse"):
                    # records flowed; a starved drain thread may lose some: counted, not hidden
                    hs = counted.closed[-1]
                    assert m["records_read"] > 0, m
                    assert (m["records_read"], m["records_lost"]) == \
                        (hs["written"], hs["lost"]), (p, m, hs)
        finally:
            runner.close()
            gen.close()
    finally:
        stats.close()
    tables = subprocess.run(["ip", "netns", "exec", lab.ns_dut, "nft", "list", "tables"],
                            capture_output=True, text=True).stdout
    assert "pktlab_bench" not in tables
    assert _our_processes(lab.name) == []


def test_udp_frame_sizes_are_wire_lengths_without_fcs():
    from pktlab.bench.generators import udp_frame
    from pktlab.bench.spec import SIZES
    for size in SIZES:
        f = udp_frame(size, "02:00:00:00:00:02", "02:00:00:00:00:01", "10.200.0.1",
                      "10.200.0.2")
        assert len(f) == size
        assert f[12:14] == b"\x08\x00" and f[23] == 17      # IPv4, UDP
        assert int.from_bytes(f[16:18], "big") == size - 14  # IP total length


# --- the chart, the text, the panel -------------------------------------------------------------
def test_plot_returns_a_figure_and_writes_a_png(small_results, tmp_path):
    from matplotlib.figure import Figure

    from pktlab.bench.chart import plot
    fig = plot(small_results)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2           # micro costs, live ladder
    path = tmp_path / "bench.png"
    fig.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # on a given axis: that axis's figure, live chart only
    fig2 = Figure()
    ax = fig2.subplots()
    assert plot(small_results, ax=ax) is fig2
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["64 B", "512 B"]


def test_text_explains_from_the_figures(small_results):
    from pktlab.bench.report import format_text
    text = format_text(small_results)
    for words in ("generic", "native", "not a nic", "ratio", "xdp_drop", "tc_drop",
                  "bpf_prog_test_run"):
        assert words in text.lower()
    m = small_results["micro"]["xdp"]
    assert f"{m['ns_per_pkt']:.1f}" in text


def test_panel_runs_a_subset_and_redraws(small_results):
    pytest.importorskip("ipywidgets")
    from pktlab.bench.panel import BenchPanel
    panel = BenchPanel(points=("xdp_drop",), sizes=(64,), micro_on=False)
    assert panel.selection() == (["xdp_drop"], [64])
    panel.results = small_results
    panel.redraw()
    assert panel.figure is not None
    assert panel.out.outputs and "image/png" in panel.out.outputs[0]["data"]
    assert "pktlab bench" in panel.details.value and "run 0" in panel.summary.value


# --- the command ---------------------------------------------------------------------------------
def _bench_cmd(*args, **kw):
    return subprocess.run([PY, "-m", "pktlab.cli", "bench", *args], cwd=REPO,
                          capture_output=True, text=True, **kw)


def test_cli_bad_only_is_bad_input():
    require_root()
    r = _bench_cmd("--only", "no-such-point", timeout=60)
    assert r.returncode == 2
    assert "no-such-point" in r.stderr and "xdp_drop" in r.stderr


#: the default run's settings made as short as small_results's (which the micro and live tests
#: above show measure): the contract is the JSON document's keys, the plot and the exit status
#: over the whole default run, not a measurement (at full length the run takes minutes)
SHORT = {"rounds": 3, "repeat": 300, "duration": 0.4, "slices": 2, "warmup": 0.1}


def test_cli_json_has_the_contract_keys_and_writes_the_plot(tmp_path, capfd, monkeypatch):
    """`pktlab bench --json --plot FILE`, the default run end to end: every micro program,
    every live point at every size, the generators compared; with SHORT settings. Run through
    the CLI's main() in this process, so the programs the tests above compiled are reused (the
    console script itself starts, and cleans up after Ctrl-C, in the tests below)."""
    require_hook("xdp")
    require_hook("tc-ingress")
    from pktlab.bench import spec
    from pktlab.cli import main
    monkeypatch.setitem(spec.DEFAULTS, "short", dict(spec.DEFAULTS["short"], **SHORT))
    png = tmp_path / "bench.png"
    capfd.readouterr()
    rc, labs = _run_watching_labs(lambda: main(["bench", "--json", "--plot", str(png)]))
    out, err = capfd.readouterr()
    assert rc in (0, 1), err
    assert labs, "the bench made no lab?"
    doc = json.loads(out)                    # stdout is one JSON document and nothing else
    assert doc["mode"] == "default" and doc["live"]["duration_s"] == SHORT["duration"]
    assert set(doc["micro"]) - {"_meta"} == set(spec.MICRO_PROGRAMS)
    for prog in ("xdp", "xdp_no_record", "tc", "tc_no_record"):
        m = doc["micro"][prog]
        assert "ns_per_pkt" in m and "baseline_ns_per_pkt" in m
    live = doc["live"]
    assert live["generator_pps"] > 0
    for point in ("xdp_drop", "tc_drop", "nft_drop", "socket_drop"):
        assert live[f"{point}_pps"] > 0
    assert set(live["by_size"]) == {"64", "512", "1500"}
    for size, row in live["by_size"].items():       # every point of the default run, each size
        assert set(spec.POINTS) <= set(row), (size, set(spec.POINTS) - set(row))
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert rc == _exit_the_contract_wants(doc), (rc, err[-2000:])
    from pktlab.lab import leftovers
    for lab in labs:
        assert leftovers(lab) == [], lab
    assert _nft_tables_left(labs) == {}


def _run_watching_labs(call):
    """call() (a bench run in this process), noting every lab this process owns meanwhile;
    returns (what call() returned, the labs)."""
    labs, done = set(), threading.Event()

    def watch():
        while not done.is_set():
            labs.update(_labs_of(os.getpid()))
            done.wait(0.1)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        return call(), labs
    finally:
        done.set()
        t.join()


def _exit_the_contract_wants(doc):
    """DESIGN.md's exit status, read from the JSON alone (never from bench.failures(), the
    code under test): 1 when the run worked but a measurement asked for did not happen (an
    error in place of a figure, micro or live) or records were lost; else 0."""
    bad = [n for n, m in doc["micro"].items() if n != "_meta" and (m.get("error") or m.get("lost"))]
    bad += list(doc["live"].get("errors", {}))
    for size, row in doc["live"].get("by_size", {}).items():
        bad += [f"{size} {k}" for k, m in row.items() if isinstance(m, dict) and "error" in m]
    return 1 if bad else 0


# --- Ctrl-C ---------------------------------------------------------------------------------------
def _attached_in(lab):
    """XDP programs and TC filters on the lab's two veth ends, read inside the lab's namespaces,
    where the bench attaches them (the host namespace never has any): {where: what}."""
    found, names = {}, _netns()
    for side, ifname in (("src", f"{lab}s"), ("dut", f"{lab}d")):
        ns = f"{lab}-{side}"
        if ns not in names:
            continue
        link = subprocess.run(["ip", "-n", ns, "-d", "link", "show", "dev", ifname],
                              capture_output=True, text=True).stdout
        m = re.search(r"prog/xdp id \d+ name \S+", link)
        if m:
            found[f"{ns}/{ifname} xdp"] = m.group(0)
        for d in ("ingress", "egress"):
            f = subprocess.run(["tc", "-n", ns, "filter", "show", "dev", ifname, d],
                               capture_output=True, text=True).stdout
            m = re.search(r"bpf .* name \S+", f)
            if m:
                found[f"{ns}/{ifname} tc {d}"] = m.group(0)
    return found


def _wait_for(cond, timeout=120, proc=None):
    """Poll cond() until it is true or the timeout; also give up once `proc` has ended (it can
    no longer get there: a bench that failed early is said now, not after the timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ended = proc is not None and proc.poll() is not None
        got = cond()
        if got or ended:
            return got
        time.sleep(0.05)
    return None


@pytest.mark.parametrize("only,moment", [
    ("micro", "lab"),                      # the labs that pin XDP programs for test runs
    ("micro", "xdp"),                      # ... once they pin them
    ("nft_drop", "nft"),                   # the nft table is in place
    ("socket_drop", "reader"),             # the socket reader process is running
    ("tc_egress_parse", "trafgen"),        # trafgen and the TC egress hook are running
])
def test_ctrl_c_leaves_nothing_behind(only, moment):
    require_hook("xdp")
    require_hook("tc-ingress")
    seen = set()
    # SIGINT back to its default in the child, which may inherit it ignored (a background job)
    p = subprocess.Popen([PY, "-m", "pktlab.cli", "bench", "--only", only], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        def ready():
            labs = _labs_of(p.pid)
            seen.update(labs)
            if not labs:
                return None
            lab = labs[-1]
            if moment == "lab":
                return lab
            attached = _attached_in(lab)
            if moment == "xdp":
                return lab if any(k.endswith(" xdp") for k in attached) else None
            if moment == "nft":
                t = subprocess.run(["ip", "netns", "exec", f"{lab}-dut", "nft", "list",
                                    "tables"], capture_output=True, text=True).stdout
                return lab if "pktlab_bench" in t else None
            ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True,
                                text=True).stdout.splitlines()
            if moment == "reader":
                return lab if any("_socket_reader_main" in ln and f"{lab}-dut" in ln
                                  for ln in ps) else None
            if moment == "trafgen":
                return lab if any(ln.startswith("trafgen ") and f"{lab}s" in ln.split() and
                                  "-q" in ln.split() for ln in ps) and \
                    any(k.endswith(" tc egress") for k in attached) else None
        lab = _wait_for(ready, proc=p)
        assert lab, f"the bench never reached {moment}: " + \
            (f"it exited {p.returncode}: {p.stderr.read()}" if p.poll() is not None else "")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:        # the test failed first: let the bench clean up, then kill
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    assert p.returncode == 130, err
    assert "interrupted" in err
    from pktlab.lab import leftovers
    # where the bench attached (the labs' own namespaces), not the host: nothing is left
    assert {name: _attached_in(name) for name in seen if _attached_in(name)} == {}
    for name in seen:
        assert leftovers(name) == [], name
    assert _labs_of(p.pid) == []
    assert _nft_tables_left(seen) == {}
    assert _wait_for(lambda: _our_processes(lab) == [], timeout=5)
