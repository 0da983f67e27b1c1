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
exits 2). Run as root on a learner's directory (a workshop), the files written take the
directory owner's uid and gid, so the learner can still save them.
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


def _owned_like(path, workdir):
    """Give ``path`` the working directory's owner when we are root and they differ."""
    if os.geteuid() != 0:
        return
    st = os.stat(workdir)
    if st.st_uid != 0 or st.st_gid != 0:
        os.chown(path, st.st_uid, st.st_gid)


def reset(numbers=(), all_lessons=False, workdir=None, now=None, shipped_dir=None):
    """Put the learner's copies of lessons ``numbers`` (or every lesson) back as shipped, in
    ``workdir`` (default: resources.default_workdir()); a Reset says what happened."""
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
            for d in (os.path.dirname(out.backup), out.backup):
                _owned_like(d, workdir)
        kept = os.path.join(out.backup, name)
        shutil.copy2(mine, kept)
        _owned_like(kept, workdir)
        _copy(theirs, mine, workdir)
        out.reset.append(name)
    return out


def _copy(src, dst, workdir):
    """Write the shipped file at dst through a temporary name: a reader never sees half."""
    tmp = os.path.join(os.path.dirname(dst), f".{os.path.basename(dst)}.pktlab-reset")
    try:
        shutil.copyfile(src, tmp)
        _owned_like(tmp, workdir)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
