"""Read a BPF ring buffer of fixed-size records in bulk, straight from its memory.

bcc's ring buffer API calls a Python function per record, which costs microseconds each; a
replay at hundreds of thousands of packets per second cannot afford that. The ring buffer is
designed to be read from user memory (kernel/bpf/ringbuf.c): a consumer page we write, a
producer page we read, and the data pages mapped twice back to back so that a record that wraps
around the end is still contiguous. Every pktlab record has the same size, so the span between
the consumer and producer positions is an array of slots that numpy reads in one go.

Each slot: 8-byte header (u32 len with BUSY (1<<31) and DISCARD (1<<30) bits, u32 page offset),
then the record, rounded up to 8 bytes.
"""

import mmap
import os

import numpy as np

from .errors import BPFError

BUSY = 1 << 31
DISCARD = 1 << 30
PAGE = mmap.PAGESIZE


class RingReader:
    """Bulk reader of one ring buffer map. `read()` returns a numpy array of records."""

    def __init__(self, map_fd, size, record_dtype):
        if size & (size - 1) or size % PAGE:
            raise BPFError(f"ring buffer size {size}: must be a power-of-two multiple of {PAGE}")
        self.size = size
        self.mask = size - 1
        self.record_dtype = np.dtype(record_dtype)
        self.slot = (8 + self.record_dtype.itemsize + 7) & ~7
        self.slot_dtype = np.dtype([("len", "<u4"), ("pgoff", "<u4"), ("rec", self.record_dtype),
                                    ("_pad", "V%d" % (self.slot - 8 - self.record_dtype.itemsize))])
        fd = os.dup(map_fd)     # keep our own reference: close() order doesn't matter then
        try:
            self._cons = mmap.mmap(fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                                   offset=0)
            self._prod = mmap.mmap(fd, PAGE + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ,
                                   offset=PAGE)
        except OSError as e:
            os.close(fd)
            raise BPFError(f"map ring buffer (fd {map_fd}): {e}; pktlab needs root") from e
        self._fd = fd
        self._cons_pos = np.frombuffer(self._cons, dtype="<u8", count=1)
        self._prod_pos = np.frombuffer(self._prod, dtype="<u8", count=1)
        self._data = np.frombuffer(self._prod, dtype=np.uint8, offset=PAGE)
        self.closed = False

    def pending_bytes(self):
        return int(self._prod_pos[0]) - int(self._cons_pos[0])

    def read(self, max_records=None):
        """Consume every committed record (up to max_records); returns a copy as an array."""
        cons = int(self._cons_pos[0])
        prod = int(self._prod_pos[0])
        n = (prod - cons) // self.slot
        if max_records is not None:
            n = min(n, max_records)
        if n <= 0:
            return np.empty(0, dtype=self.record_dtype)
        start = cons & self.mask
        raw = self._data[start:start + n * self.slot].view(self.slot_dtype)
        lens = raw["len"]
        busy = np.flatnonzero(lens & BUSY)
        if busy.size:
            n = int(busy[0])     # a record still being written: stop before it
        out = raw["rec"][:n].copy()
        keep = (lens[:n] & DISCARD) == 0
        if not keep.all():
            out = out[keep]
        # release the slots only after copying them out
        self._cons_pos[0] = cons + n * self.slot
        return out

    def close(self):
        if self.closed:
            return
        self.closed = True
        del self._cons_pos, self._prod_pos, self._data
        self._cons.close()
        self._prod.close()
        os.close(self._fd)
