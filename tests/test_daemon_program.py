"""A learner's own programs through pktlabd (pktlab/workshop/opsprogram.py), for real: a daemon
started here, learners as real non-root uids (tests/test_workshop_daemon.py's fixtures), the
learner's C loaded by the learner loader in the daemon, test-run there, attached in the
learner's own lab, frames sent across it.

Each attack next to its control: a program attached in the learner's own lab works, in another
learner's lab it is refused; a program's maps are read on its own connection and refused on
another connection and to another learner; the lesson 02 flow (pl.program: test runs, maps,
a replay in the notebook's lab) and the checkers give the same answers they give root: a
solution passes where the starting code does not.
"""

import json
import os
import re
import subprocess
import sys
import time


from conftest import PCAPS, REPO, require_hook
from test_workshop_daemon import agents, daemon, learners  # noqa: F401

SOLUTIONS = os.path.join(REPO, "notebooks", "solutions")
MIXED = os.path.join(PCAPS, "mixed.pcap")


def _demo():
    """Lesson 02's %%bpf demo: (its C, after the magic's line)."""
    sys.path.insert(0, os.path.join(REPO, "tools"))
    from nbsrc.nb02 import BPF_DEMO
    return BPF_DEMO.strip("\n").split("\n", 1)[1]


def as_learner(user, daemon, code, *args, stdin=None, timeout=300):
    """Python `code` run as `user` (not root), pktlabd at daemon.path: its last JSON line."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PKTLAB_SOCKET": daemon.path,
           "PYTHONPATH": REPO, "LC_ALL": "C.UTF-8", "PKTLAB_PCAPS": PCAPS}
    r = subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                        "--clear-groups", sys.executable, "-c", code, *args], cwd=REPO,
                       env=env, input=stdin, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return json.loads(lines[-1])


def _prog_on(ns, ifname):
    """The name of the XDP program on an interface (from `ip -d link`), or None."""
    out = subprocess.run(["ip", "netns", "exec", ns, "ip", "-d", "link", "show", ifname],
                         capture_output=True, text=True).stdout
    m = re.search(r"prog/xdp id (\d+)", out)
    if not m:
        return None
    show = subprocess.run(["bpftool", "prog", "show", "id", m.group(1), "--json"],
                          capture_output=True, text=True).stdout
    return json.loads(show).get("name") if show.strip() else None


# the lesson 02 flow ---------------------------------------------------------------------------
LESSON = r"""
import json, sys
from pktlab import lessons as pl
src = json.loads(sys.argv[1])
lab = pl.open_lab(["xdp"])
p = pl.program(src, hook="xdp", first_line=2)
out = {"ok": p.ok, "remote": p.remote, "func": p.func, "why": p.why, "counted": p.counted,
       "maps_info": sorted(p.maps_info)}
out["test_run"] = p.test_run("mixed.pcap").counts
t = p.maps
t.stop()
t.refresh()
out["after_test_run"] = dict(t["by_dest"])
p.attach(lab)
print(json.dumps({"attached": p.attached, "ns": lab.lab.ns_dut, "if": lab.lab.if_dut}),
      flush=True)
sys.stdin.readline()                 # the test looks at the interface meanwhile
p.detach()
seen, show = [], t.show                # what the live tables were given during the replay
t.show = lambda maps, info: (seen.append(sum(maps.get("by_dest", {}).values())),
                             show(maps, info))
r = p.replay("mixed.pcap", lab=lab)
out["progress"] = seen
out["tables_after"] = sum(t.data["by_dest"].values())
out["replay"] = getattr(r, "verdicts", repr(r))
out["after_replay"] = p.dump()[0].get("by_dest")
p.close()
lab.close()
print(json.dumps(out), flush=True)
"""


def test_lesson_02_program_through_the_daemon(learners, daemon):
    """pl.program as a learner: loaded in the daemon, test runs and maps as data, attached in
    the learner's lab (the interface carries the learner's wrapped program, then pktlab's
    again), a replay's verdicts counted; every number what the frames say. The live tables
    follow the replay as it goes (the daemon's progress), not only at its end."""
    require_hook("xdp")
    from pktlab.packet import read_frames
    from pktlab.kernel.bpf import MIN_TEST_RUN_FRAME
    from pktlab.kernel.verdicts import WRAPPER_FUNC
    frames = [bytes(f.data) for f in read_frames(MIXED)]
    ran = [f for f in frames if len(f) >= MIN_TEST_RUN_FRAME]
    bcast = sum(f[:6] == b"\xff" * 6 for f in ran)
    multi = sum(bool(f[0] & 1) for f in ran) - bcast
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PKTLAB_SOCKET": daemon.path,
           "PYTHONPATH": REPO, "LC_ALL": "C.UTF-8", "PKTLAB_PCAPS": PCAPS}
    u = learners[0]
    proc = subprocess.Popen(["setpriv", f"--reuid={u.pw_uid}", f"--regid={u.pw_gid}",
                             "--clear-groups", sys.executable, "-c", LESSON,
                             json.dumps(_demo())], cwd=REPO, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("{"), proc.stderr.read()[-3000:]
        at = json.loads(line)
        assert at["attached"], at
        on_lab = _prog_on(at["ns"], at["if"])       # the learner's, by the daemon's hand
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    assert out["ok"] and out["remote"] and out["counted"] and out["why"] is None, out
    assert out["func"] == "count_dest" and out["maps_info"] == ["by_dest"]
    assert on_lab == WRAPPER_FUNC[:15], on_lab
    assert out["test_run"] == {k: v for k, v in (("XDP_PASS", len(ran) - bcast),
                                                 ("XDP_DROP", bcast)) if v}
    want = {k: v for k, v in (("0", len(ran) - bcast - multi), ("1", multi), ("2", bcast))
            if v}
    assert out["after_test_run"] == want
    assert out["replay"].get("XDP_DROP") == bcast, out["replay"]
    sent = sum(out["replay"].values())
    assert sum(out["after_replay"].values()) == len(ran) + sent
    before, after = len(ran), len(ran) + sent
    assert out["progress"] and before < out["progress"][0] < after, (out["progress"], after)
    assert out["progress"] == sorted(out["progress"]) and out["tables_after"] == after
    assert daemon.labs() == [] or all(not st.owner_alive() for st in daemon.labs())


# attacks next to their controls ---------------------------------------------------------------
def _load(a, source, keep=True, conn=0, hook="xdp"):
    return a.call("program", conn=conn, blob=source, source_len=len(source), hook=hook,
                  name="cell.c", keep=keep, frames_len=0)


def _wrapped():
    from pktlab.kernel import verdicts
    return verdicts.wrap(("\n" + _demo()).encode(), "count_dest", "XDP")


def test_attach_and_maps_only_for_their_owner(agents):
    """Attach in one's own lab (the interface carries the program) where another learner's
    lab is refused; maps read on the program's own connection where another connection, or
    another learner, is refused; bad arguments refused before anything is loaded."""
    require_hook("xdp")
    from pktlab.kernel.verdicts import WRAPPER_FUNC
    a, b = agents(0), agents(1)
    la, lb = a.ok("open_lab", hooks=["xdp"]), b.ok("open_lab", hooks=["xdp"])
    src = _wrapped()
    pa = _load(a, src)
    assert pa["ok"] and pa["result"]["id"], pa
    pid = pa["result"]["id"]
    # control: into A's own lab
    assert a.ok("program_lab", id=pid, do="attach", lab=la["lab"])["attached"] == la["lab"]
    assert _prog_on(la["ns_dut"], la["if_dut"]) == WRAPPER_FUNC[:15]
    # attack: A's program into B's lab
    r = a.call("program_lab", id=pid, do="attach", lab=lb["lab"])
    assert not r["ok"] and "no lab of yours" in r["message"], r
    assert _prog_on(lb["ns_dut"], lb["if_dut"]) not in (None, WRAPPER_FUNC[:15])
    # attack: B names A's second program; control: A reads it, B attaches its own
    p2 = _load(a, src)["result"]["id"]
    assert "by_dest" in a.ok("program", id=p2, maps=True, frames_len=0)["maps"]
    pb = _load(b, src)["result"]["id"]
    for op, args in (("program", dict(maps=True, frames_len=0)),
                     ("program_lab", dict(do="attach", lab=lb["lab"]))):
        r = b.call(op, id=p2, **args)
        assert not r["ok"] and "no program of yours" in r["message"], r
    assert b.ok("program_lab", id=pb, do="attach", lab=lb["lab"])["attached"] == lb["lab"]
    assert _prog_on(lb["ns_dut"], lb["if_dut"]) == WRAPPER_FUNC[:15]
    # maps: read on A's connection, refused on another connection of A's
    mine = a.ok("program", id=pid, maps=True, frames_len=0)
    assert "by_dest" in mine["maps"]
    assert a.do(cmd="connect")["conn"] == 1
    other = a.call("program", conn=1, id=pid, maps=True, frames_len=0)
    assert not other["ok"] and "no program of yours" in other["message"], other
    # detach: pktlab's hook is back on A's lab
    a.ok("program_lab", id=pid, do="detach")
    assert _prog_on(la["ns_dut"], la["if_dut"]) not in (None, WRAPPER_FUNC[:15])
    # bad arguments: refused, nothing loaded
    for bad in (dict(fd=3), dict(hook="kprobe"), dict(func="x; rm"), dict(frames_len=5),
                dict(source_len=len(src) + 1)):
        args = {**dict(source_len=len(src), hook="xdp", name="c.c", frames_len=0), **bad}
        r = a.call("program", blob=src, **args)
        assert not r["ok"], (bad, r)
    r = a.call("program", own="kprobe", blob=b"")
    assert not r["ok"]
    # closing the connection takes its lab and the program's attachment with it
    a.do(cmd="close", conn=0)
    deadline = time.monotonic() + 20
    while os.path.exists(f"/run/netns/{la['ns_dut']}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/run/netns/{la['ns_dut']}")


# the checkers as a learner ------------------------------------------------------------------------
CHECKS = r"""
import json, sys, time
from pktlab.lessons import exercises as ex
a1_start, texts = json.loads(sys.argv[1]), json.loads(sys.argv[2])
read = texts.get
out = {}
for key, fn, text in (("a1", ex.check_a1, read("a1_count_protos.c")),
                      ("a1_start", ex.check_a1, a1_start),
                      ("a4", ex.check_a4, read("a4_bounce.c")),
                      ("a1_unchecked", ex.check_a1, read("unchecked")),
                      ("eth", ex.check_eth_bounds, read("parse_ethhdr.c"))):
    t = time.monotonic()
    r = fn(text)
    out[key] = [bool(getattr(r, "passed", False)), type(r).__name__, str(r)[:300],
                round(time.monotonic() - t, 1)]
print(json.dumps(out), flush=True)
"""


#: A1's counting done with no bounds check: the verifier refuses it
UNCHECKED = """struct iphdr *iph = (void *)(eth + 1);
	u32 p = iph->protocol;
	u64 *n = proto_count.lookup(&p);
	if (n)
		__sync_fetch_and_add(n, 1);"""


def test_checkers_through_the_daemon(learners, daemon):
    """Lesson 02's C checker and assignments A1, A4 as a learner: the solutions pass (A4 in a
    real lab of the learner's in the daemon, frames bounced back to src), the starting code
    does not (the corpus's first wrong frame), nor a read with no bounds check (the verifier's
    refusal at the learner's line); nothing left."""
    require_hook("xdp")
    sys.path.insert(0, os.path.join(REPO, "tools"))
    from nbsrc.assignments import A1
    texts = {}
    for n in ("a1_count_protos.c", "a4_bounce.c", "parse_ethhdr.c"):
        with open(os.path.join(SOLUTIONS, n)) as f:     # (root's to read: sent as text)
            texts[n] = f.read()
    todo = "/* TODO 4: add 1 to this protocol's counter */"
    assert todo in A1
    texts["unchecked"] = A1.replace(todo, UNCHECKED)
    out = as_learner(learners[0], daemon, CHECKS, json.dumps(A1), json.dumps(texts))
    print({k: v[3] for k, v in out.items()})           # seconds per check
    assert out["a1"][0], out["a1"]
    assert not out["a1_start"][0] and out["a1_start"][1] == "CheckResult", out["a1_start"]
    assert "went wrong" in out["a1_start"][2]
    assert out["a4"][0] and "in a real lab" in out["a4"][2], out["a4"]
    assert out["eth"][0] and "agrees with the walker" in out["eth"][2], out["eth"]
    bad = out["a1_unchecked"]
    assert not bad[0] and "refused by the verifier" in bad[2] and "iph->protocol" in bad[2], bad
    assert all(not st.owner_alive() for st in daemon.labs())


# root's memory: a watched map's changes are bounded per request ------------------------------
#: every entry of a 4096-entry array written on each frame: 4096 changes a frame
EVERY_ENTRY = b"""#include <uapi/linux/bpf.h>
BPF_ARRAY(big, u64, 4096);

int touch_all(struct xdp_md *ctx)
{
    for (int i = 0; i < 4096; i++) {
        u32 k = i;
        u64 *v = big.lookup(&k);
        if (v)
            *v += 1;
    }
    return XDP_PASS;
}
"""


def test_watched_changes_are_bounded(agents):
    """A map watched frame by frame keeps every change in root's session process: a program
    that rewrites a whole map on every frame is refused once the request's changes pass
    WATCH_CHANGES_MAX (was: 4096 x 5,000 frames of entries kept, gigabytes), while the same
    program over fewer frames is answered (the control), change by change."""
    from pktlab.workshop import opsprogram
    a = agents(0)
    frame = bytes.fromhex("ff" * 6 + "02" + "00" * 5 + "0800") + bytes(50)
    most = opsprogram.WATCH_CHANGES_MAX // 4096
    for n, fine in ((most, True), (most + 1, False)):
        rest = opsprogram.pack([frame] * n)
        r = a.call("program", blob=EVERY_ENTRY + rest, source_len=len(EVERY_ENTRY),
                   hook="xdp", name="all.c", frames_len=len(rest), watch="big")
        if fine:
            assert r["ok"], r
            assert r["result"].get("watch"), str(r["result"]["attempt"])[-800:]
            each = r["result"]["watch"]["each"]
            assert len(each) == n and all(len(c[0]) == 4096 for c in each), len(each)
        else:
            assert not r["ok"] and "changed" in r["message"], str(r)[:300]
    assert a.ok("status")["you"]                 # the session goes on


def test_no_program_of_theirs_in_a_belt_lab(agents):
    """A belt's lab carries the belt's hooks only (opssockets.SessionBelt refuses pktlab's
    replay hooks and aside()): a learner's held program is refused there too, for attach and
    for a replay, and the belt still answers; the control: the same program attaches in a lab
    of theirs opened with open_lab."""
    require_hook("xdp")
    from pktlab.kernel.verdicts import WRAPPER_FUNC
    a = agents(0)
    belt = a.ok("belt_open", hooks=["tc-ingress"])      # no XDP of its own on the dut
    pid = _load(a, _wrapped())["result"]["id"]
    with open(MIXED, "rb") as f:
        cap = f.read()
    for do, blob in (("attach", b""), ("replay", cap)):
        r = a.call("program_lab", id=pid, do=do, lab=belt["lab"], blob=blob)
        assert not r["ok"] and "holds a belt" in r["message"], (do, str(r)[:300])
    assert _prog_on(belt["ns_dut"], belt["if_dut"]) != WRAPPER_FUNC[:15]
    assert a.ok("belt_request", lab=belt["lab"])
    lab = a.ok("open_lab", hooks=["xdp"])
    assert a.ok("program_lab", id=pid, do="attach", lab=lab["lab"])["attached"] == lab["lab"]
    assert _prog_on(lab["ns_dut"], lab["if_dut"]) == WRAPPER_FUNC[:15]


#: a program with a 24 MiB map (the learner loader allows 32 MiB of maps a program)
BIG_MAP = b"""#include <uapi/linux/bpf.h>
BPF_ARRAY(big, u64, 3 << 20);

int keep_big(struct xdp_md *ctx)
{
    u32 k = 0;
    u64 *v = big.lookup(&k);
    if (v)
        *v += 1;
    return XDP_PASS;
}
"""


def test_held_programs_maps_are_bounded(agents):
    """A connection holds at most HELD_MAP_BYTES of its programs' maps (kernel memory no cgroup
    caps here; was: 16 programs x 32 MiB a connection, 8 connections a learner): two 24 MiB
    programs kept (the control), a third refused, kept again once one is closed."""
    from pktlab.workshop import opsprogram
    assert 2 * (24 << 20) <= opsprogram.HELD_MAP_BYTES < 3 * (24 << 20)
    a = agents(0)
    ids = []
    for _ in range(2):
        r = _load(a, BIG_MAP)
        assert r["ok"] and r["result"]["id"], str(r)[:300]
        ids.append(r["result"]["id"])
    r = _load(a, BIG_MAP)
    assert not r["ok"] and "MiB of maps" in r["message"], str(r)[:300]
    assert a.ok("program", id=ids[0], close=True, frames_len=0)["closed"]
    assert _load(a, BIG_MAP)["result"]["id"]


#: a TC program that clones its frame to ifindex 1 (the loopback of whichever namespace the
#: test run happens in) and keeps bpf_clone_redirect's answer + 1000 (0: sent)
CLONE_OUT = b"""#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
BPF_ARRAY(rc, s64, 1);

int clone_out(struct __sk_buff *skb)
{
    u32 k = 0;
    s64 r = bpf_clone_redirect(skb, 1, 0) + 1000;
    rc.update(&k, &r);
    return TC_ACT_OK;
}
"""


def test_a_test_run_reaches_no_host_interface(agents):
    """A learner's test runs happen in pktlabd's session, whose network namespace was the
    host's: bpf_clone_redirect there put the learner's frame on a host interface (ifindex 1:
    the host's lo; any index works, eth0 too). Now they run in a namespace of their own with
    a lo that is down: the clone goes nowhere (dropped there), the program still ran (the control:
    its map has the answer, its verdict is TC_ACT_OK)."""
    require_hook("tc-ingress")
    import errno
    from pktlab.workshop import opsprogram
    a = agents(0)
    # an experimental EtherType (0x88b5): nothing in any stack takes it
    frame = bytes.fromhex("02" * 6 + "02" + "00" * 5 + "88b5") + bytes(50)
    rest = opsprogram.pack([frame])
    r = a.call("program", blob=CLONE_OUT + rest, source_len=len(CLONE_OUT), hook="tc-ingress",
               name="clone.c", frames_len=len(rest), maps=True)
    assert r["ok"] and r["result"].get("runs"), str(r)[:600]
    assert r["result"]["runs"][0][0] == 0                        # TC_ACT_OK: it ran
    got = r["result"]["maps"]["rc"]["0"]
    # 1000: sent on the host's lo; now the namespace's own lo, down, drops it (its noop
    # qdisc: NET_XMIT_CN) or refuses it (-ENETDOWN)
    assert got in (1000 + 2, 1000 - errno.ENETDOWN), got


def test_one_learners_test_runs_wait_for_each_other(agents, learners, daemon):
    """A test run cannot be stopped by the request's alarm, so one learner's test runs go one
    at a time over all their connections (a lock per learner, waited for): with that lock
    held (here by the test, as another connection of theirs would), their test run waits,
    and is answered once it is free; the other learner's is answered meanwhile (the control)."""
    import fcntl
    import threading
    from pktlab.workshop import opsprogram
    a, b = agents(0), agents(1)
    frame = bytes.fromhex("ff" * 6 + "02" + "00" * 5 + "0800") + bytes(50)
    rest = opsprogram.pack([frame] * 4)
    src = _demo().encode()
    args = dict(source_len=len(src), hook="xdp", name="demo.c", frames_len=len(rest))
    path = os.path.join(daemon.path + ".d", "locks", f"uid{learners[0].pw_uid}.testrun")
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    got = {}
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        t = threading.Thread(target=lambda: got.update(r=a.call("program", blob=src + rest,
                                                                   **args)))
        t.start()
        other = b.call("program", blob=src + rest, **args)     # not held up by a's lock
        assert other["ok"] and len(other["result"]["runs"]) == 4, str(other)[:300]
        t.join(timeout=5)
        assert t.is_alive(), f"a's test run did not wait for the lock: {str(got)[:200]}"
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    t.join(timeout=120)
    assert not t.is_alive() and got["r"]["ok"] and len(got["r"]["result"]["runs"]) == 4
