"""The pktlab exception family.

Every message names the object, the cause, and the next step, e.g.
"attach XDP to pl3f2ad1d: device busy; another program is attached in native mode; run
`pktlab lab clean`". Library code raises these; only the CLI prints and exits.
"""


class PktlabError(Exception):
    """Base of every error pktlab raises on purpose."""


class CaptureError(PktlabError, ValueError):
    """A capture file that cannot be read (names the file, frame number and byte offset)."""


class LabError(PktlabError, OSError):
    """A lab (namespaces, veth, attachment) could not be made, used or removed."""


class BPFError(PktlabError):
    """An eBPF program did not compile, load (verifier) or attach."""

    def __init__(self, message, log=""):
        super().__init__(message)
        #: the compiler's or the verifier's own words, when there are any
        self.log = log


class EnvironmentProblem(PktlabError):
    """This machine lacks something pktlab needs (root, bcc, BTF...); the message says the fix."""
