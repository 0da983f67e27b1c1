#!/usr/bin/env python3
"""Load on pktlabd: N simulated learners, each a real client process under a uid of its own,
each opening a lab and replaying a capture, all at once.

    sudo .venv/bin/python tools/bench_workshop.py [--learners 30] [--hooks all]
         [--capture pcaps/mixed.pcap] [--rounds 1] [--socket PATH] [--json]

Without --socket a daemon is started for the run (on a socket in a temporary directory) and
stopped after; N throwaway system users (pktlab-bench-<hex>-NN) are made for the learners and
removed after, whatever happens. In one run:

1. every learner connects and opens a lab with the hooks (the daemon compiles each lab's
   programs: the time to open is reported);
2. one learner replays alone, three times, while the others' labs sit open: the time of one
   replay with nobody else working (the median);
3. every learner replays at once (the requests are written to all of them before any answer
   is read), `--rounds` times: the time of each replay, from its request to its answer.

Reported: every replay's disagreements, lost records and foreign records (a record of another
lab's frames would be foreign: cross-talk), the labs' names (distinct), the most replays in
flight at one moment, p50/p95 of the replay time against the one-learner time (the ratio:
both measured here, on the same machine, in the same run), and the daemon's memory (its main
process, and the sum over its session processes at the peak). Exit 0 when every replay agreed
and nothing was lost, 1 otherwise.

Kept out of `make test`: tests/test_workshop_daemon.py runs a 3-learner version.
"""

import argparse
import json
import os
import pwd
import secrets
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# the learner's side (run as the learner's uid) ---------------------------------------------------
def learner_main():
    """One learner: commands on stdin (open HOOKS, replay, quit), one JSON line per answer."""
    sys.path.insert(0, REPO)
    from pktlab.workshop.client import Client
    c = Client()
    lab = None
    with open(ARGS.capture, "rb") as f:
        capture = f.read()
    for line in sys.stdin:
        cmd = line.split()
        t = time.monotonic()
        try:
            if cmd[0] == "open":
                lab = c.open_lab(cmd[1])
                out = {"lab": lab["lab"], "via": lab["via"]}
            elif cmd[0] == "replay":
                doc = c.replay(capture, label=os.path.basename(ARGS.capture), lab=lab["lab"],
                               precise_ts=True)
                out = {"lab": doc["lab"], "packets": doc["packets"], "sent": doc["sent"],
                       "elapsed_s": doc["elapsed_s"],
                       "hooks": {h: {k: v[k] for k in ("seen", "agree", "explained", "disagree",
                                                       "lost", "foreign", "unmatched",
                                                       "ring_buffer_lost")}
                                 for h, v in doc["hooks"].items()}}
            else:
                break
            out.update(ok=True, start=t, end=time.monotonic())
        except Exception as e:
            out = {"ok": False, "error": f"{type(e).__name__}: {e}", "start": t,
                   "end": time.monotonic()}
        print(json.dumps(out), flush=True)
    c.close()


# the bench's side (root) ------------------------------------------------------------------------
class Learner:
    def __init__(self, user, socket_path, capture):
        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PKTLAB_SOCKET": socket_path,
               "PYTHONPATH": REPO, "LC_ALL": "C.UTF-8"}
        self.user = user
        self.proc = subprocess.Popen(
            ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
             sys.executable, os.path.abspath(__file__), "--learner-mode", "--capture", capture],
            cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(60)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def gather(learners, timeout):
    """Each learner's next answer, with the moment it arrived (select: none waits behind
    another's)."""
    out, arrived = {}, {}
    pending = {lr.proc.stdout: lr for lr in learners}
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit(f"bench: {len(pending)} learner(s) gave no answer in {timeout} s")
        ready, _, _ = select.select(list(pending), [], [], left)
        for f in ready:
            lr = pending.pop(f)
            line = f.readline()
            arrived[lr] = time.monotonic()
            out[lr] = json.loads(line) if line else {"ok": False, "error": "learner ended"}
    return out, arrived


def make_users(n):
    tag = secrets.token_hex(2)
    made = []
    try:
        for i in range(n):
            name = f"pktlab-bench-{tag}-{i:02d}"
            subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                            "--shell", "/usr/sbin/nologin", name], check=True,
                           capture_output=True, text=True)
            made.append(name)
    except BaseException:
        remove_users(made)
        raise
    return made


def remove_users(names):
    for n in names:
        subprocess.run(["userdel", n], capture_output=True)


def rss_kb(pid, field="VmRSS:", where="status"):
    try:
        with open(f"/proc/{pid}/{where}") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid):
    """The process's proportional share of its pages: what the sessions really add (each is
    forked from the daemon and shares its pages; RSS counts them once per process)."""
    return rss_kb(pid, "Pss:", "smaps_rollup")


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class Memory(threading.Thread):
    """The daemon's RSS, sampled: its main process, and its session processes together."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.stop = pid, threading.Event()
        self.main_peak = self.total_peak = self.sessions_at_peak = self.pss_peak = 0

    def run(self):
        while not self.stop.wait(0.5):
            kids = children(self.pid)
            main = rss_kb(self.pid)
            total = main + sum(rss_kb(k) for k in kids)
            self.main_peak = max(self.main_peak, main)
            if total > self.total_peak:
                self.total_peak, self.sessions_at_peak = total, len(kids)
                self.pss_peak = pss_kb(self.pid) + sum(pss_kb(k) for k in kids)


def start_daemon(tmp):
    path = os.path.join(tmp, "pktlabd.sock")
    log = open(os.path.join(tmp, "pktlabd.log"), "w")
    proc = subprocess.Popen([sys.executable, "-m", "pktlab.workshop.daemon", "--socket", path],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    sys.path.insert(0, REPO)
    from pktlab.workshop.client import daemon_present
    deadline = time.monotonic() + 60
    while not daemon_present(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bench: pktlabd did not start (see {log.name})")
        time.sleep(0.1)
    return proc, path


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))]


def in_flight(intervals):
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = best = 0
    for _, d in events:
        now += d
        best = max(best, now)
    return best


def judge(results):
    """Sums over every replay answer; the failures, each said."""
    tot = {"disagree": 0, "lost": 0, "foreign": 0, "unmatched": 0, "ring_buffer_lost": 0}
    failed = []
    for who, r in results:
        if not r.get("ok"):
            failed.append(f"{who}: {r.get('error')}")
            continue
        for h, v in r["hooks"].items():
            for k in tot:
                tot[k] += v[k]
        if r["sent"] == 0:
            failed.append(f"{who}: nothing sent")
    return tot, failed


def bench(args, socket_path, daemon_pid):
    from pktlab.workshop.client import Client
    users = make_users(args.learners)
    learners = []
    mem = Memory(daemon_pid)
    mem.start()
    try:
        learners = [Learner(pwd.getpwnam(u), socket_path, args.capture) for u in users]
        t0 = time.monotonic()
        for lr in learners:
            lr.send(f"open {args.hooks}")
        opened, _ = gather(learners, args.timeout)
        open_s = time.monotonic() - t0
        bad = [f"{lr.user.pw_name}: {r.get('error')}" for lr, r in opened.items() if not r["ok"]]
        if bad:
            raise SystemExit("bench: labs did not open: " + "; ".join(bad[:5]))
        labs = [r["lab"] for r in opened.values()]
        alone = []
        for _ in range(3):                        # one learner, the others' labs open and idle
            learners[0].send("replay")
            got, _ = gather(learners[:1], args.timeout)
            alone.append(got[learners[0]])
        times, intervals, answers = [], [], []
        for _ in range(args.rounds):
            t = time.monotonic()
            for lr in learners:
                lr.send("replay")
            got, arrived = gather(learners, args.timeout)
            for lr in learners:
                times.append(arrived[lr] - t)
                intervals.append((got[lr].get("start", t), got[lr].get("end", arrived[lr])))
                answers.append((lr.user.pw_name, got[lr]))
        with Client(socket_path) as root:
            status = root.status()
    finally:
        for lr in learners:
            lr.close()
        mem.stop.set()
        mem.join()
        remove_users(users)
    alone_s = statistics.median(r["end"] - r["start"] for r in alone)
    tot, failed = judge([("alone", r) for r in alone] + answers)
    p50, p95 = pct(times, 50), pct(times, 95)
    return {
        "learners": args.learners, "hooks": args.hooks, "capture": args.capture,
        "frames": answers[0][1].get("packets") if answers else None, "rounds": args.rounds,
        "open_all_s": round(open_s, 2), "alone_s": round(alone_s, 3),
        "p50_s": round(p50, 3), "p95_s": round(p95, 3), "max_s": round(max(times), 3),
        "ratio_p50": round(p50 / alone_s, 1), "ratio_p95": round(p95 / alone_s, 1),
        "in_flight_max": in_flight(intervals), "replays": len(answers),
        "distinct_labs": len(set(labs)), "clients_seen_by_daemon": status["clients"],
        **tot, "failed": failed,
        "daemon_rss_mb": {"main_peak": round(mem.main_peak / 1024, 1),
                          "with_sessions_peak": round(mem.total_peak / 1024, 1),
                          "with_sessions_pss_at_peak": round(mem.pss_peak / 1024, 1),
                          "sessions_at_peak": mem.sessions_at_peak},
    }


def text(doc):
    return "\n".join([
        f"{doc['learners']} learners, hooks {doc['hooks']}, {doc['frames']} frames of "
        f"{doc['capture']} each, {doc['rounds']} round(s)",
        f"  labs opened (all at once): {doc['open_all_s']} s; distinct labs: "
        f"{doc['distinct_labs']}",
        f"  one learner alone: {doc['alone_s']} s per replay",
        f"  all at once: p50 {doc['p50_s']} s (x{doc['ratio_p50']}), p95 {doc['p95_s']} s "
        f"(x{doc['ratio_p95']}), max {doc['max_s']} s; replays in flight at once: "
        f"{doc['in_flight_max']}",
        f"  disagree {doc['disagree']}, lost {doc['lost']}, foreign {doc['foreign']}, "
        f"unmatched {doc['unmatched']}, ring-buffer lost {doc['ring_buffer_lost']} over "
        f"{doc['replays']} replays" + (f"; FAILED: {doc['failed']}" if doc["failed"] else ""),
        f"  daemon RSS: main {doc['daemon_rss_mb']['main_peak']} MB; with its sessions "
        f"{doc['daemon_rss_mb']['with_sessions_peak']} MB at the peak "
        f"({doc['daemon_rss_mb']['sessions_at_peak']} sessions; their proportional share "
        f"(PSS), shared pages counted once: {doc['daemon_rss_mb']['with_sessions_pss_at_peak']}"
        " MB)"])


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--learners", type=int, default=30)
    p.add_argument("--hooks", default="all")
    p.add_argument("--capture", default=os.path.join(REPO, "pcaps", "mixed.pcap"))
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--socket", default=None, help="a running pktlabd (default: start one)")
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--json", action="store_true")
    p.add_argument("--learner-mode", action="store_true", help=argparse.SUPPRESS)
    ARGS = args = p.parse_args()
    if args.learner_mode:
        return learner_main()
    if os.geteuid() != 0:
        print("bench_workshop: needs root (it makes learner accounts)", file=sys.stderr)
        return 2
    args.capture = os.path.abspath(args.capture)
    sys.path.insert(0, REPO)
    proc = None
    tmp = tempfile.mkdtemp(prefix="pktlab-bench-")
    os.chmod(tmp, 0o755)
    try:
        if args.socket is None:
            proc, path = start_daemon(tmp)
            pid = proc.pid
        else:
            from pktlab.workshop.client import Client
            path = args.socket
            with Client(path) as c:
                pid = c.status()["pid"]
        doc = bench(args, path, pid)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(120)
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(doc, indent=2) if args.json else text(doc))
    ok = not doc["failed"] and not any(doc[k] for k in ("disagree", "lost", "foreign",
                                                           "unmatched", "ring_buffer_lost"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
