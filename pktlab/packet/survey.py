"""Checking a capture before anything is built on it (the CLI's and replay()'s first step).

``check_path`` refuses a path that cannot hold a capture to replay (missing, a directory, a
FIFO...); ``survey`` reads the file once, leniently, and says what a replay of it would have
(``Survey``: readable frames, those a lab can send, the damage reading stopped at);
``no_frames_message`` says in one line why a capture gave no frame at all.
"""

from __future__ import annotations

import os
import shlex
import stat
from dataclasses import dataclass, field
from typing import Optional

from ..errors import CaptureError
from .capture import read_frames
from .frames import _FIX_CORRUPT, _REFUSAL_HINT, Problem

__all__ = ["Survey", "survey", "check_path", "no_frames_message", "SURVEY_PROBLEMS"]

ETH_HLEN = 14
_VLAN_TPIDS = (b"\x81\x00", b"\x88\xa8")
#: problems a Survey keeps word for word (the others are only counted)
SURVEY_PROBLEMS = 20
_FIX_CORRUPT_CLI = "re-capture the traffic, or repair the file (editcap, Wireshark's Export)"


def check_path(path) -> os.stat_result:
    """The capture's stat, or CaptureError when the path cannot hold a capture to replay:
    missing, a directory, or not a regular file (a FIFO or a device would block or never end,
    and a replay reads its capture twice: once to check it, once to send it)."""
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise CaptureError(f"no such capture: {p}; check the path (the bundled corpus is in "
                           "pcaps/, listed in pcaps/MANIFEST.json)") from None
    except OSError as e:
        raise CaptureError(f"capture {p}: cannot look at it ({e.strerror or e}); check the path "
                           "and that you may read it") from None
    if stat.S_ISDIR(st.st_mode):
        raise CaptureError(f"capture {p}: is a directory; name one .pcap or .pcapng file in it")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else
                "a character device" if stat.S_ISCHR(st.st_mode) else
                "a block device" if stat.S_ISBLK(st.st_mode) else
                "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise CaptureError(f"capture {p}: is {kind}, not a regular file; a replay reads its "
                           "capture twice (a check before the lab is built, then the sends): "
                           "save the capture to a file first")
    return st


def _next_step(p: Problem) -> str:
    """The problem's next step in a user's words (the reader's own hints speak to callers of
    read_frames)."""
    if not p.hint or p.hint == _FIX_CORRUPT:
        return _FIX_CORRUPT_CLI
    if p.hint == _REFUSAL_HINT:
        return ("capture on an Ethernet-like interface (or with `tcpdump -i any`, which writes "
                "cooked SLL), or convert the file")
    return p.hint


def no_frames_message(path, problems) -> str:
    """One line saying why a capture gave no frame at all: the file, the cause, the next step.

    ``problems``: what the lenient reader reported, in order; the first one is the cause (a
    file that is not a capture, a link type pktlab refuses, a pcapng without an interface...)."""
    if not problems:
        return (f"capture {path}: holds no frames, only a file header; capture some traffic "
                "into it (tcpdump -w), or pick a capture from pcaps/")
    p = problems[0]
    if p.fatal and p.frame is None:
        return f"{p.message()}; {_next_step(p)}"
    if p.fatal:
        return f"{p.message()}; no frame before it is readable; {_next_step(p)}"
    return f"{p.message()}; no frame in the file is readable; {_next_step(p)}"


@dataclass
class Survey:
    """What a capture holds for a replay, read once, leniently (``survey()``).

    ``frames``: readable frames (at most ``limit``); ``sendable``: of those, the frames a lab of
    MTU ``mtu`` can put on its wire (an Ethernet header at least, MTU + 14 bytes at most, 4 more
    with a VLAN tag: the injector's own rule); ``damage``: the fatal problem reading stopped at
    (None: the file was read to its end, or to ``limit``)."""
    path: str
    limit: Optional[int] = None
    mtu: Optional[int] = None
    frames: int = 0
    sendable: int = 0
    too_short: int = 0
    too_long: int = 0
    problems: list = field(default_factory=list)     # the first SURVEY_PROBLEMS of them
    nproblems: int = 0
    damage: Optional[Problem] = None

    @property
    def complete(self) -> bool:
        return self.damage is None

    def refusal(self, need_sendable: bool = True) -> Optional[str]:
        """One line (the file, the cause, the next step) when a replay of this capture would
        mean nothing; None when it can go ahead."""
        if self.frames == 0:
            return no_frames_message(self.path, self.problems)
        if need_sendable and self.mtu is not None and self.sendable == 0:
            parts = []
            if self.too_short:
                parts.append(f"{self.too_short} shorter than an Ethernet header (14 bytes), "
                             "which the kernel refuses to send")
            if self.too_long:
                parts.append(f"{self.too_long} longer than a lab with MTU {self.mtu} carries")
            which = (f"the first {self.frames}" if self.limit is not None and
                     self.frames >= self.limit else f"its {self.frames}")
            fix = ("raise the lab's MTU (--mtu, up to 9000)" if self.too_long else
                   f"`pktlab cast {shlex.quote(self.path)}` shows how pktlab parses them")
            return (f"capture {self.path}: none of {which} frame(s) can be sent on a lab: "
                    f"{'; '.join(parts)}; {fix}")
        return None

    def note(self) -> Optional[str]:
        """One line for a capture damaged part-way: what is replayed and what is not."""
        if self.damage is None or self.frames == 0:
            return None
        return (f"{self.damage.message()}; the {self.frames} frame(s) before it are replayed, "
                f"the rest of the file is not ({_FIX_CORRUPT_CLI} to replay all of it)")

    def to_dict(self) -> dict:
        return {"frames": self.frames, "sendable": self.sendable, "complete": self.complete,
                "damage": self.damage.message() if self.damage else None,
                "problems": self.nproblems}


_last_survey: dict = {}


def survey(path, limit: Optional[int] = None, mtu: Optional[int] = None) -> Survey:
    """Read a capture file once, leniently, and say what a replay of it would have.

    Cheap (the data-only reader, ~1.3 us a frame) and never raises for damage, only for a path
    that cannot be a capture (check_path) or cannot be opened. The last answer is kept for an
    unchanged file (same inode, size and mtime), so the CLI's check and replay()'s own cost one
    read between them."""
    p = os.fspath(path)
    st = check_path(p)
    key = (p, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, limit, mtu)
    if _last_survey.get("key") == key:
        return _last_survey["survey"]
    s = Survey(p, limit, mtu)

    def on_error(pr: Problem):
        s.nproblems += 1
        if len(s.problems) < SURVEY_PROBLEMS:
            s.problems.append(pr)
        if pr.fatal:
            s.damage = pr
    max_frame = mtu + ETH_HLEN if mtu else None
    frames = short = long_ = 0
    it = read_frames(p, on_error=on_error, data_only=True)
    try:
        for d in it:
            frames += 1
            n = len(d)
            if n < ETH_HLEN:
                short += 1
            elif max_frame is not None and n > max_frame and not (
                    n <= max_frame + 4 and d[12:14] in _VLAN_TPIDS):
                long_ += 1
            if limit is not None and frames >= limit:
                break
    finally:
        it.close()
    s.frames, s.too_short, s.too_long = frames, short, long_
    s.sendable = frames - short - long_
    _last_survey.clear()
    _last_survey.update(key=key, survey=s)
    return s
