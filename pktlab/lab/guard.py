"""The attachment guard: pktlab attaches only to a lab's own interface, in that lab's
proven namespace; `lo` and the host's uplink are refused unless the caller names the interface
and allows it.
"""

import contextlib
import errno

from ..errors import LabError
from .state import NS_RE, STATE_DIR, LabState, namespace_verdict

#: interfaces pktlab refuses to attach to unless told explicitly (allow_host=True)
HOST_INTERFACES_REFUSED = ("lo",)


def _why_not_a_lab_interface(ifname, ns):
    if ns is None:
        what = ("the loopback interface" if ifname in HOST_INTERFACES_REFUSED else
                "a host interface")
        return (f"it is {what}, outside every pktlab lab, and attaching there would see (and "
                "could drop) the host's own traffic")
    m = NS_RE.match(ns)
    st = None
    if m:
        with contextlib.suppress(OSError, ValueError, TypeError):
            st = LabState.load(m.group(1))
    if st is None or st.ns(m.group(2)) != ns:
        return (f"namespace {ns} is not one of pktlab's labs (no state file in {STATE_DIR}); "
                "it may be someone else's, and pktlab attaches only inside namespaces it made")
    side = m.group(2)
    verdict = namespace_verdict(st, side)
    if verdict != "pktlab":
        return (f"namespace {ns} is named like lab {st.name} but pktlab cannot prove it made it "
                f"({verdict})")
    if ifname not in st.interfaces(side):
        return (f"{ifname} is not lab {st.name}'s interface in {ns} (those are "
                f"{', '.join(st.interfaces(side))})")
    return None


def check_interface(ifname, allow_host=False, ns=None):
    """Refuse an interface outside pktlab's own labs unless the caller names it and allows it.

    ns: the namespace the interface is in (None: the host's). Passes only for a lab's own
    interface in that lab's namespace, the namespace proven pktlab's by its netns cookie: an
    interface named like a lab's, in a namespace someone else made, is refused too."""
    why = _why_not_a_lab_interface(ifname, ns)
    if why is None or allow_host:
        return
    where = ifname if ns is None else f"{ifname} in namespace {ns}"
    raise LabError(errno.EPERM, f"attach to {where}: refused; {why}. Use a lab interface "
                                "(`pktlab lab status`), or name the interface and pass "
                                "allow_host=True if you really mean it")
