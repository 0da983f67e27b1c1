"""Lessons 08 and 09 as a learner who is not root, through a real pktlabd (the socket end's
ops, pktlab/workshop/opssockets.py): the belt, its request, its views, the late insertion and
the hook chooser's re-attach; the conntrack comparison, the TIME_WAIT trap, pl.verify and the
two checkers that build labs (08's insertion moment, 09's firewall).

Each next to its control: what the learner is shown is what root is shown for the same step
(root runs it in this process, as `make lab` did); the experiments' labs are the learner's
(tagged with their uid while they run, counted in their quota) and a learner killed mid-run
leaves none of them, nor their cgroup or server; bad arguments are refused in one line while
the same op with good ones runs.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from conftest import REPO, require_hook, require_root
from test_ownership import _wait_for
from test_workshop_daemon import daemon, learners  # noqa: F401 (fixtures)


_PRELUDE = """
import json, os, re, sys
import pktlab.lessons as pl
import time
T0 = time.monotonic()
def out(**kw):
    kw.setdefault("t", {})[list(kw)[0]] = round(time.monotonic() - T0, 1)
    print("@@" + json.dumps(kw, default=str), flush=True)
"""


class Learner:
    """Python run as a learner's uid (not root), with the daemon's socket: the notebook's
    side. start() leaves it running (to be killed); run() waits for its `out(...)` lines."""

    def __init__(self, user, daemon):
        self.user, self.daemon = user, daemon
        self.home = tempfile.mkdtemp(prefix="pktlab-learner-")
        os.chown(self.home, user.pw_uid, user.pw_gid)
        os.chmod(self.home, 0o700)

    def start(self, code):
        env = {"PATH": "/usr/bin:/bin", "HOME": self.home, "PKTLAB_SOCKET": self.daemon.path,
               "PYTHONPATH": REPO, "LC_ALL": "C.UTF-8", "MPLBACKEND": "Agg",
               "MPLCONFIGDIR": os.path.join(self.home, "mpl")}
        return subprocess.Popen(
            ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}",
             "--clear-groups", sys.executable, "-c", _PRELUDE + textwrap.dedent(code)],
            cwd=self.home, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)

    def run(self, code, timeout=300):
        p = self.start(code)
        stdout, stderr = p.communicate(timeout=timeout)
        assert p.returncode == 0, f"learner's code failed:\n{stderr[-3000:]}"
        got = {}
        for line in stdout.splitlines():
            if line.startswith("@@"):
                doc = json.loads(line[2:])
                got.setdefault("t", {}).update(doc.pop("t"))
                got.update(doc)
        print("learner's times (s):", got["t"])
        return got

    def close(self):
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture(scope="module")
def learner(learners, daemon):  # noqa: F811
    lr = Learner(learners[0], daemon)
    yield lr
    lr.close()


def _masked(text, nonce=None):
    """A view's text with what differs between two runs masked: the request's nonce, the
    numbers (times, ports, pids) and the lab's name."""
    if nonce:
        text = text.replace(nonce, "NONCE")
    text = re.sub(r"pktlab-[0-9a-f]{1,12}\b|pktlab-[0-9a-f]{7}", "NONCE", text)
    text = re.sub(r"\b(pw|pl)[a-z]*[0-9a-f]{4,}\w*", "LAB", text)
    return re.sub(r"\d+(\.\d+)?", "N", text)


def _my_labs(uid):
    from pktlab.workshop.labs import daemon_labs
    return [st.name for st in daemon_labs(uid=uid, alive_only=False)]


# the belt ----------------------------------------------------------------------------------------
_BELT = """
belt = pl.open_belt("http")
assert type(belt).__name__ == "RemoteBelt", repr(belt)
run = belt.request()
html = belt._repr_html_()
out(kind=type(belt).__name__, hooks=list(belt.hooks), lab=belt.name, belt_html=html,
    summary=run.run.summary(), run_html=run._repr_html_(), nonce=run.run.nonce,
    views=len(run.views().axes[0].patches), plot=len(run.plot().axes[0].collections),
    l7=belt.l7_peek(run)._repr_html_(), filt=str(belt.filter_inheritance(run)),
    late=str(belt.late_insert()))
refused = {}
for op, args in (("frames", {"lab": belt.name, "lengths": []}),
                 ("set_hooks", {"lab": belt.name, "hooks": ["xdp"]}),
                 ("belt_request", {"lab": belt.name + "x"})):
    try:
        belt.client.call(op, args)
        refused[op] = "served"
    except Exception as e:
        refused[op] = str(e)
status = belt.client.call("status", {})[0]
out(refused=refused, status_labs=[x["name"] for x in status["labs"]])
belt.set_hooks(["xdp", "recv"])
run2 = belt.request()
out(after_set=list(belt.hooks), order2=run2.run.order)
pl.close_all()
out(closed=not belt)
"""


def _root_belt():
    import pktlab.lessons as pl
    belt = pl.open_belt("http")
    try:
        assert type(belt).__name__ == "LiveBelt"
        run = belt.request()
        return {"hooks": list(belt.hooks), "summary": run.run.summary(),
                "run_html": run._repr_html_(), "nonce": run.run.nonce,
                "views": len(run.views().axes[0].patches),
                "plot": len(run.plot().axes[0].collections),
                "l7": belt.l7_peek(run)._repr_html_(), "filt": str(belt.filter_inheritance(run)),
                "late": str(belt.late_insert())}
    finally:
        belt.close()


def _shape(summary):
    return {h: (v["seen"] > 0, v["agree"], bool(v.get("explained")), v.get("disagree"),
                v["view"]) for h, v in summary["hooks"].items()}


def test_a_learners_belt_is_roots_belt_built_from_the_daemons_data(learner, daemon):
    require_root()
    for h in ("xdp", "tc-ingress", "tc-egress"):
        require_hook(h)
    got = learner.run(_BELT)
    want = _root_belt()                              # the control: root, in this process
    assert got["kind"] == "RemoteBelt"
    assert got["hooks"] == want["hooks"]
    assert _shape(got["summary"]) == _shape(want["summary"])
    assert got["summary"]["order"] == want["summary"]["order"]
    assert got["summary"]["ok"] and want["summary"]["ok"]
    for k in ("run_html", "l7", "filt", "late"):
        assert _masked(got[k], got["nonce"]) == _masked(want[k], want["nonce"]), k
    assert got["views"] == want["views"] > 0 and got["plot"] == want["plot"] > 0
    assert "server (pid" in got["belt_html"] and "cgroup" in got["belt_html"]
    assert got["after_set"] == ["xdp", "recv"] and got["order2"] == ["xdp", "recv"]
    # the belt's lab is the learner's (in their quota), and only the belt ops act on it
    assert got["status_labs"] == [got["lab"]]
    assert "holds a belt" in got["refused"]["set_hooks"]
    assert "no hooks attached" in got["refused"]["frames"]
    assert "no lab of yours" in got["refused"]["belt_request"]
    assert got["closed"]
    assert _my_labs(learner.user.pw_uid) == []


# lesson 09 ---------------------------------------------------------------------------------------
_LESSON09 = """
MISTAKES = ("forgot_release", "use_after_release", "read_before_null_check")
ct = pl.conntrack(flows=100, max_entries=16)
out(ct_kind=type(ct).__name__, ct=ct.doc, ct_text=repr(ct), ct_bars=len(ct.plot().axes[0].patches),
    hash_right=bool(pl.exercises.check_hash_connected(ct["variants"]["hash"]["connected"], ct)),
    hash_wrong=bool(pl.exercises.check_hash_connected(ct["variants"]["hash"]["connected"] + 1, ct)))
tw = pl.timewait()
out(tw=str(tw))
views = {"shipped": pl.verify(pl.exercises.firewall_source())}
for name in MISTAKES:
    views[name] = pl.verify(pl.exercises.variant_source(name))
out(verify={k: [bool(v), str(v)] for k, v in views.items()})
fw_ok = pl.exercises.check_lookup(pl.exercises.firewall_source())
fw_bad = pl.exercises.check_lookup(pl.exercises.variant_source("forgot_release"))
out(fw=[[bool(r), str(r)] for r in (fw_ok, fw_bad)])
"""


def test_lesson09_as_a_learner_is_what_root_sees(learner, daemon):
    require_hook("tc-ingress")
    from pktlab.lessons import socketviews
    from pktlab.lessons.exercises import check_lookup, firewall_source, variant_source
    from pktlab.sockets import format_conntrack
    from pktlab.sockets.timewait import format_timewait, timewait_trap
    got = learner.run(_LESSON09)
    ct = got["ct"]
    assert got["ct_kind"] == "ConntrackView"
    assert got["ct_text"] == repr(socketviews.ConntrackView(ct))
    assert format_conntrack(ct).splitlines()[0] in got["ct_text"]
    assert ct["leftovers"] == [] and ct["ok"], ct["problems"]
    v = ct["variants"]
    assert v["none"]["connected"] == v["sk_lookup"]["echoed"] == 100
    assert v["hash"]["connected"] <= 16 < 100 and v["hash"]["insert_failed"] > 0
    assert v["lru_hash"]["connected"] > v["lru_hash"]["echoed"]
    assert got["ct_bars"] > 0 and got["hash_right"] and not got["hash_wrong"]
    # the control: root's own, in this process
    want_tw = timewait_trap()
    assert _masked(got["tw"]) == _masked(format_timewait(want_tw))
    assert "sk_lookup" in got["tw"] and "skc_lookup: server" in got["tw"]
    want = {"shipped": socketviews.verify(firewall_source())}
    for name in ("forgot_release", "use_after_release", "read_before_null_check"):
        want[name] = socketviews.verify(variant_source(name))
    assert got["verify"] == {k: [bool(x), str(x)] for k, x in want.items()}
    assert [ok for ok, _ in got["verify"].values()] == [True, False, False, False]
    want_fw = [check_lookup(firewall_source()), check_lookup(variant_source("forgot_release"))]
    assert got["fw"] == [[bool(r), str(r)] for r in want_fw]
    assert [ok for ok, _ in got["fw"]] == [True, False]
    assert _my_labs(learner.user.pw_uid) == []


# lesson 08's insertion checker, and what is refused --------------------------------------------
def test_the_insertion_checker_through_the_daemon_measures_it(learner, daemon):
    require_hook("tc-ingress")
    got = learner.run("""
    from pktlab.lessons.exercises import ex08
    r = [pl.exercises.check_insert_moment(op) for op in
         ("BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB", "BPF_SOCK_OPS_TCP_CONNECT_CB", "NO_SUCH_CB")]
    out(r=[[bool(x), str(x)] for x in r])
    """)
    ok, wrong, bogus = got["r"]
    assert ok[0] and "PASSIVE_ESTABLISHED_CB: the socket was in the map" in ok[1]
    assert not wrong[0] and "never saw the request" in wrong[1]
    assert not bogus[0] and "not a sock_ops callback" in bogus[1]
    assert _my_labs(learner.user.pw_uid) == []


_REFUSED = """
from pktlab.workshop.client import Client
res = {}
with Client() as c:
    for op, args in [("conntrack", {"flows": 10**9}), ("conntrack", {"max_entries": 10**7}),
                     ("conntrack", {"flows": "many"}), ("insert_moment", {"op": "rm -rf /"}),
                     ("belt_open", {"traffic": "ftp"}), ("belt_open", {"hooks": ["lo"]}),
                     ("belt_request", {"lab": "pw0000"}), ("timewait", {"wait": 1e6}),
                     ("belt_open", {"traffic": "http", "ifname": "eth0"}),
                     ("timewait", {})]:
        try:
            r, _ = c.call(op, args)
            res[f"{op} {args}"] = ["ok", sorted(r)]
        except Exception as e:
            res[f"{op} {args}"] = [type(e).__name__, str(e)]
out(res=res)
with Client() as c:
    try:
        c.call("belt_nonsense", {})
    except Exception as e:
        out(unknown=[type(e).__name__, str(e)])
"""


def test_bad_arguments_are_refused_in_one_line_and_good_ones_run(learner, daemon):
    require_hook("tc-ingress")
    got = learner.run(_REFUSED)
    res = got["res"]
    assert res["conntrack {'flows': 1000000000}"] == [
        "Refused", "conntrack: flows 1000000000: must be 1..10,000"]
    assert res["conntrack {'max_entries': 10000000}"] == [
        "Refused", "conntrack: max_entries 10000000: must be 1..65,536"]
    assert res["conntrack {'flows': 'many'}"][0] == "ValueError"
    assert "choose from" in res["insert_moment {'op': 'rm -rf /'}"][1]
    assert "choose from http, tcp, udp" in res["belt_open {'traffic': 'ftp'}"][1]
    assert "choose from" in res["belt_open {'hooks': ['lo']}"][1]
    assert "no lab of yours" in res["belt_request {'lab': 'pw0000'}"][1]
    assert res["timewait {'wait': 1000000.0}"][0] == "ValueError"
    assert "no argument 'ifname'" in res["belt_open {'traffic': 'http', 'ifname': 'eth0'}"][1]
    assert all("\n" not in msg for _, msg in res.values())
    assert res["timewait {}"] == ["ok", ["sk_lookup", "skc_lookup"]]     # the control
    assert got["unknown"][0] == "ProtocolError" and "unknown op 'belt_nonsense'" in got["unknown"][1]
    assert _my_labs(learner.user.pw_uid) == []


# a learner killed mid-run leaves nothing ------------------------------------------------------
def _read_out(p, timeout=240):
    """The next out(...) line of a running learner."""
    import select as sel
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select([p.stdout], [], [], 1.0)[0]:
            line = p.stdout.readline()
            if not line:
                break
            if line.startswith("@@"):
                return json.loads(line[2:])
    raise AssertionError(f"no answer from the learner: {p.poll()} {p.stderr.read()[-2000:]}")


def _procs_naming(names):
    """Pids of processes whose command line names one of `names` (a lab's namespaces)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            continue
        if any(n in cmd for n in names):
            out.append(int(pid))
    return out


def _gone(names):
    from pktlab.lab import leftovers
    return [x for n in names for x in leftovers(n)] + [
        f"process {p}" for p in _procs_naming(names)]


def test_a_learner_killed_mid_run_leaves_nothing_the_other_keeps_theirs(learners, daemon):  # noqa: F811
    require_hook("tc-ingress")
    a, b = Learner(learners[0], daemon), Learner(learners[1], daemon)
    pa = a.start("""
    belt = pl.open_belt("http", hooks="xdp,sk-skb")
    out(lab=belt.name, server=belt.belt.server.pid, cgroup=belt.belt.cgroup.path)
    sys.stdin.readline()
    out(second=str(belt.request()))
    """)
    pb = None
    try:
        held = _read_out(pa)
        assert _my_labs(a.user.pw_uid) == [held["lab"]]          # tagged as theirs
        assert os.path.isdir(held["cgroup"]) and os.path.exists(f"/proc/{held['server']}")
        # b: a conntrack run, killed once its first policy's lab is up (the client's flows)
        pb = b.start("ct = pl.conntrack(flows=2000, max_entries=256)\nout(done=1)")
        seen = set()

        def b_running():
            names = _my_labs(b.user.pw_uid)
            seen.update(names)
            return names and _procs_naming(names)
        assert _wait_for(b_running, 120), "b's conntrack lab never came up"
        time.sleep(0.5)
        pb.kill()
        pb.wait()
        assert _wait_for(lambda: not _my_labs(b.user.pw_uid) and not _gone(seen), 60), \
            f"left after b was killed mid-run: {_my_labs(b.user.pw_uid)} {_gone(seen)}"
        # the control: a's belt, on its own connection, is untouched and still works
        assert _my_labs(a.user.pw_uid) == [held["lab"]]
        pa.stdin.write("go\n")
        pa.stdin.flush()
        assert "one http request" in _read_out(pa)["second"]
        # then a is killed while it holds the belt: lab, cgroup, server all go
        pa.kill()
        pa.wait()
        assert _wait_for(lambda: not _my_labs(a.user.pw_uid) and not _gone([held["lab"]])
                           and not os.path.exists(f"/proc/{held['server']}")
                           and not os.path.isdir(held["cgroup"]), 60), \
            f"left after a was killed: {_gone([held['lab']])}"
    finally:
        for p in (pa, pb):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        a.close()
        b.close()
