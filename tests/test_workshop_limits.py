"""What a learner's server is held to on this host, for real: `pktlab workshop up` with a
memory cap, two learners' servers started through the hub's REST API, their kernels.

- the rlimits the spawner sets (hubconf.SERVER_RLIMITS, RLIMIT_CORE 0) are on each learner's
  server and on the kernels it starts, as the learner sees them from inside their kernel;
- the memory watchdog: a learner whose kernel allocates past the cap has that kernel killed
  (the hub's log says so, `workshop status --json` counts it), while the other learner, under
  the cap, keeps theirs and its variables (the control).
"""

import json
import os
import pwd
import time

import pytest

from conftest import require_root
from kernelws import send
from test_workshop_hub import Up, _execute, _pktlab, _proc_status, _start_kernel, _start_servers

CAP_MB = 400
RLIMITS = {"Max processes": 768, "Max open files": 4096, "Max file size": 2 << 30,
           "Max core file size": 0}
MEASURED = os.environ.get("PKTLAB_LIMITS_MEASURE")     # a file: the numbers seen, as JSON


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    require_root()
    u = Up(tmp_path_factory.mktemp("wslimits"), 2, extra=("--memory-cap", str(CAP_MB)))
    try:
        _start_servers(u, u.names)
        u.kernels = {name: _start_kernel(u, name) for name in u.names}
        yield u
    finally:
        u.finish()


def _procs(uid, mark):
    """The pids of `uid`'s (real uid) processes whose command line holds `mark`."""
    return [pid for pid, _, fields in _proc_status(mark) if int(fields["Uid"].split()[0]) == uid]


def _limits(pid):
    out = {}
    for line in open(f"/proc/{pid}/limits").read().splitlines()[1:]:
        for name in RLIMITS:
            if line.startswith(name):
                soft, hard = line[len(name):].split()[:2]
                out[name] = (soft, hard)
    return out


def _status(up):
    r = _pktlab(up.env, "status", "--json", timeout=60)
    assert r.returncode == 0, r.stderr
    return {lr["user"]: lr for lr in json.loads(r.stdout)["learners"]}


def _vm(pid):
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read()
                  .splitlines() if ":" in line)
    return {k: fields[k].strip() for k in ("VmPeak", "VmSize", "VmRSS")}


def _send(up, user, kernel_id, code, pid):
    """`code` sent to a learner's kernel (process `pid`), not waited for: the kernel is killed
    while it runs, maybe before its "busy" is heard."""
    send(f"ws://127.0.0.1:{up.port}/user/{user}/api/kernels/{kernel_id}/channels", up.token,
         code, gone=lambda: not os.path.exists(f"/proc/{pid}"))


def test_rlimits_on_servers_and_their_kernels(up):
    for name in up.names:
        uid = pwd.getpwnam(name).pw_uid
        servers = _procs(uid, "jupyterhub-singleuser")
        kernels = _procs(uid, "ipykernel")
        assert len(servers) == 1 and len(kernels) == 1, (servers, kernels)
        for pid in servers + kernels:
            seen = _limits(pid)
            for what, value in RLIMITS.items():
                assert seen[what] == (str(value), str(value)), (name, pid, what, seen)
    # as the learner sees them, from their own kernel
    out, error = _execute(up, up.names[0], up.kernels[up.names[0]], """
import resource
print([resource.getrlimit(getattr(resource, n)) for n in
       ("RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_CORE")])
""")
    assert error is None, error
    assert out.strip() == str([(v, v) for v in RLIMITS.values()]), out


def test_over_the_cap_a_kernel_is_killed_under_it_one_lives(up):
    hog, calm = up.names
    uid = {n: pwd.getpwnam(n).pw_uid for n in up.names}
    before = _status(up)
    for name in up.names:              # the setup: both start under the cap
        mem = before[name]["memory"]
        assert 0 < mem["bytes"] < CAP_MB << 20 and mem["cap"] == CAP_MB << 20, before
        assert mem["killed"] == 0
    seen = {"before": {n: before[n]["memory"] for n in up.names},
            "vm": {n: {str(p): _vm(p) for p in _procs(uid[n], "ipykernel")
                       + _procs(uid[n], "jupyterhub-singleuser")} for n in up.names}}
    calm_kernel = _procs(uid[calm], "ipykernel")
    out, error = _execute(up, calm, up.kernels[calm], "kept = b'k' * (40 << 20); len(kept)")
    assert error is None and out.strip() == str(40 << 20)
    hog_kernel = _procs(uid[hog], "ipykernel")
    assert len(hog_kernel) == 1
    _send(up, hog, up.kernels[hog], f"big = b'h' * ({CAP_MB} << 20); len(big)", hog_kernel[0])
    deadline = time.monotonic() + 20
    while os.path.exists(f"/proc/{hog_kernel[0]}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not os.path.exists(f"/proc/{hog_kernel[0]}"), "the kernel over the cap lives on"
    # the learner under the cap: the same kernel, its variable still there
    assert _procs(uid[calm], "ipykernel") == calm_kernel
    out, error = _execute(up, calm, up.kernels[calm], "len(kept)")
    assert error is None and out.strip() == str(40 << 20), (out, error)
    # both servers still run (the server is not what the watchdog kills)
    assert len(_procs(uid[hog], "jupyterhub-singleuser")) == 1
    log = open(os.path.join(up.state, "jupyterhub.log")).read()
    said = [line for line in log.splitlines() if f"killed pid {hog_kernel[0]} " in line]
    assert said and f"pktlab workshop: {hog} used" in said[0] and "past their cap" in said[0]
    # killed for what the code allocated (a kernel alone is ~60 MB here): the code ran
    victim_mb = int(said[0].split(f"killed pid {hog_kernel[0]} (", 1)[1].split(" MB", 1)[0])
    assert victim_mb > CAP_MB // 2, said[0]
    after = _status(up)
    assert after[hog]["memory"]["killed"] >= 1 and after[calm]["memory"]["killed"] == 0
    seen["after"] = {n: after[n]["memory"] for n in up.names}
    seen["said"] = said[0]
    if MEASURED:
        with open(MEASURED, "w") as f:
            json.dump(seen, f, indent=2)


@pytest.mark.parametrize("cap", ["10", "lots", "2000000"])
def test_a_bad_memory_cap_exits_2_before_anything(tmp_path, cap):
    require_root()
    env = dict(os.environ, PKTLAB_WORKSHOP_DIR=str(tmp_path / "state"))
    r = _pktlab(env, "up", "--learners", "1", "--memory-cap", cap, timeout=60)
    assert r.returncode == 2 and "--memory-cap" in r.stderr, r
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not os.path.exists(tmp_path / "state")
