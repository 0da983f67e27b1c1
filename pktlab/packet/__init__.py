"""packet: bytes to records, and nothing of the kernel.

Lives here:

    headers    the declared header layouts and the dispatch table (options: TCP/IPv4 options,
               the record's TCP option walk among them)
    record     the record mirrored from bpf_snippets/pktlab_record.h
    walker     the casting walker, the Python twin of the C parser: one frame's record
    packing    the record's field order as the walker fills it, the fast path's pack functions
    bulk       the same records for many frames at once, the common ones vectorized (numpy)
    views      the layered walk of a frame (its headers and fields) and how it is shown
    frames     what reading a capture yields: frames, problems, link types
    capture    capture files read (pcap here, pcapng in pcapng); write: written
    survey     a capture checked before anything is built on it
    rewrite    frame rewriting

May import: pktlab's base modules (errors, progress, resources). Never lab, kernel or anything
above them: a learner casts bytes without root and without a kernel.

The room's front door, for what code outside it uses most:

    from pktlab.packet import walk_record, walk, read_frames
    walk_record(frame)          # the record pl_parse() fills for these bytes
    walk(frame)                 # the same, with every layer and field (a notebook shows it)
    for frame in read_frames("pcaps/mixed.pcap"): ...
"""

from .bulk import walk_records, walk_records_array
from .capture import count_frames, read_frames
from .frames import Frame, Problem
from .views import PacketView, Walk, walk
from .walker import walk_record
from .write import write_pcap, write_pcapng

__all__ = ["Frame", "PacketView", "Problem", "Record", "Walk", "count_frames", "read_frames",
           "walk", "walk_record", "walk_records", "walk_records_array", "write_pcap",
           "write_pcapng"]


def __getattr__(name):
    # Record is declared by bpf_snippets/pktlab_record.h, read on first use, not at import
    if name == "Record":
        from .record import Record
        return Record
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
