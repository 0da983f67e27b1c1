"""The TIME_WAIT trap of a socket-lookup firewall, and its fix (lesson 09).

    broken = close_through("sk_lookup")     # one connection, the server closes first
    fixed = close_through("skc_lookup")
    both = timewait_trap()                  # {"sk_lookup": ..., "skc_lookup": ...}
    print(format_timewait(both))

The story, on one connection through the firewall of pktlab.sockets.conntrack: the server
closes first. Its socket sends a FIN, the client's kernel acknowledges it, and the closed
socket lives on as a timewait mini-socket (in its FIN_WAIT2 substate: /proc/net/tcp and `ss`
say FIN-WAIT-2; to BPF its state is TIME_WAIT). Then the client closes too: its FIN must
reach that mini-socket, which answers with the last ACK.

- sk_lookup: bpf_sk_lookup_tcp returns full sockets only; for a timewait socket it returns
  NULL, so the firewall drops the FIN as "no socket would take it". The client never gets
  its ACK: it stays in LAST_ACK and retransmits its FIN, and the server's side never reaches
  TIME_WAIT.
- skc_lookup: bpf_skc_lookup_tcp returns the timewait socket (bpf_sk_fullsock() is NULL for
  it): the FIN passes, the client's close completes within a round trip.

Both sockets live in this process (each made inside its side's namespace: a socket keeps
the namespace it was made in), so the demo needs no child process.
"""

import socket
import struct
import time

from ..lab import Lab, netns
from . import leftovers as _left
from .conntrack import TCP_STATES, ConntrackFirewall
from .flows import PORT

LAB_PREFIX = "pltw"
#: struct tcp_info: tcpi_state is byte 0, tcpi_total_retrans the u32 at byte 100
TCP_INFO_LEN, TOTAL_RETRANS_AT = 104, 100
POLL_S = 0.01


def _tcp_info(sock):
    """(state name, total retransmits) of a socket, from TCP_INFO."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LEN)
    return TCP_STATES.get(raw[0], str(raw[0])), struct.unpack_from("I", raw, TOTAL_RETRANS_AT)[0]


def _proc_state(ns, port):
    """The state /proc/net/tcp of namespace `ns` shows for the connection with local port
    `port` (not the listener), or None. A timewait socket shows its substate there."""
    with netns.enter(ns):
        with open("/proc/thread-self/net/tcp") as f:
            rows = [line.split() for line in f.readlines()[1:]]
    for row in rows:
        local, remote, state = row[1], row[2], int(row[3], 16)
        if int(local.split(":")[1], 16) == port and remote.split(":")[1] != "0000":
            return TCP_STATES.get(state, str(state))
    return None


def _wait_for(fn, want, timeout):
    """Poll fn() until it returns `want` or `timeout` passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got == want or time.monotonic() >= deadline:
            return got
        time.sleep(POLL_S)


def _connect(lab, port):
    """A listener in dut, a connected client in src, the server's end accepted."""
    with netns.enter(lab.ns_dut):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with netns.enter(lab.ns_src):
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((lab.dut_ip4, port))
        listener.listen(1)
        listener.settimeout(2.0)
        client.settimeout(2.0)
        client.connect((lab.dut_ip4, port))
        server, _ = listener.accept()
    except BaseException:
        client.close()
        raise
    finally:
        listener.close()        # the listener goes too: the server keeps no socket open
    return server, client


def _close(lab, fw, wait, port):
    server, client = _connect(lab, port)
    try:
        server.close()                          # the server closes first: its FIN
        eof = client.recv(1)                    # the FIN passed (the client socket is full)
        before = _wait_for(lambda: _proc_state(lab.ns_dut, port), "FIN_WAIT2", 1.0)
        c0 = fw.counters()["server"]
        t0 = time.monotonic()
        client.shutdown(socket.SHUT_WR)         # the client's FIN, to the timewait socket
        state = _wait_for(lambda: _tcp_info(client)[0], "CLOSE", wait)
        close_s = time.monotonic() - t0 if state == "CLOSE" else None
        state, retrans = _tcp_info(client)
        after = _proc_state(lab.ns_dut, port)
        c1 = fw.counters()["server"]
        states = fw.states()["server"]
    finally:
        client.close()
    return {"server_saw_eof": eof == b"", "server_socket_before": before,
            "server_socket_after": after, "client_state": state, "closed": state == "CLOSE",
            "close_s": None if close_s is None else round(close_s, 4),
            "fin_retransmits": retrans,
            "dropped_at_server": c1["dropped"] - c0["dropped"],
            "no_socket_at_server": c1["no_socket"] - c0["no_socket"],
            "timewait_found": c1["not_fullsock"] - c0["not_fullsock"],
            "server_states": states}


def close_through(policy="sk_lookup", wait=1.0, port=PORT, make_lab=None):
    """One connection through the firewall under `policy` (sk_lookup or skc_lookup), closed
    by the server first; the client's close, as the firewall let it happen (module docstring).
    `wait`: how long the client's close may take before it counts as broken. make_lab: a
    context manager factory yielding the fresh lab (pktlabd: one of the caller's)."""
    if policy not in ("sk_lookup", "skc_lookup"):
        raise ValueError(f"TIME_WAIT demo policy {policy!r}: sk_lookup or skc_lookup")
    t0 = time.monotonic()
    with (make_lab() if make_lab else Lab(prefix=LAB_PREFIX)) as lab:
        name = lab.name
        with ConntrackFirewall(lab, policy) as fw:
            out = _close(lab, fw, wait, port)
        left = _left.inside(lab)
    out["policy"] = policy
    out["elapsed_s"] = round(time.monotonic() - t0, 3)
    out["leftovers"] = left + _left.after(name)
    return out


def timewait_trap(wait=1.0, port=PORT, make_lab=None):
    """The broken close (sk_lookup) and the fix (skc_lookup), each on a fresh lab."""
    return {p: close_through(p, wait, port, make_lab) for p in ("sk_lookup", "skc_lookup")}


def format_timewait(result):
    """What happened to the client's close under each policy, in words."""
    lines = []
    for policy, r in result.items():
        if r["closed"]:
            how = (f"closed in {r['close_s'] * 1000:.1f} ms: the FIN found the timewait socket "
                   f"({r['timewait_found']} lookup(s) found a socket that is not a full sock)")
        else:
            how = (f"still {r['client_state']} after the wait, {r['fin_retransmits']} FIN "
                   f"retransmit(s): {r['no_socket_at_server']} FIN(s) dropped at the server, "
                   "where the lookup found no (full) socket")
        lines.append(f"{policy}: server's socket {r['server_socket_before']} -> "
                     f"{r['server_socket_after']}; client's close {how}")
    return "\n".join(lines)
