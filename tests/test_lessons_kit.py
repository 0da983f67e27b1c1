"""The lessons as a learner finds them, and the instructor's kit (issue 15, items 5 and 6).

- `pktlab lessons reset`: on real files in a scratch work dir: the lessons asked for back as
  shipped, a dated backup of each replaced copy, nothing else touched, unknown numbers refused
  (exit 2, one line, nothing touched), a second reset changes nothing;
- every checker added for an open question: the right answer passes, a wrong one does not (and
  its feedback does not state the answer), an answer that raises is shown, not raised;
- answers that leaked no longer do (headings, text above an exercise, feedback);
- what a learner saw wrong, as units: the stepper and the replay table never green for frames
  not sent, the conveyor belt's labels never overlap, the bench chart has no rotated or tiny
  text, the bench's summary no jargon, `results` follows the panel, a typed capture path wins,
  re-running an open_lab cell closes the lab it opened before;
- the kit: every lesson has instructor notes, the tracks' times add up, `make lab` copies
  neither the solutions nor the notes and JupyterLab serves nothing else.
"""

import itertools
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import REPO, require_hook, require_root

NB_DIR = os.path.join(REPO, "notebooks")
PKTLAB = [sys.executable, "-m", "pktlab.cli"]
LESSONS = sorted(f for f in os.listdir(NB_DIR) if re.fullmatch(r"\d\d-[a-z0-9-]+\.ipynb", f))


def _text(result):
    """What a checker's result shows, as text (its HTML without tags)."""
    html = result._repr_html_() if hasattr(result, "_repr_html_") else str(result)
    html = re.sub(r"(?s)<style>.*?</style>", "", html)
    import html as h
    return h.unescape(re.sub(r"<[^>]+>", " ", html))


def _namespaces():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return sorted(ln.split()[0] for ln in out.splitlines() if ln.startswith("plnb"))


# --- pktlab lessons reset ---------------------------------------------------------------------

def _snapshot(root):
    """Every file under root (but the backups), with its bytes."""
    out = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x != ".backup"]
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


@pytest.fixture
def workdir(tmp_path):
    """A learner's work dir: every lesson copied, 02 and 05 edited, 04 deleted, files of their
    own, an older backup."""
    w = tmp_path / "work"
    w.mkdir()
    for f in LESSONS:
        shutil.copy(os.path.join(NB_DIR, f), w / f)
    (w / "02-xdp.ipynb").write_text("my 02")
    (w / "05-conveyor-belt.ipynb").write_text("my 05")
    (w / "04-kprobe.ipynb").unlink()
    (w / "notes.txt").write_text("mine")
    (w / "sub").mkdir()
    (w / "sub" / "01-casting-headers.ipynb").write_text("a copy of mine in a folder")
    (w / ".backup" / "2020-01-01T000000").mkdir(parents=True)
    (w / ".backup" / "2020-01-01T000000" / "02-xdp.ipynb").write_text("older")
    return w


def test_reset_puts_only_those_lessons_back_and_keeps_a_dated_backup(workdir):
    from pktlab.lessons.reset import reset
    before = _snapshot(workdir)
    now = time.mktime((2026, 12, 2, 1, 30, 0, 0, 0, -1))
    out = reset(["02", "3", "04"], workdir=str(workdir), now=now)
    assert out.reset == ["02-xdp.ipynb"]
    assert out.unchanged == ["03-tc.ipynb"] and out.restored == ["04-kprobe.ipynb"]
    assert out.backup == str(workdir / ".backup" / "2026-12-02T013000")
    # the learner's copy is in the backup, the shipped lesson in its place
    assert (workdir / ".backup" / "2026-12-02T013000" / "02-xdp.ipynb").read_text() == "my 02"
    assert os.listdir(out.backup) == ["02-xdp.ipynb"]
    for f in ("02-xdp.ipynb", "03-tc.ipynb", "04-kprobe.ipynb"):
        assert (workdir / f).read_bytes() == open(os.path.join(NB_DIR, f), "rb").read()
    # nothing else moved: the other lessons (05 still the learner's), their files, old backups
    after = _snapshot(workdir)
    for rel, data in before.items():
        if rel not in ("02-xdp.ipynb",):
            assert after[rel] == data, rel
    assert set(after) - set(before) == {"04-kprobe.ipynb"}
    assert (workdir / ".backup" / "2020-01-01T000000" / "02-xdp.ipynb").read_text() == "older"
    assert not [f for f in os.listdir(workdir) if f.endswith(".pktlab-reset")]


def test_reset_twice_changes_nothing_the_second_time(workdir):
    from pktlab.lessons.reset import reset
    reset(["02"], workdir=str(workdir))
    snap, backups = _snapshot(workdir), sorted(os.listdir(workdir / ".backup"))
    again = reset(["02"], workdir=str(workdir))
    assert again.reset == [] and again.unchanged == ["02-xdp.ipynb"] and again.backup is None
    assert _snapshot(workdir) == snap and sorted(os.listdir(workdir / ".backup")) == backups


def test_reset_all_and_two_resets_in_one_second_keep_both_backups(workdir):
    from pktlab.lessons.reset import reset
    now = time.time()
    first = reset(all_lessons=True, workdir=str(workdir), now=now)
    assert sorted(first.reset) == ["02-xdp.ipynb", "05-conveyor-belt.ipynb"]
    assert first.restored == ["04-kprobe.ipynb"]
    assert _snapshot(workdir)["notes.txt"] == b"mine"
    (workdir / "02-xdp.ipynb").write_text("my 02 again")
    second = reset(["02"], workdir=str(workdir), now=now)
    assert second.backup != first.backup and os.path.isdir(second.backup)
    assert (open(os.path.join(second.backup, "02-xdp.ipynb")).read() == "my 02 again")


def test_reset_refuses_unknown_numbers_before_touching_anything(workdir):
    snap = _snapshot(workdir)
    r = subprocess.run([*PKTLAB, "lessons", "reset", "02", "99", "--workdir", str(workdir)],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "99" in r.stderr, r.stderr
    assert _snapshot(workdir) == snap and os.listdir(workdir / ".backup") == ["2020-01-01T000000"]
    for args in (["lessons", "reset", "--workdir", str(workdir)],            # none asked for
                 ["lessons", "reset", "02", "--all", "--workdir", str(workdir)],
                 ["lessons", "reset", "02", "--workdir", str(workdir / "missing")],
                 ["lessons", "reset", "x2", "--workdir", str(workdir)]):
        r = subprocess.run([*PKTLAB, *args], capture_output=True, text=True, cwd=REPO, timeout=60)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
    assert _snapshot(workdir) == snap


def test_reset_command_end_to_end(workdir):
    r = subprocess.run([*PKTLAB, "lessons", "reset", "02", "05", "--workdir", str(workdir),
                        "--json"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["reset"] == ["02-xdp.ipynb", "05-conveyor-belt.ipynb"] and doc["backup"]
    assert open(os.path.join(doc["backup"], "05-conveyor-belt.ipynb")).read() == "my 05"
    r = subprocess.run([*PKTLAB, "lessons", "reset", "05", "--workdir", str(workdir)],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0 and "unchanged 05-conveyor-belt.ipynb" in r.stdout


@pytest.fixture
def learners_dir(workdir):
    """The work dir handed to uid/gid 4321 (a learner's), on a path that uid can walk."""
    import tempfile
    top = tempfile.mkdtemp(prefix="pktlab-reset-", dir="/var/tmp")
    os.chmod(top, 0o711)
    w = os.path.join(top, "work")
    shutil.copytree(workdir, w)
    for d, dirs, files in os.walk(w):
        for x in [d] + [os.path.join(d, f) for f in files]:
            os.chown(x, 4321, 4321)
    try:
        yield top, w
    finally:
        shutil.rmtree(top)


def test_reset_as_root_leaves_the_files_to_the_directory_owner(learners_dir):
    require_root()
    from pktlab.lessons.reset import reset
    _top, w = learners_dir
    out = reset(["02", "04"], workdir=w)
    assert out.reset == ["02-xdp.ipynb"] and out.restored == ["04-kprobe.ipynb"]
    for p in (os.path.join(w, "02-xdp.ipynb"), os.path.join(w, "04-kprobe.ipynb"),
              os.path.join(out.backup, "02-xdp.ipynb"), out.backup):
        st = os.stat(p)
        assert (st.st_uid, st.st_gid) == (4321, 4321), p


def test_reset_as_root_does_not_follow_a_learners_planted_links(learners_dir):
    """A learner plants links where the reset writes (its temporary file, the backup folder):
    run as root, the reset must reach through them only what the learner can. The control: the
    same links, the reset run by root *as root* (the old code), writes through them."""
    require_root()
    from pktlab.lessons.reset import reset
    top, w = learners_dir
    target = os.path.join(top, "roots-file")
    with open(target, "w") as f:
        f.write("root's")
    os.chmod(target, 0o644)                         # readable, not writable, by the learner
    tmpname = os.path.join(w, ".02-xdp.ipynb.pktlab-reset")
    os.symlink(target, tmpname)
    os.lchown(tmpname, 4321, 4321)
    with pytest.raises(ValueError):
        reset(["02"], workdir=w)                    # the learner's own link: refused, as them
    st = os.stat(target)
    assert open(target).read() == "root's" and (st.st_uid, st.st_gid) == (0, 0)
    assert open(os.path.join(w, "02-xdp.ipynb")).read() == "my 02"
    # the control: as root in root's name, the same link (planted again: the failed reset
    # removed it) is written through
    if not os.path.lexists(tmpname):
        os.symlink(target, tmpname)
    from pktlab.lessons import reset as R
    R._reset(["02"], R.shipped_lessons(), R.resources.lessons_dir(), w, None)
    assert open(target).read() != "root's"


def test_reset_defaults_to_the_make_lab_work_dir(monkeypatch, tmp_path):
    from pktlab import resources
    monkeypatch.delenv("PKTLAB_WORKDIR", raising=False)
    assert resources.default_workdir() == os.path.join(REPO, "work")
    monkeypatch.setenv("PKTLAB_WORKDIR", str(tmp_path))
    assert resources.default_workdir() == str(tmp_path)
    assert os.path.samefile(resources.lessons_dir(), NB_DIR)


# --- the checkers added for the open questions ---------------------------------------------------

class Boom:
    """An answer that raises whatever a checker does with it."""

    def __iter__(self):
        raise RuntimeError("boom")

    def __str__(self):
        raise RuntimeError("boom")

    def __int__(self):
        raise RuntimeError("boom")

    def __index__(self):
        raise RuntimeError("boom")


def _raises_not(result):
    assert not result and "could not use your answer" in _text(result), _text(result)


def test_wire_order_hints_teach_without_the_order():
    from pktlab.kernel.hooks import WIRE_ORDER
    from pktlab.lessons import exercises as ex
    assert ex.check_wire_order(list(WIRE_ORDER))
    for perm in itertools.permutations(WIRE_ORDER):
        if perm == WIRE_ORDER:
            continue
        r = ex.check_wire_order(list(perm))
        text = _text(r)
        assert not r and "hint" in text
        # the right order is nowhere in the feedback, by arrows or by commas
        for sep in (" → ", ", ", " "):
            assert sep.join(WIRE_ORDER) not in text, (perm, text)
    blank = _text(ex.check_wire_order([]))
    assert "tc-egress, kprobe" not in blank and "tc-egress → kprobe" not in blank
    _raises_not(ex.check_wire_order(Boom()))


def test_pretend_checker():
    require_root()
    from pktlab.lessons import exercises as ex
    from pktlab.lessons.here import HOOKS, hook_available
    want = [h for h in HOOKS if h != "kprobe" and hook_available(h)]
    assert ex.check_pretend(want) and ex.check_pretend(list(reversed(want)))
    assert not ex.check_pretend(want + ["kprobe"])
    assert not ex.check_pretend([])
    _raises_not(ex.check_pretend(Boom()))


def test_doff_checker():
    from pktlab.lessons import exercises as ex
    assert ex.check_doff(("DOFF_LT5", "TCP"), ("doff_beyond", "tcp"))
    wrong = ex.check_doff(("TRUNCATED", "TCP"), ("DOFF_BEYOND", "IPV4"))
    assert not wrong and "DOFF_LT5" not in _text(wrong) and "TCP)" not in _text(wrong)
    assert not ex.check_doff(("", ""), ("", ""))
    _raises_not(ex.check_doff(Boom(), Boom()))


@pytest.fixture(scope="module")
def lab():
    require_hook("xdp")
    require_hook("tc-ingress")
    require_hook("tc-egress")
    from pktlab import lessons as pl
    lab = pl.open_lab(["xdp", "tc-ingress", "tc-egress"])
    assert lab, lab.why()
    yield lab
    lab.close()
    assert _namespaces() == []


def test_never_sent_checker(lab):
    from pktlab.lessons import exercises as ex
    assert ex.check_never_sent(["malformed-truncated-eth.pcap"], lab)
    assert ex.check_never_sent(["malformed-truncated-eth"], lab)
    too_many = ex.check_never_sent(["malformed-truncated-eth.pcap", "malformed-ihl-lt5.pcap"],
                                   lab)
    assert not too_many and "every frame of malformed-ihl-lt5.pcap is sent" in _text(too_many)
    left_out = ex.check_never_sent([], lab)
    assert not left_out and "malformed-truncated-eth" not in _text(left_out)
    _raises_not(ex.check_never_sent(Boom(), lab))


def test_qinq_checker(lab):
    from pktlab.lessons import exercises as ex
    assert ex.check_qinq_tags(2, "metadata", "bytes", lab)
    assert ex.check_qinq_tags("2", "skb metadata", "frame", lab)
    for wrong in ((1, "metadata", "bytes"), (2, "bytes", "bytes"), (2, "metadata", "metadata")):
        r = ex.check_qinq_tags(*wrong, lab)
        assert not r and "2 tags" not in _text(r) and "from skb metadata" not in _text(r)
    _raises_not(ex.check_qinq_tags(Boom(), Boom(), Boom(), lab))


def test_ttl_one_checker():
    require_hook("xdp")
    require_hook("tc-ingress")
    from pktlab.lessons import exercises as ex
    assert ex.check_ttl_one(1)
    wrong = ex.check_ttl_one(0)
    assert not wrong and "saw TTL" not in _text(wrong)
    assert not ex.check_ttl_one("x")
    _raises_not(ex.check_ttl_one(Boom()))


def test_ttl_demo_says_rewrote_only_when_it_did():
    require_hook("xdp")
    require_hook("tc-ingress")
    from pktlab import lessons as pl
    frame = pl.frames("tcp-http.pcap")[3]
    assert "rewrote it" in _text(pl.exercises.ttl_rewrite_demo(frame))
    one = _text(pl.exercises.ttl_rewrite_demo(pl.exercises.with_ttl(frame, 1)))
    assert "rewrote it" not in one and "left the bytes as they were" in one


def test_btf_field_checker_never_names_the_member():
    require_root()
    from pktlab import lessons as pl
    ex = pl.exercises
    off = pl.btf_offset("sk_buff.protocol")[0]
    assert ex.check_btf_field("sk_buff.protocol", off)
    for path, offset in (("", None), ("sk_buff.len", off), ("sk_buff.nope", 0),
                         ("skbuff", 1), ("sk_buff.protocol", off + 1)):
        r = ex.check_btf_field(path, offset)
        assert not r
        if path != "sk_buff.protocol":
            assert "protocol" not in _text(r), (path, _text(r))
    _raises_not(ex.check_btf_field(Boom(), Boom()))


def test_kcopy_checker():
    require_hook("kprobe")
    from pktlab.lessons import exercises as ex
    before = _namespaces()          # the module's lab may be open: the checker's own must go
    assert ex.check_kcopy_status("TOTLEN") and ex.check_kcopy_status("totlen")
    wrong = ex.check_kcopy_status("TRUNCATED")
    assert not wrong and "TOTLEN" not in _text(wrong)
    _raises_not(ex.check_kcopy_status(Boom()))
    assert _namespaces() == before


def test_longer_leg_checker(lab):
    from pktlab.lessons import exercises as ex
    from pktlab.lessons.results import LEGS
    g = lab.gaps(n=20)
    assert all(g.median(*leg) is not None for leg in LEGS)
    results = [ex.check_longer_leg(" -> ".join(leg), lab) for leg in LEGS]
    # one leg is longer on this lab: exactly one answer passes (the medians may swap between
    # the measurements, rarely: then both answers were each right once)
    assert sum(bool(r) for r in results) >= 1
    assert not ex.check_longer_leg("xdp", lab)
    _raises_not(ex.check_longer_leg(Boom(), lab))


def test_native_order_says_to_leave_tc_egress_out():
    from pktlab.lessons import exercises as ex
    r = ex.check_native_xdp_order(["tc-egress", "xdp", "kprobe", "tc-ingress"])
    assert not r and "leave tc-egress out" in _text(r)
    _raises_not(ex.check_native_xdp_order(Boom()))


MICRO = {"micro": {"_meta": {}, "xdp": {"ns_per_pkt": 75.5}, "drop_xdp": {"ns_per_pkt": 27.1},
                   "tc": {"ns_per_pkt": 78.9}}}


def test_cheapest_checker_states_no_figures():
    from pktlab.lessons import exercises as ex
    assert ex.check_cheapest_hook("drop_xdp", MICRO)
    for wrong in ("xdp", "tc", "nonsense", ""):
        r = ex.check_cheapest_hook(wrong, MICRO)
        assert not r and not re.search(r"\d", _text(r)), _text(r)
    _raises_not(ex.check_cheapest_hook(Boom(), MICRO))


def test_netfilter_place_checker():
    from pktlab.lessons import exercises as ex
    assert ex.check_netfilter_place("TC ingress drop", "UDP socket, read and discard")
    assert ex.check_netfilter_place("tc_drop", "socket_drop")
    for wrong in (("xdp_drop", "socket_drop"), ("tc_drop", "xdp_drop"), ("", "")):
        r = ex.check_netfilter_place(*wrong)
        assert not r and "TC ingress drop, then" not in _text(r)
    _raises_not(ex.check_netfilter_place(Boom(), Boom()))


def test_explained_checker_states_no_count(lab):
    from pktlab.lessons import exercises as ex
    assert ex.check_explained([1, 2, 3, 4, 5], lab, "vlan.pcap")
    for wrong in ([], [1], [1, 2, 3, 4, 5, 6]):
        r = ex.check_explained(wrong, lab, "vlan.pcap")
        assert not r
        shown = _text(r).replace(str(wrong), "")
        assert not re.search(r"\d", shown.replace("tc-ingress", "")), shown
    _raises_not(ex.check_explained(Boom(), lab, "vlan.pcap"))


def test_synthesized_checker():
    from pktlab.lessons import exercises as ex
    assert ex.check_synthesized(14) and ex.check_synthesized("14")
    wrong = ex.check_synthesized(16)
    assert not wrong and "14" not in _text(wrong)
    assert not ex.check_synthesized(None)
    _raises_not(ex.check_synthesized(Boom()))


# --- leaks that are gone -----------------------------------------------------------------------

def _markdown_before_exercises(stem):
    import nbformat
    nb = nbformat.read(os.path.join(NB_DIR, stem + ".ipynb"), as_version=4)
    out = []
    for c in nb.cells:
        if "## Exercises" in c.source:
            break
        if c.cell_type == "markdown":
            out.append(c.source)
    return "\n".join(out)


def test_lesson_00_does_not_list_the_hooks_in_wire_order():
    from pktlab.kernel.hooks import WIRE_ORDER
    text = _markdown_before_exercises("00-setup-check")
    # each hook's first mention in bold, in the order the text gives them
    bold = list(dict.fromkeys(m for m in re.findall(r"\*\*([a-z-]+)\*\*", text)
                              if m in WIRE_ORDER))
    assert sorted(bold) == sorted(WIRE_ORDER) and tuple(bold) != WIRE_ORDER
    assert "in the order a packet meets them" not in text


def test_hooks_table_is_in_alphabetical_order():
    require_root()
    from pktlab import lessons as pl
    rows = re.findall(r"<tr><td><b>([a-z-]+)</b>", pl.hooks_table()._repr_html_())
    assert rows == sorted(rows) and len(rows) >= 4


def test_lesson_03_does_not_name_the_flag_above_its_exercise():
    from pktlab.replay import compare
    text = _markdown_before_exercises("03-tc")
    assert "flags" not in text and "VLAN_FROM_META" not in text
    assert not [r for r in compare.REASONS if "VLAN_FROM_META" in r or "flag" in r]


# --- what a learner saw, as units ----------------------------------------------------------------

class _Batch:
    def __init__(self, sendable, verdicts, skip=None):
        import numpy as np
        from pktlab.replay import compare
        self.sendable = np.array([sendable])
        self.skip_reasons = skip or {}
        self.hooks = {h: type("R", (), {"verdict": np.array([compare.VERDICT_NAMES.index(v)]),
                                        "reason": np.array([0]), "diffs": {}})()
                      for h, v in verdicts.items()}


def test_stepper_never_green_for_a_frame_not_sent():
    from pktlab.lessons.widgets import _step_state
    from pktlab.replay.stepper import StepResult
    batch = _Batch(False, {"xdp": "skipped"},
                   {0: "3070 bytes: larger than the lab's MTU (1500) allows"})
    batch.frames = [b"\0" * 3070]
    state = _step_state(StepResult(1, batch), "plnb000000")
    assert "not sent" in state and "MTU" in state
    assert "agrees" not in state and "pll-ok" not in state and "sent across" not in state
    sent = _Batch(True, {"xdp": "agree"})
    sent.frames = [b"\0" * 60]
    assert "every hook agrees" in _step_state(StepResult(1, sent), "plnb000000")


def _summary(packets, sent, reasons=None):
    return {"source": "x.pcap", "packets": packets, "sent": sent, "elapsed_s": 0.1, "pps": 0.0,
            "leftovers": [], "skipped_reasons": reasons or {},
            "hooks": {"xdp": {"seen": sent, "agree": sent, "explained": 0, "disagree": 0,
                              "lost": 0, "skipped": packets - sent, "foreign": 0}}}


def test_replay_with_no_frame_sent_is_not_green_and_says_why():
    from pktlab.lessons.results import ReplayView
    none = ReplayView(_summary(4, 0, {"shorter than an Ethernet header; ...": 4}))
    html = re.sub(r"(?s)<style>.*?</style>", "", none._repr_html_())     # the classes' rules
    assert not none.ok and "pll-ok" not in html and "every hook agrees" not in html
    assert "4 of 4 frames not sent" in html and "shorter than an Ethernet header" in html
    some = ReplayView(_summary(4, 3, {"larger than the lab's MTU": 1}))
    assert some.ok and "1 of 4 frames not sent" in some._repr_html_()


def test_replay_summary_counts_why_frames_were_not_sent():
    require_hook("xdp")
    from pktlab.replay.run import replay
    res = replay(os.path.join(REPO, "pcaps", "malformed-truncated-eth.pcap"), hooks=["xdp"])
    doc = res.summary()
    assert doc["sent"] == 0 and sum(doc["skipped_reasons"].values()) == doc["packets"] == 4
    assert all("Ethernet header" in r for r in doc["skipped_reasons"])


def _belt(times):
    return type("B", (), {"times": times, "order": lambda self: sorted(times, key=times.get)})()


def _label_boxes(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig).draw()
    r = fig.canvas.get_renderer()
    ax = fig.axes[0]
    return [(t.get_text(), t.get_window_extent(r)) for t in ax.texts], ax.get_window_extent(r)


@pytest.mark.parametrize("belts", [
    [{"tc-egress": 0, "kprobe": 9_800, "xdp": 10_300, "tc-ingress": 11_000}],
    [{"tc-egress": 0, "kprobe": 9_800, "xdp": 9_900, "tc-ingress": 10_000}] * 5,
    [{"tc-egress": 0, "kprobe": 300, "xdp": 400, "tc-ingress": 500, "cgroup-ingress": 600,
      "socket-filter": 650, "sk-skb": 40_000, "recv": 80_000}],
])
def test_conveyor_belt_labels_never_overlap(belts):
    from pktlab.lessons.plots import conveyor_belt
    fig = conveyor_belt([_belt(b) for b in belts])
    boxes, axbox = _label_boxes(fig)
    for (a, ba), (b, bb) in itertools.combinations(boxes, 2):
        assert not ba.overlaps(bb), f"{a!r} overlaps {b!r}"
    for name, bb in boxes:
        assert bb.y0 >= axbox.y0 - 1 and bb.y1 <= axbox.y1 + 1, f"{name!r} outside the axes"
        assert bb.x0 >= fig.bbox.x0 and bb.x1 <= fig.bbox.x1, f"{name!r} outside the figure"


def _fake_bench():
    sp = {"min": 1.0, "median": 2.0, "max": 3.0}
    micro = {"_meta": {"frames": 40, "frames_source": "x", "rounds": 3, "repeat": 10}}
    for n, ns in (("xdp", 75.5), ("xdp_no_record", 37.8), ("tc", 78.9), ("drop_xdp", 27.1)):
        micro[n] = {"ns_per_pkt": ns, "baseline_ns_per_pkt": 26.4, "ratio": ns / 26.4,
                    "added_ns_per_pkt": ns - 26.4, "spread": {"min": ns - 5, "median": ns,
                                                              "max": ns + 5},
                    "baseline_spread": sp, "ratio_spread": sp, "limit_ratio": 3.0,
                    "within_limit": ns / 26.4 <= 3.0}
    by_size = {}
    for s in ("64", "512", "1500"):
        by_size[s] = {"generator": {"pps": 13.4e6}}
        for i, p in enumerate(("xdp_native_drop", "xdp_drop", "tc_drop", "nft_drop",
                               "socket_drop", "xdp_parse", "tc_ingress_parse", "kprobe_parse",
                               "tc_egress_parse")):
            by_size[s][p] = {"pps": 3e6 / (i + 1), "ratio": 0.2, "delivered": 1.0}
    return {"micro": micro, "live": {"by_size": by_size, "generator": "xdp-live-frames",
                                     "other_load_cpus": {"mean": 0.5, "max": 0.9}}}


def test_bench_chart_text_is_neither_rotated_nor_tiny():
    from matplotlib.text import Text

    from pktlab.bench.chart import plot
    fig = plot(_fake_bench())
    fig.draw_without_rendering()
    texts = [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]
    assert len(texts) > 40
    axis_titles = {id(ax.yaxis.label) for ax in fig.axes}   # a y axis's title stands, as usual
    for t in texts:
        if id(t) not in axis_titles:
            assert t.get_rotation() == 0, t.get_text()
        assert t.get_fontsize() >= 8, (t.get_text(), t.get_fontsize())


def test_bench_summary_in_plain_words():
    from pktlab.bench.report import plain_summary
    micro, live, notes = plain_summary(_fake_bench())
    words = json.dumps([micro, live, notes])
    for jargon in ("trafgen", "pps_spread", "EXCEEDED", "xdp-live-frames", "pps", "micro"):
        assert jargon not in words, jargon
    assert micro[0][:2] == ["xdp", "XDP: parse and write a record"]


def test_results_follow_the_panel():
    pytest.importorskip("ipywidgets")
    from pktlab.lessons.benchpanel import BenchResults
    panel = type("P", (), {"results": None, "runs": 0})()
    results = BenchResults(panel)
    assert not results and "press Run" in repr(results)
    panel.results, panel.runs = {"micro": {"a": {"ns_per_pkt": 1.0}}}, 1
    assert results["micro"]["a"]["ns_per_pkt"] == 1.0 and "run 1" in repr(results)
    panel.results, panel.runs = {"micro": {"b": {"ns_per_pkt": 2.0}}}, 2   # Run pressed
    assert list(results["micro"]) == ["b"] and "run 2" in repr(results)
    from pktlab.lessons import exercises as ex
    assert ex.check_cheapest_hook("b", results)


def test_progress_says_the_step_uncut():
    pytest.importorskip("ipywidgets")
    from pktlab.progress import WidgetBar
    bar = WidgetBar(10, "bench")
    bar.describe("micro round 3/5")
    assert bar.what.value == "micro round 3/5" and bar.bar.description == "bench"


def test_a_typed_capture_path_wins_over_the_instructors(monkeypatch):
    from pktlab import lessons as pl
    monkeypatch.setenv("PKTLAB_CAPTURE", "vlan.pcap")
    assert pl.instructor_capture().endswith("vlan.pcap")
    typed = pl.instructor_capture("dns.pcap")
    assert typed.endswith("dns.pcap") and "wins over PKTLAB_CAPTURE" in typed.why
    monkeypatch.delenv("PKTLAB_CAPTURE")
    assert pl.instructor_capture().endswith("mixed.pcap")


def test_captures_show_as_a_table():
    from pktlab import lessons as pl
    caps = pl.captures()
    assert isinstance(caps, list) and "mixed.pcap" in caps
    html = caps._repr_html_()
    assert "<table" in html and "A complete HTTP/1.1 exchange" in html


def test_no_raw_backticks_in_the_walks_notes():
    from pktlab import lessons as pl
    from pktlab.packet.views import walk
    notes = {ly.note for name in pl.captures() for f in pl.frames(name)
             for ly in walk(f).layers if ly.note}
    assert any("does not fit in the frame" in n for n in notes)
    assert not [n for n in notes if "`" in n]


def test_mechanism_table_escapes_once():
    require_root()
    from pktlab import lessons as pl
    for html in (pl.mechanism_table()._repr_html_(), pl.hooks_table()._repr_html_(),
                 pl.doctor_table()._repr_html_()):
        assert "&amp;#x27;" not in html and "&amp;quot;" not in html and "&amp;lt;" not in html


def test_rerunning_an_open_lab_cell_closes_the_lab_it_opened(monkeypatch):
    require_hook("xdp")
    from pktlab import lessons as pl
    from pktlab.lessons import live
    monkeypatch.setattr(live, "_cell_id", lambda: "cell-7")
    first = pl.open_lab(["xdp"])
    try:
        second = pl.open_lab(["xdp"])
        assert first.closed and second and second.replaced == first.name
        assert f"closed lab {first.name}" in second._repr_html_()
        assert [n for n in _namespaces() if n.startswith(first.name)] == []
        monkeypatch.setattr(live, "_cell_id", lambda: "cell-8")    # another cell: both stay
        third = pl.open_lab(["xdp"])
        assert second and third and second.name in third._repr_html_()
    finally:
        pl.close_all()
    assert _namespaces() == []


def test_stepper_text_fits_a_notebook_line():
    require_hook("xdp")
    require_hook("tc-ingress")
    from pktlab import lessons as pl
    with pl.open_lab(["xdp", "tc-ingress", "tc-egress"]) as lab:
        st = lab.step(pl.frames("qinq.pcap")[0])
        text = st.text()
    assert max(len(ln) for ln in text.splitlines()) <= 100, text
    assert re.search(r"^\s+tag 1\s+0x88a8 vid", text, re.M), text
    assert re.search(r"^\s+tag 2\s+0x8100 vid", text, re.M), text
    assert "VLAN_FROM_META" in text


# --- the kit -------------------------------------------------------------------------------------

def test_every_lesson_has_instructor_notes():
    for f in LESSONS:
        stem = f[:-6]
        path = os.path.join(NB_DIR, "instructor", stem + ".md")
        assert os.path.exists(path), f"no instructor notes for {stem}"
        text = open(path).read()
        for part in ("**Show**", "**Common mistakes**", "**Where learners get stuck**"):
            assert part in text, (stem, part)


def _tracks():
    text = open(os.path.join(NB_DIR, "TRACKS.md")).read()
    out = {}
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        title = part.splitlines()[0]
        if not title.endswith(" track"):
            continue                    # the notes after the tracks (the assignments)
        rows = [tuple(c.strip() for c in r) for r in
                re.findall(r"^\|([0-9: ]+)\|([^|]+)\|([^|]*)\|\s*(\d+)\s*\|$", part, re.M)]
        total = int(re.search(r"^Total: (\d+) minutes", part, re.M).group(1))
        out[title] = (rows, total)
    return out


def _minutes(h_m):
    h, m = h_m.split(":")
    return int(h) * 60 + int(m)


def test_tracks_add_up():
    import nbformat
    sys.path.insert(0, os.path.dirname(__file__))
    from test_notebooks import lesson_minutes
    tracks = _tracks()
    assert set(tracks) == {"The 2-hour track", "The full-day track"}
    assert tracks["The 2-hour track"][1] == 120
    for title, (rows, total) in tracks.items():
        assert sum(int(r[3]) for r in rows) == total, title
        for a, b in zip(rows, rows[1:]):          # each row starts when the one before ends
            assert _minutes(a[0]) + int(a[3]) == _minutes(b[0]), (title, a, b)
        for start, lesson, sections, minutes in rows:
            m = re.match(r"(\d\d) ", lesson)
            if not m:
                continue
            stem = next(f[:-6] for f in LESSONS if f.startswith(m.group(1)))
            if title == "The full-day track":         # every lesson, at its own time
                assert int(minutes) == lesson_minutes(stem), (stem, minutes)
                continue
            nb = nbformat.read(os.path.join(NB_DIR, stem + ".ipynb"), as_version=4)
            heads = {ln[3:].strip() for c in nb.cells for ln in c.source.splitlines()
                     if ln.startswith("## ")}
            for s in re.sub(r"\([^)]*\)", "", sections).split(";"):
                s = s.strip()
                if s and not s.startswith(("exercise", "all", "no exercises")):
                    assert s in heads, (stem, s)
    full = [r[1] for r in tracks["The full-day track"][0]]
    assert [x[:2] for x in full if x[:2].isdigit()] == [f[:2] for f in LESSONS]


def test_make_lab_serves_only_the_lessons(tmp_path):
    """scripts/lab.sh, for real: the work dir gets the lessons and nothing else of
    notebooks/ (an older copy's solutions as shipped are removed, a learner's edited one kept
    and named), and JupyterLab's root is the work dir: the API lists only what is there."""
    require_root()
    import tempfile
    from test_lab_solo import Solo
    # a work dir the lab's (unprivileged) account can write: pytest's own tmp is root's only
    work = pathlib.Path(tempfile.mkdtemp(prefix="pktlab-work-"))
    try:
        work.chmod(0o777)
        (work / "solutions").mkdir()
        shutil.copy(os.path.join(NB_DIR, "solutions", "dscp.py"), work / "solutions")
        (work / "solutions" / "belt.py").write_text("# my own notes\n")
        (work / "02-xdp.ipynb").write_text("my 02")
        solo = Solo(tmp_path, workdir=work)
        try:
            listing = solo.api("GET", "/contents").json()
            names = sorted(c["name"] for c in listing["content"])
            assert [n for n in names if n.endswith(".ipynb")] == [f for f in LESSONS]
            assert "instructor" not in names and "TRACKS.md" not in names
            # the learner's own file in an old solutions copy stays (and is named); the rest
            # goes
            assert os.listdir(work / "solutions") == ["belt.py"]
            assert "not as shipped" in solo.log()
            assert (work / "02-xdp.ipynb").read_text() == "my 02"     # never overwritten
        finally:
            solo.finish()
    finally:
        shutil.rmtree(work, ignore_errors=True)
