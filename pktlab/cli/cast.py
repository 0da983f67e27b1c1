"""`pktlab cast PCAP [--json]`: the userspace walk of every frame, layer by layer.

Text: per frame a header line (number, time, sizes, where and why the walk stopped), then each
layer with its fields. --json: one JSON document on stdout and nothing else there:

    {"file", "count", "frames": [{"index", "ts_ns", "caplen", "wirelen", "truncated",
      "synthesized_eth", "linktype", "interface", "status", "layer", "l7",
      "layers": [{"name", "key", "offset", "length", "fields": [...], "note"?}],
      "record": {...pl_record fields...}}],
     "problems": [{"frame", "offset", "reason", "fatal"}]}

The document is written frame by frame, so a capture of millions of frames does not have to fit
in memory. Exit status: 0 when the whole capture was read; 2 when the file is missing or not a
capture, when not one frame could be read (only refused link types, a pcapng without an
interface block, cooked headers cut short, a header and no frames), or when reading stopped at
damage (the frames before it are still shown). The 2 comes with one line on stderr: the file,
the cause, what to do. Frames of link types pktlab refuses, among readable ones, are listed as
problems and skipped, which is not a failure.

Also runnable as ``python -m pktlab.cli.cast FILE [--json]``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
from typing import Optional, TextIO

__all__ = ["run", "main", "frame_doc"]


def _ts(ts_ns: int) -> str:
    try:
        sec, ns = divmod(ts_ns, 1_000_000_000)
        t = _dt.datetime.fromtimestamp(sec, tz=_dt.timezone.utc)
        return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"
    except (OverflowError, OSError, ValueError):
        return f"{ts_ns} ns"


def frame_doc(frame, w) -> dict:
    """The JSON form of one frame and its walk (``w``: pktlab.packet.walker.Walk)."""
    from ..packet.views import layer_to_dict

    r = w.record
    return {
        "index": frame.index, "ts_ns": frame.ts_ns, "caplen": frame.caplen,
        "wirelen": frame.wirelen, "truncated": frame.truncated,
        "synthesized_eth": frame.synthesized_eth, "linktype": frame.linktype,
        "interface": frame.interface, "offset": frame.offset,
        "status": r.status_name, "layer": r.layer_name, "l7": r.l7_name,
        "layers": [layer_to_dict(ly) for ly in w.layers],
        "record": r.to_dict(),
    }


def _frame_text(frame, w, color: bool) -> list[str]:
    from ..packet.views import LAYER_COLOURS

    r = w.record
    head = (f"frame {frame.index}  {_ts(frame.ts_ns)}  {len(frame.data)} bytes"
            f" (captured {frame.caplen}, on the wire {frame.wirelen})  {r.status_name} at "
            f"{r.layer_name}")
    if r.l7:
        head += f"  L7 {r.l7_name}"
    lines = [head]
    if frame.truncated:
        lines.append(f"  note: the capture kept {frame.caplen} of {frame.wirelen} bytes (snaplen)")
    if frame.synthesized_eth:
        lines.append(f"  note: Ethernet header synthesized from a {frame.original_linktype_name} "
                     "capture (bytes 0-13 were not on the wire)")
    for ly in w.layers:
        title = f"{ly.name} @{ly.offset} ({ly.length} bytes)"
        if color:
            title = f"\x1b[{LAYER_COLOURS.get(ly.key, ('', '0'))[1]}m{title}\x1b[0m"
        lines.append("  " + title + (f"  [{ly.note}]" if ly.note else ""))
        for f in ly.fields:
            lines.append(f"    {f.name:<18} {f.display}")
    return lines


def run(pcap_path, as_json: bool = False, out: TextIO = sys.stdout, *,
        err: Optional[TextIO] = None, color: bool = False, limit: Optional[int] = None) -> int:
    """Walk every frame of ``pcap_path`` and print it; returns the exit status (0 or 2)."""
    from ..packet.capture import read_frames
    from ..packet.survey import no_frames_message
    from .console import one_line
    from ..errors import PktlabError
    from ..packet import walk

    err = sys.stderr if err is None else err

    def fail(msg):                  # one line, whatever the file's name holds; exit status 2
        err.write(f"pktlab cast: {one_line(msg)}\n")
        return 2
    path = os.fspath(pcap_path)
    if not os.path.exists(path):
        return fail(f"no such capture: {path}; check the path (the bundled corpus is in pcaps/, "
                    "listed in pcaps/MANIFEST.json)")
    if os.path.isdir(path):
        return fail(f"{path} is a directory; name one .pcap or .pcapng file in it")
    problems: list = []
    count = 0
    first = True
    try:
        if as_json:
            out.write('{"file": ' + json.dumps(path) + ', "frames": [')
        for fr in read_frames(path, on_error=problems.append):
            if limit is not None and count >= limit:
                break
            w = walk(fr.data)
            count += 1
            if as_json:
                out.write(("\n" if first else ",\n") + json.dumps(frame_doc(fr, w)))
            else:
                if not first:
                    out.write("\n")
                out.write("\n".join(_frame_text(fr, w, color)) + "\n")
            first = False
        if as_json:
            out.write('\n], "count": ' + str(count) + ', "problems": '
                      + json.dumps([{"frame": p.frame, "offset": p.offset, "reason": p.reason,
                                     "fatal": p.fatal} for p in problems]) + "}\n")
        elif problems:
            out.write(f"\n{len(problems)} problem(s):\n")
            for p in problems:
                # a file name that is not UTF-8 is shown escaped, not a UnicodeEncodeError
                out.write(f"  {one_line(p.message())}\n".encode("utf-8", "backslashreplace")
                          .decode("utf-8"))
    except PktlabError as e:          # e.g. the file vanished or became unreadable mid-way
        return fail(str(e))
    if count == 0:                  # nothing to show is never a success, whatever the cause
        return fail(no_frames_message(path, problems))
    fatal = [p for p in problems if p.fatal]
    if fatal:
        return fail(f"{fatal[0].message()}; {count} frame(s) before it were shown; re-capture "
                    "or repair the file (editcap) to read the rest")
    return 0


def main(argv=None) -> int:
    from .args import count
    ap = argparse.ArgumentParser(prog="pktlab cast",
                                 description="The userspace walk of every frame, layer by layer.")
    ap.add_argument("pcap", help="a .pcap or .pcapng file")
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    ap.add_argument("--color", action="store_true", help="colour the layer titles (ANSI)")
    ap.add_argument("--limit", type=count, default=None, help="stop after this many frames")
    a = ap.parse_args(argv)
    try:
        rc = run(a.pcap, as_json=a.json, out=sys.stdout, color=a.color, limit=a.limit)
        sys.stdout.flush()
        return rc
    except BrokenPipeError:           # `pktlab cast x.pcap | head`: the reader left; stop quietly
        from .console import EXIT_PIPE, quiet_stdout
        quiet_stdout()
        return EXIT_PIPE
    except KeyboardInterrupt:
        sys.stderr.write("pktlab cast: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
