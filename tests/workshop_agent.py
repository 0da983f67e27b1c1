"""A learner's side of pktlabd for tests/test_workshop_daemon.py: run as a learner's uid, it
reads one JSON command per line on stdin and answers one JSON line on stdout.

    {"cmd": "call", "op": "open_lab", "args": {...}, "conn": 0, "blob_file": "pcaps/x.pcap"}
    {"cmd": "connect"}                       -> {"conn": N}   (another connection)
    {"cmd": "close", "conn": N}
    {"cmd": "raw", "data_b64": "..."}        -> what the daemon answered to those bytes on a
                                                fresh connection, and whether it then closed it
    {"cmd": "flood", "n": 500}               -> requests as fast as they go on a fresh
                                                connection, each waiting for its answer
    {"cmd": "pipeline", "n": 5000}           -> requests sent without waiting for answers
    {"cmd": "pid"}
"""

import base64
import json
import os
import socket
import sys

from pktlab.workshop import protocol as P
from pktlab.workshop.client import Client, socket_path


def _blob(c):
    if c.get("blob_file"):
        with open(c["blob_file"], "rb") as f:
            data = f.read()
    else:
        data = base64.b64decode(c.get("blob_b64") or "")
    return data + base64.b64decode(c.get("tail_b64") or "")


def _raw(data):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(socket_path())
    s.settimeout(40)
    try:
        s.sendall(data)
    except OSError:
        pass              # refused before we sent (or while): its answer is still to be read
    try:
        got = P.recv_msg(s, P.MAX_REPLY_JSON, P.MAX_REPLY_BLOB, idle_s=40)
    except (OSError, P.ProtocolError, TimeoutError) as e:
        return {"reply": None, "recv_error": str(e), "closed": True}
    reply = got[0] if got else None
    s.settimeout(5)
    try:
        closed = s.recv(1) == b""
    except socket.timeout:
        closed = False                # still open 5 s after its answer
    except OSError:
        closed = True
    s.close()
    return {"reply": reply, "closed": closed}


def _flood(n):
    c = Client()
    done = 0
    try:
        for _ in range(n):
            c.call("status")
            done += 1
    except Exception as e:
        return {"done": done, "type": type(e).__name__, "message": str(e), "closed": c.closed}
    return {"done": done, "type": None, "message": None, "closed": c.closed}


def _pipeline(n):
    """n requests sent back to back, none waiting for its answer; then every answer read."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(socket_path())
    data = json.dumps({"op": "status", "args": {}}).encode()
    one = P.HEADER.pack(P.MAGIC, len(data), 0) + data
    try:
        s.sendall(one * n)
    except OSError:
        pass                              # cut off while still sending: the answers say so
    answers, last = 0, None
    while True:
        try:
            got = P.recv_msg(s, P.MAX_REPLY_JSON, P.MAX_REPLY_BLOB, idle_s=30)
        except (OSError, P.ProtocolError, TimeoutError):
            got = None
        if got is None:
            break
        doc = got[0]
        if doc.get("ok"):
            answers += 1
        else:
            last = doc["error"]
    s.close()
    return {"answered": answers, "error": last}


def main():
    conns = {0: Client()}
    for line in sys.stdin:
        c = json.loads(line)
        try:
            cmd = c["cmd"]
            if cmd == "call":
                res, blob = conns[c.get("conn", 0)].call(c["op"], c.get("args") or {}, _blob(c))
                out = {"ok": True, "result": res, "blob_len": len(blob)}
            elif cmd == "connect":
                n = max(conns) + 1
                conns[n] = Client()
                out = {"ok": True, "conn": n}
            elif cmd == "close":
                conns.pop(c["conn"]).close()
                out = {"ok": True}
            elif cmd == "raw":
                out = dict(_raw(base64.b64decode(c["data_b64"])), ok=True)
            elif cmd == "flood":
                out = dict(_flood(c["n"]), ok=True)
            elif cmd == "pipeline":
                out = dict(_pipeline(c["n"]), ok=True)
            elif cmd == "pid":
                out = {"ok": True, "pid": os.getpid(), "uid": os.getuid()}
            else:
                out = {"ok": False, "type": "unknown", "message": cmd}
        except Exception as e:
            out = {"ok": False, "type": type(e).__name__, "message": str(e)}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
