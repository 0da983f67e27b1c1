"""A workshop's learner accounts: made, proven, used and removed by pktlab only.

    reg = Registry.load(state_dir)
    learner = create("pkl-1", reg)            # useradd: own group + pktlab-learners, locked
    copy_lessons(learner, lessons_dir)         # ~/lessons/NN-topic.ipynb, written as the learner
    archive(learner, "/var/lib/.../pkl-1.tar.gz")   # read as the learner, kept root-only
    remove(learner, reg)                       # its processes ended, userdel --remove

An account is a learner's only when pktlab's registry (learners.json in the workshop's state
directory, root-only) names it with the uid it has now and its comment is pktlab's: an account
of the same name that pktlab did not make is never used, changed or removed.

Learner accounts have no system password (shadow's `!`: `su`, `login` and ssh's password
method refuse them); their hub password is the hub's own (hash_password: scrypt, kept
root-only, checked by pktlab.workshop.hubside). Homes are 0700. The shell is bash, for the
notebook server's terminals, which run as the learner. No sudo: the accounts join only their
own group and the learners' group (the daemon socket's).

Whatever root does inside a learner's home (copying lessons, archiving their work) runs as the
learner (run_as): the home is theirs, and a symbolic link they planted must reach only what
they can reach themselves.
"""

import dataclasses
import hashlib
import hmac
import json
import os
import grp
import pwd
import re
import secrets
import signal
import subprocess
import sys
import time

from ..errors import EnvironmentProblem

GROUP = "pktlab-learners"
PREFIX = "pkl-"
COMMENT = "pktlab workshop learner"
LESSONS = "lessons"                   # the learner's copy: ~/lessons
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,11}-?$")
MAX_LEARNERS = 200
_LESSON_RE = r"^\d\d-[a-z0-9-]+\.ipynb$"
#: scrypt's cost: about 30 ms a check on this 2-CPU machine (a brute force at the login form
#: is hopeless anyway: 12 characters of 31 kinds)
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"    # no 0/o, 1/l/i: read aloud, typed by hand


def new_password():
    """A password a learner types from a sheet: xxxx-xxxx-xxxx, 12 of 31 characters."""
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return "-".join(chars[i:i + 4] for i in range(0, 12, 4))


def hash_password(password):
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return {"salt": salt.hex(), "scrypt": digest.hex(), **SCRYPT}


_DUMMY = None


def check_password(entry, password):
    """Is `password` the one `entry` (hash_password's) was made from? Constant time; an
    unknown user (entry None) costs the same scrypt."""
    global _DUMMY
    if entry is None:
        if _DUMMY is None:
            _DUMMY = hash_password(secrets.token_hex(8))
        entry, password = _DUMMY, "\0"
    try:
        digest = hashlib.scrypt(str(password).encode(), salt=bytes.fromhex(entry["salt"]),
                                dklen=32, n=entry["n"], r=entry["r"], p=entry["p"])
        return hmac.compare_digest(digest.hex(), entry["scrypt"])
    except (KeyError, TypeError, ValueError):
        return False


# the registry ---------------------------------------------------------------------------------
@dataclasses.dataclass
class Learner:
    user: str
    uid: int
    gid: int
    home: str

    @property
    def workdir(self):
        return os.path.join(self.home, LESSONS)


def write_private(path, text):
    """Write `path` as root-only (0600) through a temporary name; a reader never sees half."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class Registry:
    """learners.json: the accounts and the group pktlab made, with their ids."""

    def __init__(self, path, data=None):
        self.path = path
        self.data = data or {"group": None, "learners": {}}

    @classmethod
    def load(cls, state_dir):
        path = os.path.join(state_dir, "learners.json")
        try:
            with open(path) as f:
                return cls(path, json.load(f))
        except FileNotFoundError:
            return cls(path)

    def save(self):
        write_private(self.path, json.dumps(self.data, indent=2))

    def names(self):
        return sorted(self.data["learners"], key=_natural)

    def learner(self, user):
        """The Learner `user`, when pktlab's record and the system agree; else None."""
        rec = self.data["learners"].get(user)
        if rec is None:
            return None
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            return None
        if pw.pw_uid != rec["uid"] or pw.pw_gecos.split(",")[0] != COMMENT:
            return None
        return Learner(user, pw.pw_uid, pw.pw_gid, pw.pw_dir)


def _natural(name):
    m = re.search(r"(\d+)$", name)
    return (name[:m.start()], int(m.group(1))) if m else (name, 0)


def names_for(prefix, n):
    return [f"{prefix}{i}" for i in range(1, n + 1)]


def check_names(names, reg):
    """Refuse (before anything is made) a name taken by an account pktlab did not make."""
    for name in names:
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        if reg.learner(name) is None:
            raise EnvironmentProblem(
                f"workshop up: the account {name} (uid {pw.pw_uid}) exists and pktlab did not "
                "make it; pktlab never uses an account it cannot prove it made: pick another "
                "--prefix")


def ensure_group(reg):
    """The learners' group (the daemon socket's): made when missing, recorded as pktlab's."""
    try:
        return grp.getgrnam(GROUP).gr_gid
    except KeyError:
        pass
    _run(["groupadd", "--system", GROUP])
    gid = grp.getgrnam(GROUP).gr_gid
    reg.data["group"] = {"name": GROUP, "gid": gid}
    reg.save()
    return gid


def create(user, reg):
    """The learner account `user`: made now, or the one pktlab made before (kept, with its
    work). Its password stays locked; its home is 0700."""
    known = reg.learner(user)
    if known is None:
        _run(["useradd", "--create-home", "--home-dir", os.path.join("/home", user),
              "--shell", "/bin/bash", "--user-group", "--groups", GROUP,
              "--comment", COMMENT, user])
        pw = pwd.getpwnam(user)
        reg.data["learners"][user] = {"uid": pw.pw_uid, "created": time.time()}
        reg.save()
        known = reg.learner(user)
    else:
        _run(["usermod", "--append", "--groups", GROUP, user])
    _run(["usermod", "--lock", user])      # no system password, whatever was set since
    os.chmod(known.home, 0o700)
    return known


def remove(learner, reg):
    """End the learner's processes, then the account and its home (userdel --remove)."""
    kill_processes(learner.uid)
    r = subprocess.run(["userdel", "--remove", learner.user], capture_output=True, text=True)
    # 12: the mail spool was not there (the account and home are gone all the same)
    try:
        pwd.getpwnam(learner.user)
        gone = False
    except KeyError:
        gone = True
    if r.returncode not in (0, 12) or not gone:
        raise EnvironmentProblem(f"workshop down: userdel {learner.user} (exit "
                                 f"{r.returncode}): {r.stderr.strip()[-300:]}")
    reg.data["learners"].pop(learner.user, None)
    reg.save()


def remove_group(reg):
    """The learners' group, when pktlab made it and nobody is in it any more."""
    g = reg.data.get("group")
    if not g or reg.data["learners"]:
        return False
    try:
        entry = grp.getgrgid(g["gid"])
    except KeyError:
        reg.data["group"] = None
        reg.save()
        return True
    if entry.gr_name != GROUP or entry.gr_mem or \
            any(p.pw_gid == g["gid"] for p in pwd.getpwall()):
        return False
    _run(["groupdel", GROUP])
    reg.data["group"] = None
    reg.save()
    return True


def _run(argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise EnvironmentProblem(f"workshop: {' '.join(argv)}: {r.stderr.strip() or r.returncode}")
    return r


# working as the learner --------------------------------------------------------------------------
def run_as(learner, argv, **kw):
    """subprocess.run(argv) as the learner: their uid, their group only, their home."""
    env = {"HOME": learner.home, "USER": learner.user, "LOGNAME": learner.user,
           "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": os.environ.get("LANG", "C.UTF-8")}
    env.update(kw.pop("env", {}))
    return subprocess.run(argv, user=learner.uid, group=learner.gid, extra_groups=[],
                          cwd=learner.home, env=env, **kw)


_COPY = r"""
import os, re, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, mode=0o700, exist_ok=True)
for name in sorted(os.listdir(src)):
    if re.match(sys.argv[3], name) and not os.path.lexists(os.path.join(dst, name)):
        shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
        print(name)
"""


def copy_lessons(learner, lessons_dir):
    """The lessons as shipped (NN-topic.ipynb only) into ~/lessons, written by the learner;
    a copy already there is their work and is kept. Returns the names copied."""
    r = run_as(learner, [sys.executable, "-I", "-c", _COPY, lessons_dir, learner.workdir,
                         _LESSON_RE], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise EnvironmentProblem(f"workshop up: copying the lessons for {learner.user}: "
                                 f"{r.stderr.strip()[-300:]}")
    return r.stdout.split()


def archive(learner, path):
    """The learner's home as a tar.gz at `path` (root-only, 0600): tar runs as the learner,
    so it reads what they can, and root writes the file. Caches are left out."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        r = run_as(learner, ["tar", "-czf", "-", "--exclude=./.cache", "-C", learner.home, "."],
                   stdout=fd, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(fd)
    # 1: "file changed as we read it" (a server still saving): the archive is whole
    if r.returncode not in (0, 1):
        raise EnvironmentProblem(f"workshop down: archiving {learner.home}: "
                                 f"{r.stderr.strip()[-300:]}")
    return path


# processes --------------------------------------------------------------------------------------
def processes_of(uid):
    """[(pid, cmd)] of every process with `uid` among its real, effective or saved uids."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                uids = next(line for line in f if line.startswith("Uid:")).split()[1:4]
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, StopIteration):
            continue
        if str(uid) in uids:
            out.append((int(entry), cmd))
    return out


def kill_processes(uid, timeout=5.0):
    """SIGKILL every process of `uid` (a learner pktlab made), until none is left."""
    deadline = time.monotonic() + timeout
    while True:
        procs = processes_of(uid)
        if not procs or time.monotonic() > deadline:
            return [p for p, _ in procs]
        for pid, _ in procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
