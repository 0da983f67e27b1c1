"""The lessons' captures: the capture directory, a capture found by name, its frames, what is
in it, and the capture lesson 07 replays (an instructor's own, or a bundled one).
"""

import os

from .. import resources
from .html import HTML, table

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


def captures(directory=None):
    """Capture file names in the capture directory (pcap and pcapng), sorted."""
    d = directory or pcaps_dir()
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.endswith((".pcap", ".pcapng", ".cap")))


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


def instructor_capture(default="mixed.pcap"):
    """The capture lesson 07 replays: $PKTLAB_CAPTURE when the instructor set it, else
    ``default`` (a path, or a name in the capture directory)."""
    return capture_path(os.environ.get(CAPTURE_ENV) or default)
