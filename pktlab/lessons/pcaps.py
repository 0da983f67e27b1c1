"""The lessons' captures: the capture directory, a capture found by name, its frames, what is
in it, and the capture lesson 07 replays (an instructor's own, or a bundled one).
"""

import os

from .. import resources
from .html import HTML, esc, table

CAPTURE_ENV = "PKTLAB_CAPTURE"


def pcaps_dir():
    """The lessons' capture directory: $PKTLAB_PCAPS, else the bundled captures."""
    return resources.pcaps_dir()


def capture_path(name):
    """A capture by path, or by file name in the capture directory."""
    name = os.fspath(name)
    if os.path.exists(name):
        return name
    p = os.path.join(pcaps_dir(), name)
    if os.path.exists(p):
        return p
    raise FileNotFoundError(f"capture {name!r}: not a file, and not in {pcaps_dir()} "
                            f"(choose from: {', '.join(captures()[:12])}...)")


class Captures(list):
    """Capture file names (a list), shown in a notebook as a table: each file, its frames and
    what it shows (from the directory's MANIFEST.json, when it has one)."""

    def __init__(self, names, directory):
        super().__init__(names)
        self.directory = directory

    def _manifest(self):
        import json
        try:
            with open(os.path.join(self.directory, "MANIFEST.json")) as f:
                files = json.load(f).get("files", [])
        except (OSError, ValueError, AttributeError):
            return {}
        return {e.get("file"): e for e in files if isinstance(e, dict)}

    def _repr_html_(self):
        from .html import CSS
        files = self._manifest()
        rows = [[n, files.get(n, {}).get("frames", ""), files.get(n, {}).get("shows", "")]
                for n in self]
        return (CSS + f"<p>{len(self)} captures in <code>{esc(self.directory)}</code></p>" +
                table(["capture", "frames", "what it shows"], rows))

    def __repr__(self):
        return f"{len(self)} captures in {self.directory}: " + ", ".join(self)


def captures(directory=None):
    """Capture file names in the capture directory (pcap and pcapng), sorted: a list, which a
    notebook shows as a table of what each file holds."""
    d = directory or pcaps_dir()
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        names = []
    return Captures(sorted(n for n in names if n.endswith((".pcap", ".pcapng", ".cap"))), d)


def read(name, limit=None, problems=None):
    """The frames of a capture as pktlab Frame objects (``.data``, ``.index``, ``.ts_ns``...).

    Damaged files are read leniently: what could not be read goes to ``problems`` (a list)."""
    from ..packet.capture import read_frames
    out = []

    def on_error(p):
        if problems is not None:
            problems.append(p.message())
    for f in read_frames(capture_path(name), on_error=on_error):
        out.append(f)
        if limit and len(out) >= limit:
            break
    return out


def frames(name, limit=None):
    """The frames of a capture as bytes (each starts with an Ethernet header)."""
    return [f.data for f in read(name, limit)]


def capture_info(name):
    """What is in a capture: frames, link types, synthesized headers, problems, statuses."""
    from collections import Counter

    from ..packet.frames import linktype_name
    from ..packet.walker import walk_record
    problems = []
    fr = read(name, problems=problems)
    lts = Counter(linktype_name(f.linktype) for f in fr)
    st = Counter(f"{r.status_name}@{r.layer_name}" for r in (walk_record(f.data) for f in fr))
    synth = sum(f.synthesized_eth for f in fr)
    rows = [["file", capture_path(name)], ["frames", len(fr)],
            ["link types", ", ".join(f"{k} x{v}" for k, v in lts.items()) or "-"],
            ["Ethernet header synthesized", f"{synth} frames" if synth else "none"],
            ["walker: where the parse ended", ", ".join(f"{k} x{v}" for k, v in st.most_common())],
            ["problems reading it", "; ".join(problems) or "none"]]
    return HTML(table(["", ""], rows))


class Capture(str):
    """A capture's path (a str, for every helper that takes one) that says, in a notebook,
    which capture it is and why that one."""

    def __new__(cls, path, why):
        self = super().__new__(cls, path)
        self.why = why
        return self

    def _repr_html_(self):
        return f"<p>capture <code>{esc(str(self))}</code>: {esc(self.why)}</p>"

    def __repr__(self):
        return f"{str(self)!r} ({self.why})"


def instructor_capture(path=None, default="mixed.pcap"):
    """The capture lesson 07 replays: ``path`` when the learner gives one (it always wins),
    else $PKTLAB_CAPTURE when the instructor set it, else ``default``. The result says which
    and why."""
    if path:
        why = "the path you gave"
        if os.environ.get(CAPTURE_ENV):
            why += f" (it wins over {CAPTURE_ENV}={os.environ[CAPTURE_ENV]})"
        return Capture(capture_path(path), why)
    if os.environ.get(CAPTURE_ENV):
        return Capture(capture_path(os.environ[CAPTURE_ENV]),
                       f"{CAPTURE_ENV} is set (the instructor's capture); give a path to use "
                       "another")
    return Capture(capture_path(default), f"the bundled default ({CAPTURE_ENV} is not set); "
                                          "give a path to use your own")
