"""The connection-tracking firewall: bpf_snippets/conntrack.bpf.c on both sides of a lab.

    with ConntrackFirewall(lab, "lru_hash", max_entries=256) as fw:
        ...traffic...
        fw.counters()["server"]["insert_failed"], fw.insert_errors(), fw.states()

One program object, two entry points sharing its maps: conntrack_server on the ingress of
dut's interface (drop TCP no socket would take) and conntrack_client on the ingress of src's
(replies only). The policy (POLICIES) is a value in the program's config map, so one compiled
program serves them all; the conntrack maps' size is compiled in (-DCT_MAX_ENTRIES), one
program per size. Every number the program and Python share (policies, counters, states) is
declared once, in bpf_snippets/conntrack.h, and read from there.

A firewall holds a leased program (pktlab.kernel.bpf: maps emptied here before use) and two
TC attachments; close() detaches both and gives the program back, once.
"""

import errno
import functools
import re

from .. import resources
from ..errors import BPFError
from ..kernel import bpf
from ..kernel.attach import TcAttachment
from ..owned import Owned

SOURCE = "conntrack.bpf.c"
HEADER = "conntrack.h"
#: the `evicted` set: distinct flows seen missing their entry (at most this many are counted)
EVICTED_ENTRIES = 16384
SIDES = ("server", "client")
#: TCP states by number (include/net/tcp_states.h), for the states the lookups found
TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
              6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
              11: "CLOSING", 12: "NEW_SYN_RECV"}

_DEFINE = re.compile(r"^[ \t]*#define[ \t]+CT_(\w+)[ \t]+(\d+)\b", re.M)


@functools.lru_cache(maxsize=None)
def defines():
    """Every numeric `#define CT_*` of conntrack.h, by name without the CT_ prefix."""
    with open(resources.snippet_path(HEADER)) as f:
        return {name: int(v) for name, v in _DEFINE.findall(f.read())}


def policies():
    """{policy name: its number}: none, hash, lru_hash, sk_lookup, skc_lookup."""
    return {k[len("POLICY_"):].lower(): v for k, v in defines().items()
            if k.startswith("POLICY_")}


def counter_names():
    """Counter names by index (CT_C_*), lower case: tcp, passed, dropped, inserted..."""
    names = {v: k[2:].lower() for k, v in defines().items() if k.startswith("C_")}
    return [names[i] for i in range(defines()["NCOUNTERS"])]


def check_policy(policy):
    if policy not in policies():
        raise ValueError(f"conntrack policy {policy!r}: choose one of "
                         f"{', '.join(policies())}")
    return policy


def load_program(max_entries):
    """Lease the firewall program with conntrack maps of `max_entries` (compiled once per
    size and process; pktlab.kernel.bpf.release gives it back)."""
    cflags = (f"-DCT_MAX_ENTRIES={int(max_entries)}", f"-DCT_EVICTED_ENTRIES={EVICTED_ENTRIES}")
    return bpf.compile_program(SOURCE, "conntrack_server", "SCHED_CLS", cflags)


def client_fd(prog):
    """The fd of the program's second entry point (conntrack_client), loaded from the same
    object so that it shares every map with conntrack_server."""
    b = prog.bpf
    with bpf._capture_stderr() as log:
        try:
            fn = b.load_func(b"conntrack_client", b.SCHED_CLS)
        except Exception as e:
            err = e
        else:
            err = None
    if err is not None:
        raise BPFError(f"load {SOURCE}:conntrack_client: the kernel refused it ({err})",
                       log=log["text"])
    return fn.fd


class ConntrackFirewall(Owned):
    """The firewall on a lab, under one policy (see the module docstring)."""

    MAPS = ("counters", "states", "insert_errno", "ct_hash", "ct_lru", "evicted")

    def __init__(self, lab, policy, max_entries=256):
        self.policy = check_policy(policy)
        self.max_entries = int(max_entries)
        if self.max_entries < 1:
            raise ValueError(f"max_entries {max_entries}: a map holds at least 1 entry")
        self.lab = lab
        self.prog, self._attached = None, []
        self._hold()
        try:
            self.prog = load_program(self.max_entries)
            self.reset()
            config = self.prog.table("config")
            config[config.Key(defines()["CFG_POLICY"])] = config.Leaf(policies()[self.policy])
            cfd = client_fd(self.prog)
            self._attached.append(TcAttachment(lab.ns_dut, lab.if_dut, self.prog.fd, "ingress",
                                               name="pktlab-ct-server"))
            self._attached.append(TcAttachment(lab.ns_src, lab.if_src, cfd, "ingress",
                                               name="pktlab-ct-client"))
        except BaseException:
            self.close()
            raise

    def reset(self):
        """Empty every map but config: a leased program may carry an earlier run's state."""
        for name in self.MAPS:
            self.prog.table(name).clear()

    # what the program counted --------------------------------------------------------------
    def counters(self):
        """{side: {counter: n}} summed over CPUs (side: server, client)."""
        t = self.prog.table("counters")
        names, n = counter_names(), defines()["NCOUNTERS"]
        return {side: {name: int(t.sum(t.Key(s * n + i)).value) for i, name in enumerate(names)}
                for s, side in enumerate(SIDES)}

    def states(self):
        """{side: {TCP state name: lookups that found a socket in it}} (socket policies)."""
        t = self.prog.table("states")
        n = defines()["NSTATES"]
        out = {}
        for s, side in enumerate(SIDES):
            got = {TCP_STATES.get(i, str(i)): int(t.sum(t.Key(s * n + i)).value)
                   for i in range(n)}
            out[side] = {k: v for k, v in got.items() if v}
        return out

    def insert_errors(self):
        """{errno name: failed inserts}, e.g. {"E2BIG": 1488}."""
        return {errno.errorcode.get(k.value, str(k.value)): int(v.value)
                for k, v in self.prog.table("insert_errno").items()}

    def entries(self):
        """Flows in the policy's conntrack map now (0 for the other policies)."""
        name = {"hash": "ct_hash", "lru_hash": "ct_lru"}.get(self.policy)
        return sum(1 for _ in self.prog.table(name).keys()) if name else 0

    def _release(self):
        errors = []
        while self._attached:
            try:
                self._attached.pop().close()
            except Exception as e:      # keep going: the other side must still be detached
                errors.append(e)
        if self.prog is not None:
            bpf.release(self.prog)
            self.prog = None
        if errors:
            raise errors[0]


def _connects(lab, port, timeout):
    """From src to dut: 'connected', 'refused' (a RST came back) or 'timeout' (dropped)."""
    import socket
    from ..lab import netns
    with netns.enter(lab.ns_src):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((lab.dut_ip4, port))
        return "connected"
    except ConnectionRefusedError:
        return "refused"
    except (socket.timeout, TimeoutError):
        return "timeout"
    finally:
        s.close()


def try_firewall(lab, prog_fd, port=7000):
    """A loaded firewall (a SCHED_CLS program's fd) at TC ingress of `lab`'s dut, an echo
    server there: (ok, what happened). It must let a connection to the listening port through
    and drop a SYN to a port where nothing listens (lesson 09's checker)."""
    from .flows import EchoServer
    with EchoServer(lab, port=port):
        with TcAttachment(lab.ns_dut, lab.if_dut, prog_fd, "ingress"):
            listening = _connects(lab, port, 2.0)
            closed = _connects(lab, port + 1, 1.0)
    if listening != "connected":
        return False, ("a connection to the port where the echo server listens did not work "
                       f"({listening}): the firewall drops packets a socket would take")
    if closed != "timeout":
        return False, ("a SYN to a port where nothing listens was not dropped (the client was "
                       f"{closed}): the firewall lets through packets no socket would take")
    return True, ("it loads, a connection to the listening port works, and a SYN to a closed "
                  "port is dropped")


def load_learner_firewall(source, name="lesson09.c", func="sk_lookup_fw"):
    """A learner's firewall (C text) through the learner loader (pktlab.kernel.loader: a
    restricted worker as pktlab-loader; this process only holds the fds): (the verifier's
    Report as pktlab verify makes it, a LearnerProgram or None). `func` is used when the text
    defines it, else the loader picks the program's one function."""
    from ..kernel import loader, verifier
    from ..kernel.progload import LoadRequest
    func = func if func in source else None
    data = source.encode()
    a, prog = loader.load(LoadRequest(data, name, "SCHED_CLS", func,
                                      (resources.snippets_dir(),)))
    try:
        return verifier.judge(a, name, "tc-ingress", data, func), prog
    except BaseException:
        if prog is not None:
            prog.close()
        raise
