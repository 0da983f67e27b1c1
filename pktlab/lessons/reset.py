"""A learner's copy of lessons back as shipped (`pktlab lessons reset [NN ...] [--all]`).

    reset(["02", "03"], workdir="work")      # -> Reset: what was put back, where the backup is
    reset(all_lessons=True, workdir="/home/learner3/lessons")

The shipped lessons are resources.lessons_dir()'s NN-topic.ipynb (committed without outputs).
For each lesson asked for, the learner's file of the same name in the working directory is
replaced by the shipped one, after a copy of it goes to ``<workdir>/.backup/<stamp>/`` (stamp:
the local time, 2026-12-02T013000; one folder per reset). A copy that is already as shipped is
left alone (no backup, nothing written), so a second reset changes nothing. A missing copy is
put back. Nothing else in the working directory is read, written or removed: not the learner's
other lessons, not their own files, not earlier backups.

Unknown lesson numbers are refused before anything is touched (ValueError, one line: the CLI
exits 2). Run as root on a directory someone else owns (a learner's, in a workshop), the reset
runs in a child process that has become the directory's owner (uid, gid, no other groups): a
symbolic link the learner planted (at the temporary name, at .backup) then reaches only what
the learner could reach anyway, and the files written are theirs.
"""

import dataclasses
import filecmp
import os
import re
import shutil
import time

from .. import resources

BACKUP = ".backup"
_LESSON = re.compile(r"^(\d\d)-[a-z0-9-]+\.ipynb$")


def shipped_lessons(directory=None):
    """{NN: file name} of the lessons as shipped."""
    d = directory or resources.lessons_dir()
    out = {}
    for name in sorted(os.listdir(d)):
        m = _LESSON.match(name)
        if m:
            out[m.group(1)] = name
    return out


def _numbers(numbers, shipped):
    """The lesson numbers asked for, as NN, each once, in order; unknown ones refused."""
    want, bad = [], []
    for n in numbers:
        text = str(n).strip()
        nn = text.zfill(2) if text.isdigit() and len(text) <= 2 else text
        if nn not in shipped:
            bad.append(text)
        elif nn not in want:
            want.append(nn)
    if bad:
        raise ValueError(f"lessons reset: no lesson {', '.join(bad)}; the lessons are "
                         f"{' '.join(shipped)} (or --all)")
    return want


@dataclasses.dataclass
class Reset:
    workdir: str
    reset: list = dataclasses.field(default_factory=list)       # replaced (a backup was kept)
    restored: list = dataclasses.field(default_factory=list)    # were missing, put back
    unchanged: list = dataclasses.field(default_factory=list)   # already as shipped
    backup: str = None                                          # the folder of this reset

    def to_dict(self):
        return dataclasses.asdict(self)

    def text(self):
        lines = []
        for name in self.reset:
            lines.append(f"reset {name} (your copy: {os.path.join(self.backup, name)})")
        lines += [f"restored {name} (there was no copy)" for name in self.restored]
        lines += [f"unchanged {name} (already as shipped)" for name in self.unchanged]
        if self.reset or self.restored:
            lines.append("in JupyterLab: File > Reload Notebook from Disk (or close and reopen "
                         "it) before going on, or saving it writes the old one back")
        return "\n".join(lines)


def _stamp_dir(workdir, now):
    stamp = time.strftime("%Y-%m-%dT%H%M%S", time.localtime(now))
    path = os.path.join(workdir, BACKUP, stamp)
    n = 2
    while os.path.exists(path):             # two resets in one second keep both backups
        path = os.path.join(workdir, BACKUP, f"{stamp}-{n}")
        n += 1
    return path


def _as_owner(workdir, fn):
    """fn() run as the owner of ``workdir`` when we are root and they are not: in a forked
    child that drops to their uid and gid first (its Reset, or its ValueError, comes back as
    data). Otherwise fn() here."""
    st = os.stat(workdir)
    if os.geteuid() != 0 or st.st_uid == 0:
        return fn()
    import json
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                            # the child: never returns
        code = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(st.st_gid, st.st_gid, st.st_gid)
            os.setresuid(st.st_uid, st.st_uid, st.st_uid)
            try:
                doc = {"ok": fn().to_dict()}
            except (ValueError, OSError) as e:
                doc = {"error": str(e)}
            os.write(w, json.dumps(doc).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    if not data:
        raise ValueError(f"lessons reset: could not reset as the owner of {workdir}")
    doc = json.loads(data)
    if "error" in doc:
        raise ValueError(doc["error"])
    return Reset(**doc["ok"])


def reset(numbers=(), all_lessons=False, workdir=None, now=None, shipped_dir=None):
    """Put the learner's copies of lessons ``numbers`` (or every lesson) back as shipped, in
    ``workdir`` (default: resources.default_workdir()); a Reset says what happened. As root on
    a directory someone else owns, the work is done as that owner (see _as_owner)."""
    src = shipped_dir or resources.lessons_dir()
    shipped = shipped_lessons(src)
    if all_lessons and numbers:
        raise ValueError("lessons reset: give lesson numbers or --all, not both")
    if not all_lessons and not numbers:
        raise ValueError("lessons reset: say which lessons (e.g. `pktlab lessons reset 02 03`) "
                         "or --all")
    want = list(shipped) if all_lessons else _numbers(numbers, shipped)
    workdir = os.path.abspath(workdir or resources.default_workdir())
    if not os.path.isdir(workdir):
        raise ValueError(f"lessons reset: {workdir} is not a directory (`make lab` makes "
                         "work/; --workdir names another)")
    return _as_owner(workdir, lambda: _reset(want, shipped, src, workdir, now))


def _reset(want, shipped, src, workdir, now):
    out = Reset(workdir)
    for nn in want:
        name = shipped[nn]
        mine, theirs = os.path.join(workdir, name), os.path.join(src, name)
        if os.path.islink(mine):
            raise ValueError(f"lessons reset: {mine} is a symbolic link; pktlab replaces "
                             "only regular files (move it away first)")
        if not os.path.exists(mine):
            _copy(theirs, mine, workdir)
            out.restored.append(name)
            continue
        if filecmp.cmp(mine, theirs, shallow=False):
            out.unchanged.append(name)
            continue
        if out.backup is None:
            out.backup = _stamp_dir(workdir, time.time() if now is None else now)
            os.makedirs(out.backup)
        kept = os.path.join(out.backup, name)
        shutil.copy2(mine, kept)
        _copy(theirs, mine, workdir)
        out.reset.append(name)
    return out


def _copy(src, dst, workdir):
    """Write the shipped file at dst through a temporary name: a reader never sees half."""
    tmp = os.path.join(os.path.dirname(dst), f".{os.path.basename(dst)}.pktlab-reset")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
