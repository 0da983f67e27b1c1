"""Owned: the one base for "holds something, releases it once, is a context manager".

Labs, attachments, hook sets, generators and readers all hold something the kernel or the OS
keeps until it is given back (a namespace, an XDP or TC attachment, a program, a process). They
share three rules (STYLE.md, after libbpf-bootstrap's `hook_created` and scapy's `if
self.closed`):

- the thing is released by close(), at most once: a second close() does nothing, and so does a
  close() of something that never came to hold anything (a failed open);
- `closed` says whether it holds nothing;
- `with` releases it whatever happens in the block, and never swallows the exception.

A subclass calls self._hold() once it holds the thing and implements _release(). If it is
opened later than it is made (a Lab is made, then brought up), it overrides open(), which
`with` calls.
"""


class Owned:
    _held = False

    def _hold(self):
        """From now on close() has something to release."""
        self._held = True

    def _release(self):
        raise NotImplementedError

    @property
    def closed(self):
        return not self._held

    def open(self):
        """Acquire what this object holds (a no-op for objects that hold it from birth)."""
        return self

    def close(self):
        """Release what this object holds; safe to call twice, and before it held anything."""
        if not self._held:
            return
        self._held = False
        self._release()

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()
        return False
