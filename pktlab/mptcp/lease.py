"""A leased program's ring, read by whoever holds the lease.

pktlab.kernel.bpf leases a compiled program from its cache: the next holder gets the same
program back (no recompiling when a notebook cell runs again). bcc opens a ring buffer's
callback on the program for good, so it is opened once per program, and delivers each record
(decoded) to the list of whoever holds the program now; a new holder starts by reading away
what the previous one left in the ring.

    open_sink(prog, "events", decode, sink)    # sink: a list the records are appended to
    prog.bpf.ring_buffer_poll(timeout_ms)
    close_sink(prog)
"""


def open_sink(prog, table, decode, sink):
    """Deliver `table`'s records, decode(data) each, to `sink` from now on."""
    rings = prog.__dict__.setdefault("_pl_sinks", {})
    if table not in rings:
        box = rings[table] = {"sink": None, "decode": decode}

        def deliver(_ctx, data, _size, box=box):
            if box["sink"] is not None:
                box["sink"].append(box["decode"](data))
        # bcc keeps the C callback alive in the table object only: keep that object, or the
        # first record calls freed memory (bcc's get_table() makes a new object each time)
        box["table"] = prog.bpf[table.encode()]
        box["table"].open_ring_buffer(deliver)
    rings[table]["sink"] = None
    prog.bpf.ring_buffer_poll(0)          # what a previous holder left unread goes
    rings[table].update(sink=sink, decode=decode)


def close_sink(prog, table):
    box = prog.__dict__.get("_pl_sinks", {}).get(table)
    if box is not None:
        box["sink"] = None
