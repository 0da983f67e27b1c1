"""A learner's own program in a notebook (issue 15, item 1): the %%bpf cell magic, run in a real
IPython InteractiveShell, and pl.program(). Real loads through the learner loader, real test
runs, real labs: the verdict shown (loaded with its maps; refused with the explainer at the
cell's own line; a compiler error at its line), test-run return codes equal to what the walker
predicts, attach and replay in a learner's open lab with the verdicts counted live and the maps
right, live tables that grow while a replay runs, and nothing left behind (no attachment on the
lab's interface, no program or map in the kernel, no fd). The lesson's own %%bpf demo loads too.
"""

import collections
import os
import re
import subprocess
import sys
import time

import pytest

from conftest import REPO, require_hook, require_root

DATA = os.path.join(REPO, "tests", "data", "program")
MIXED = "mixed.pcap"


def c_text(name):
    with open(os.path.join(DATA, name)) as f:
        return f.read()


def mistake_line(text):
    hits = [n for n, line in enumerate(text.split("\n"), 1) if "the mistake" in line]
    assert len(hits) == 1
    return hits[0]


def need_loader():
    require_hook("xdp")
    from pktlab.kernel import loader
    ok, why = loader.available()
    if not ok:
        pytest.fail(f"the learner loader cannot start here: {why}", pytrace=False)
    return loader


@pytest.fixture(scope="module")
def shell():
    """IPython's own shell, %%bpf registered in it as `from pktlab import lessons as pl` does."""
    from IPython.core.interactiveshell import InteractiveShell
    sh = InteractiveShell.instance()
    r = sh.run_cell("from pktlab import lessons as pl")
    assert r.success
    from pktlab.lessons import magic
    assert magic.register(sh)          # (if lessons was imported before the shell existed)
    yield sh
    sh.run_cell("pl.close_all()")


def run_magic(sh, line, text):
    r = sh.run_cell(f"%%bpf {line}\n{text}")
    return r


def is_tcp(rec):
    """What drop_tcp.c decides, from the walker's record: untagged IPv4 with protocol 6, or
    IPv6 whose first next header is 6."""
    return (rec.vlan_depth == 0 and rec.l4_proto == 6 and
            (rec.ip_version == 4 or (rec.ip_version == 6 and rec.ipv6_ext_count == 0)))


def untag(frame):
    """The frame without its outer VLAN tag (4 bytes after the MACs)."""
    return frame[:12] + frame[16:]


def walker_codes(frames, drop, keep):
    from pktlab.packet import walker
    return [drop if is_tcp(walker.walk_record(f)) else keep for f in frames]


def gone(prog):
    """What the kernel still holds of a closed Program's program and maps ([] when nothing)."""
    from pktlab.replay import learner
    return learner.gone(prog._ids[0], prog._ids[1])


def remember_ids(prog):
    prog._ids = (prog._prog.id, {n: m.info.id for n, m in prog._prog.maps.items()})


def xdp_on(ns, ifname):
    out = subprocess.run(["ip", "-n", ns, "-d", "link", "show", ifname], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"prog/xdp id \d+ name (\S+)", out)
    return m.group(1) if m else None


def html_text(obj):
    import html
    text = html.unescape(re.sub(r"<[^>]+>", " ", obj._repr_html_().split("</style>")[-1]))
    return " ".join(text.split())


# the magic ------------------------------------------------------------------------------------
def test_importing_lessons_registers_the_magic_in_ipython_and_nothing_outside_it():
    code = ("from IPython.core.interactiveshell import InteractiveShell\n"
            "sh = InteractiveShell.instance()\n"
            "sh.run_cell('from pktlab import lessons as pl')\n"
            "print('bpf' in sh.magics_manager.magics['cell'])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0 and r.stdout.split()[-1] == "True", (r.stdout, r.stderr)
    code = ("import sys\nfrom pktlab import lessons as pl\nfrom pktlab.lessons import magic\n"
            "print(magic.register(), 'IPython' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0 and r.stdout.split() == ["False", "False"], (r.stdout, r.stderr)


def test_the_magic_loads_a_good_program_and_test_runs_it_as_the_walker_predicts(shell):
    loader = need_loader()
    from pktlab import lessons as pl
    r = run_magic(shell, "xdp", c_text("drop_tcp.c"))
    assert r.success, r.error_in_exec
    prog = shell.user_ns["drop_tcp"]
    assert prog is r.result is shell.user_ns["_"] is pl.last_program()
    assert prog.ok and prog.hook == "xdp" and prog.func == "drop_tcp"
    assert prog.source == c_text("drop_tcp.c") and prog.attempt.stage == "loaded"
    assert prog._prog.created_by_uid == loader.account()[0] != 0     # by the loader's account
    shown = html_text(prog)
    assert "loaded" in shown and "drop_tcp as XDP" in shown and "dropped" in shown
    assert "ARRAY" in shown and "pktlab_verdicts" not in shown        # the learner's maps only
    remember_ids(prog)
    frames = pl.frames(MIXED)
    runs = prog.test_run(MIXED)
    assert len(runs) == len(frames) > 100
    want = walker_codes(frames, "XDP_DROP", "XDP_PASS")
    assert runs.codes == want
    drops = want.count("XDP_DROP")
    assert 10 < drops < len(frames)
    assert runs.counts == {"XDP_DROP": drops, "XDP_PASS": len(frames) - drops}
    assert f"XDP_DROP {drops}" in html_text(runs)
    assert prog.dump()[0] == {"dropped": {"0": drops}}
    # frames as a list, capped
    few = prog.test_run(frames[:5])
    assert few.codes == want[:5]
    assert len(prog.test_run(frames, limit=7)) == 7
    prog.close()
    assert prog.closed and gone(prog) == []
    assert not prog.test_run(MIXED)                       # closed: says so, falsy


def test_pl_program_at_tc_gives_tc_return_codes():
    need_loader()
    from pktlab import lessons as pl
    prog = pl.program(c_text("drop_tcp_tc.c"), hook="tc-ingress")
    assert prog.ok and prog.func == "drop_tcp_tc" and prog.prog_type == "SCHED_CLS"
    remember_ids(prog)
    frames = pl.frames(MIXED)
    runs = prog.test_run(frames)
    want = walker_codes(frames, "TC_ACT_SHOT", "TC_ACT_OK")
    ran = [(got, w) for got, w in zip(runs.codes, want) if got is not None]
    assert len(ran) > 100 and all(got == w for got, w in ran)
    assert runs.counts["TC_ACT_SHOT"] > 10
    with prog:
        pass
    assert gone(prog) == []


def test_a_refused_program_shows_the_explainer_at_the_cells_line_and_leaves_nothing(shell):
    need_loader()
    from pktlab.lessons import live
    text = c_text("bounds.c")
    run_magic(shell, "xdp", text)              # once: whatever a first load opens for good
    fds = len(os.listdir("/proc/self/fd"))
    r = run_magic(shell, "xdp", text)
    assert r.success
    prog = shell.user_ns["no_check"]
    assert not prog.ok and prog.report.stage == "load" and prog._prog is None
    err = prog.report.errors[0]
    assert err["line"] == mistake_line(text) + 1            # the %%bpf line is the cell's 1st
    assert err["kind"] == "packet out of bounds"
    shown = html_text(prog)
    assert "refused by the verifier" in shown
    assert f"at line {err['line']} of the cell" in shown
    assert "if (eth->h_proto == htons(ETH_P_ARP))" in shown
    assert "invalid access to packet" in shown                # the key line, first
    assert shown.index("invalid access to packet") < shown.index("packet out of bounds")
    assert "<details><summary>the full log" in prog._repr_html_()
    assert len(os.listdir("/proc/self/fd")) == fds           # no fd kept
    assert prog.closed and prog not in live._open_widgets
    assert not prog.test_run(MIXED) and not prog.maps and not prog.replay(MIXED)
    # the same text from Python: the string's own lines
    from pktlab import lessons as pl
    p2 = pl.program(text, hook="xdp")
    assert p2.report.errors[0]["line"] == mistake_line(text)


def test_a_program_that_does_not_compile_shows_the_compilers_words_at_its_line(shell):
    need_loader()
    text = c_text("broken.c")
    r = run_magic(shell, "xdp broken", text)
    prog = shell.user_ns["broken"]
    assert r.success and not prog.ok and prog.report.stage == "compile"
    err = prog.report.errors[0]
    # clang names the line after the missing semicolon's: the learner's next line, the cell's
    assert err["line"] in (mistake_line(text) + 1, mistake_line(text) + 2)
    assert "expected ';'" in err["message"]
    shown = html_text(prog)
    assert "does not compile" in shown and "expected ';'" in shown
    assert f"at line {err['line']} of the cell" in shown


def test_a_bad_hook_or_line_is_a_clear_error(shell):
    from IPython.core.error import UsageError
    from pktlab import lessons as pl
    for line, says in (("kprobe", "choose xdp, tc-ingress, tc-egress"),
                       ("", "usage: %%bpf HOOK [FUNC]"),
                       ("xdp two words", "usage: %%bpf HOOK [FUNC]"),
                       ("xdp 9lives", "the name of a C function")):
        r = shell.run_cell(f"%%bpf {line}\nint x;\n")
        assert isinstance(r.error_in_exec, UsageError), (line, r.error_in_exec)
        assert says in str(r.error_in_exec)
    with pytest.raises(ValueError, match="attaches at xdp, tc-ingress, tc-egress"):
        pl.program("int x;", hook="kprobe")


def test_a_file_with_two_programs_asks_which(shell):
    need_loader()
    text = c_text("drop_tcp.c") + "\n" + c_text("broken.c").replace(
        "int verdict = XDP_PASS      // the mistake", "int verdict = XDP_PASS;")
    r = run_magic(shell, "xdp", text)
    assert not r.result.ok and "name one: `%%bpf HOOK NAME`" in r.result.why
    r = run_magic(shell, "xdp broken", text)
    assert r.result.ok and r.result.func == "broken"
    assert r.result.test_run([bytes(60)]).codes == ["XDP_PASS"]
    r.result.close()


# in a lab -------------------------------------------------------------------------------------
def test_attach_and_replay_in_a_learners_lab_count_what_the_walker_predicts():
    need_loader()
    from pktlab import lessons as pl
    from pktlab.lessons.html import NotHere
    lab = pl.open_lab(["xdp"])
    try:
        assert lab, lab.why()
        ns, ifname = lab.lab.ns_dut, lab.lab.if_dut
        assert xdp_on(ns, ifname) == "pktlab_xdp"              # the lab's own hook
        prog = pl.program(c_text("drop_tcp.c"), hook="xdp")
        remember_ids(prog)
        assert prog.attach(lab) is prog and prog.attached == lab.name
        assert xdp_on(ns, ifname) == "pktlab_run"              # ours, the lab's stepped aside
        assert not lab and "drop_tcp is attached" in lab.why()
        assert isinstance(lab.replay(MIXED), NotHere)          # says why, does not fail
        res = prog.replay(MIXED)
        frames = pl.frames(MIXED)
        sent = [f for i, f in enumerate(frames) if str(i + 1) not in res.doc["skipped"]]
        want = collections.Counter(walker_codes(sent, "XDP_DROP", "XDP_PASS"))
        assert res.doc["sent"] == len(sent) > 100 and res.doc["missing"] == 0
        assert res.verdicts == dict(want)
        assert res.maps == {"dropped": {"0": want["XDP_DROP"]}}
        assert prog.maps["dropped"] == {"0": want["XDP_DROP"]}   # the live table's contents
        assert "XDP_DROP" in html_text(res) and lab.name in html_text(res)
        # a second replay counts only its own frames (the map keeps counting)
        again = prog.replay(MIXED)
        assert again.verdicts == dict(want)
        assert again.maps == {"dropped": {"0": 2 * want["XDP_DROP"]}}
        prog.detach()
        assert xdp_on(ns, ifname) == "pktlab_xdp" and lab      # the lab's hook is back
        # replay with lab=: attached for the replay only
        res = prog.replay("dns.pcap", lab=lab)
        assert sum(res.verdicts.values()) == res.doc["sent"] > 0
        assert prog.attached is None and xdp_on(ns, ifname) == "pktlab_xdp"
        prog.attach(lab)
        prog.close()
        assert xdp_on(ns, ifname) == "pktlab_xdp" and lab
        assert gone(prog) == []
        # closing the lab closes the program attached there
        other = pl.program(c_text("drop_tcp.c"), hook="xdp")
        remember_ids(other)
        other.attach(lab)
        lab.close()
        assert other.closed and gone(other) == []
    finally:
        shown = repr(pl.close_all())
    assert "nothing left behind" in shown, shown
    assert not [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                          text=True).stdout.split() if n.startswith(lab.name)]


def test_replay_without_a_lab_uses_a_throwaway_one_and_leaves_nothing():
    need_loader()
    from pktlab import lessons as pl
    from pktlab.lab import leftovers
    prog = pl.program(c_text("drop_tcp.c"), hook="xdp")
    try:
        res = prog.replay("dns.pcap")
        assert sum(res.verdicts.values()) == res.doc["sent"] > 0
        assert leftovers(res.doc["lab"]) == [] and prog.attached is None
    finally:
        prog.close()


def test_the_live_tables_grow_while_a_replay_runs_and_stop_with_the_program():
    need_loader()
    from pktlab import lessons as pl
    lab = pl.open_lab(["xdp"])
    try:
        prog = pl.program(c_text("drop_tcp.c"), hook="xdp")
        tables = prog.maps
        assert tables is prog.maps and tables.running
        assert tables.data == {"dropped": {}}
        seen = []
        tables.boxes["dropped"].observe(lambda ch: seen.append(ch["new"]), names="value")
        # the background thread: a test run's counts appear with nobody asking
        prog.test_run(pl.frames(MIXED)[:40])
        n = prog.dump()[0]["dropped"]["0"]
        deadline = time.monotonic() + 10
        while tables.data["dropped"] != {"0": n} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tables.data["dropped"] == {"0": n}, "the background refresh never came"
        seen.clear()
        res = prog.replay(MIXED, lab=lab)
        counts = [int(m.group(1)) for v in seen
                  for m in [re.search(r"<td>0</td><td>(\d+)</td>", v)] if m]
        final = n + res.verdicts["XDP_DROP"]
        assert counts and counts[-1] == final
        assert len(set(counts)) >= 3, counts           # values in between, during the replay
        assert counts == sorted(counts)                # growing
        assert tables["dropped"] == {"0": final}
        prog.close()
        assert not tables.running
        assert "is closed" in tables.status.value and tables["dropped"] == {"0": final}
    finally:
        pl.close_all()


# what the lessons ship ------------------------------------------------------------------------
def shipped_bpf_cells():
    """Every %%bpf cell of every lesson notebook: (notebook, magic line, C text)."""
    import nbformat
    out = []
    for f in sorted(os.listdir(os.path.join(REPO, "notebooks"))):
        if not f.endswith(".ipynb"):
            continue
        nb = nbformat.read(os.path.join(REPO, "notebooks", f), as_version=4)
        for c in nb.cells:
            if c.cell_type == "code" and c.source.startswith("%%bpf "):
                line, _, text = c.source.partition("\n")
                out.append((f, line[len("%%bpf "):], text))
    return out


def test_the_lessons_ship_a_bpf_example():
    assert any(nb.startswith("02-") for nb, _l, _t in shipped_bpf_cells())


@pytest.mark.parametrize("nb,line,text", shipped_bpf_cells(),
                         ids=[f"{nb}:{line}" for nb, line, _t in shipped_bpf_cells()])
def test_every_shipped_bpf_cell_loads_through_the_learner_loader(shell, nb, line, text):
    loader = need_loader()
    r = run_magic(shell, line, text)
    prog = r.result
    assert prog.ok, prog._repr_html_()[-2000:]
    assert prog._prog.created_by_uid == loader.account()[0]
    if prog.func == "count_dest":             # lesson 02's: broadcasts dropped, counted by kind
        from pktlab import lessons as pl
        frames = pl.frames(MIXED)
        want = ["XDP_DROP" if f[:6] == b"\xff" * 6 else "XDP_PASS" for f in frames]
        assert prog.test_run(frames).codes == want
        kinds = collections.Counter("2" if f[:6] == b"\xff" * 6 else "1" if f[0] & 1 else "0"
                                    for f in frames)
        assert prog.dump()[0]["by_dest"] == dict(kinds)
    prog.close()


def test_not_root_or_no_hook_says_why_and_never_fails(monkeypatch):
    require_root()
    from pktlab import lessons as pl
    from pktlab.lessons import here
    here.doctor()
    monkeypatch.setitem(here._doctor["hooks"], "xdp",
                        {"available": False, "via": None, "why": "pretending for a test"})
    prog = pl.program(c_text("drop_tcp.c"), hook="xdp")
    assert not prog.ok and prog.why == "pretending for a test" and prog.func == "drop_tcp"
    assert "not run here" in html_text(prog) and not prog.test_run(MIXED)
    assert not prog.maps and not prog.attach(None) and not prog.replay(MIXED)


@pytest.mark.parametrize("hook", ["tc-egress", "tc-ingress"])
def test_replay_at_tc_counts_shots_and_oks(hook):
    """At TC egress the frames are as sent (the walker's prediction holds for every one); at
    TC ingress the stack has taken the outer VLAN tag off first (skb_vlan_untag): a frame with
    one tag is judged by what follows it, one with two by its inner tag (passed)."""
    need_loader()
    from pktlab import lessons as pl
    from pktlab.packet import walker
    prog = pl.program(c_text("drop_tcp_tc.c"), hook=hook)
    try:
        res = prog.replay(MIXED)
        frames = pl.frames(MIXED)
        sent = [f for i, f in enumerate(frames) if str(i + 1) not in res.doc["skipped"]]
        want = collections.Counter(walker_codes(sent, "TC_ACT_SHOT", "TC_ACT_OK"))
        if hook == "tc-ingress":
            tagged = [f for f in sent if walker.walk_record(f).vlan_depth == 1 and
                      is_tcp(walker.walk_record(untag(f)))]
            assert tagged
            want.update({"TC_ACT_SHOT": len(tagged), "TC_ACT_OK": -len(tagged)})
        assert res.verdicts == dict(want) and want["TC_ACT_SHOT"] > 10
        assert sum(res.verdicts.values()) == res.doc["sent"] and res.doc["missing"] == 0
        assert prog.attached is None
    finally:
        prog.close()
