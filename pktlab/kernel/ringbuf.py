"""Read the hooks' per-CPU record rings in bulk, straight from their memory.

Every hook program writes its records into two BPF_F_MMAPABLE array maps (the layout and the
rules are in bpf_snippets/pktlab_common.h):

    ctl[cpu]                            struct pl_ctl: head, lost, seen[status] | tail
    events[cpu * slots + i % slots]     struct pl_record

The program owns `head` (records written), `lost` (records it refused because the ring was
full) and `seen`; Python owns `tail` (records consumed). A read takes each CPU's head, copies
the slots from tail up to it with numpy, and only then moves tail: the program never writes a
slot Python has not released, so a record read here is never half written. No syscall, no
per-record callback (bcc's ring buffer API calls a Python function per record, microseconds
each, which a replay at hundreds of thousands of packets per second cannot afford).

Records come out CPU by CPU, each CPU's in the order that CPU wrote them.
"""

import mmap
import os
import threading

import numpy as np

from ..errors import BPFError

PAGE = mmap.PAGESIZE

#: struct pl_ctl (bpf_snippets/pktlab_record.h); tests/test_record_layout.py checks it against C
CTL_DTYPE = np.dtype([("head", "<u8"), ("lost", "<u8"), ("seen", "<u8", (12,)),
                      ("busy", "<u8"), ("_pad0", "<u8"), ("tail", "<u8"), ("_pad1", "<u8", (7,))])


def _map(fd, nbytes, what, writable=True):
    size = (nbytes + PAGE - 1) // PAGE * PAGE
    prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
    try:
        return mmap.mmap(fd, size, mmap.MAP_SHARED, prot)
    except OSError as e:
        raise BPFError(f"map the {what} (fd {fd}, {size} bytes): {e}; pktlab needs root and "
                       "maps made with BPF_F_MMAPABLE") from e


class RingReader:
    """The record rings and counters of one program.

    ``events_fd`` may be None for a program that counts statuses without records; then only
    the counters (lost, seen) are there.
    """

    def __init__(self, ctl_fd, events_fd, ncpus, slots, record_dtype):
        if slots <= 0 or slots & (slots - 1):
            raise BPFError(f"record ring of {slots} slots: must be a power of two")
        self.ncpus = int(ncpus)
        self.slots = int(slots)
        self.mask = self.slots - 1
        self.record_dtype = np.dtype(record_dtype)
        self._fds, self._maps = [], []
        self._lock = threading.Lock()
        try:
            fd = os.dup(ctl_fd)     # our own references: close() order doesn't matter then
            self._fds.append(fd)
            m = _map(fd, self.ncpus * CTL_DTYPE.itemsize, "record ring control")
            self._maps.append(m)
            self._ctl = np.frombuffer(m, dtype=CTL_DTYPE, count=self.ncpus)
            self._rec = None
            if events_fd is not None:
                fd = os.dup(events_fd)
                self._fds.append(fd)
                n = self.ncpus * self.slots
                m = _map(fd, n * self.record_dtype.itemsize, "record ring", writable=False)
                self._maps.append(m)
                # as opaque fixed-size items: numpy copies those with memcpy, a structured
                # dtype field by field (25x slower for 1024 records, measured)
                self._void = np.dtype((np.void, self.record_dtype.itemsize))
                self._rec = np.frombuffer(m, dtype=self._void, count=n).reshape(
                    self.ncpus, self.slots)
        except BaseException:
            self._release()
            raise
        self.closed = False

    def pending(self):
        """Records written and not yet read, over all CPUs."""
        return int((self._ctl["head"] - self._ctl["tail"]).sum())

    def read(self):
        """Consume every published record; returns a copy as one array.

        One consumer at a time (the lock): two reads at once would copy the same slots."""
        with self._lock:
            return self._read()

    def _read(self):
        if self._rec is None:
            return np.empty(0, dtype=self.record_dtype)
        heads = self._ctl["head"].copy()        # first the heads, then the slots below them
        tails = self._ctl["tail"].copy()
        parts, done = [], []
        for cpu in np.flatnonzero(heads != tails):
            head, tail = int(heads[cpu]), int(tails[cpu])
            n = head - tail
            if not 0 < n <= self.slots:
                raise BPFError(f"record ring of CPU {cpu}: head {head}, tail {tail}; the "
                               "program and pktlab disagree on the ring's size")
            start = tail & self.mask
            end = start + n
            if end <= self.slots:
                parts.append(self._rec[cpu, start:end])
            else:
                parts.append(self._rec[cpu, start:])
                parts.append(self._rec[cpu, :end - self.slots])
            done.append((cpu, head))
        if not parts:
            return np.empty(0, dtype=self.record_dtype)
        # the copy, before any slot is released
        out = (parts[0].copy() if len(parts) == 1 else np.concatenate(parts)).view(
            self.record_dtype)
        tail_col = self._ctl["tail"]
        for cpu, head in done:
            tail_col[cpu] = head
        return out

    def lost(self):
        return int(self._ctl["lost"].sum())

    def seen(self):
        """{status: packets}, summed over CPUs, zero counts left out."""
        counts = self._ctl["seen"].sum(axis=0)
        return {i: int(v) for i, v in enumerate(counts) if v}

    def reset(self):
        """Drop what is waiting and zero the counters (between leases of a program, when it is
        attached nowhere: the kernel's counters are not written atomically)."""
        self._ctl["tail"] = self._ctl["head"]
        self._ctl["lost"] = 0
        self._ctl["seen"] = 0

    def _release(self):
        self._ctl = self._rec = None
        for m in self._maps:
            try:
                m.close()
            except BufferError:
                pass        # a caller still holds a view; the mapping goes with it
        for fd in self._fds:
            os.close(fd)
        self._maps, self._fds = [], []

    def close(self):
        if getattr(self, "closed", True):
            return
        self.closed = True
        self._release()
