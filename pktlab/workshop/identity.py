"""Who a connection is when every learner has the same uid: the hub's API token.

On Kubernetes (docs/kubernetes.md) every learner's pod runs as the same uid, so SO_PEERCRED
cannot tell learners apart. With `pktlabd --identity token --hub-api URL` a client sends its
JupyterHub API token (JUPYTERHUB_API_TOKEN: the hub gives one to every single-user server, and
its kernels inherit it) in the connection's first message:

    {"op": "hello", "args": {"token": TOKEN}}

and the session asks the hub who owns it (GET {hub_api}/user, "Authorization: token TOKEN").
From then on the connection is that hub user ("hub:NAME": their labs are tagged with it, their
quota, locks and `lab clean` go by it). No valid token, no service: the connection is refused
with a message saying why, before any op. The daemon's main loop never waits on the hub: the
session process (one per connection) asks, then tells the loop the name over its door (a
socketpair), and the loop counts that name's connections against the per-learner limit.

Before its hello a connection is nobody's, so no per-learner count bounds it: at most
WAITING_MAX wait for their hello (or the hub) at once, and when they or the daemon's total are
full, a new connection takes the place of one that has sent nothing for SILENT_S (pktlab's
client sends its hello at once): the oldest of the cgroup (a Kubernetes pod) holding the most
such places (put_out). A session tells the loop when its hello came (the door); from then on
it is never put out.

Tokens are never logged nor written: a successful lookup is remembered for token_cache_s in
STATE/tokens/ under the SHA-256 of the token (root only), so a notebook opening a few
connections asks the hub once; a revoked token stops working once its entry expires.
Root (uid 0: the instructor's `pktlab workshop status`) needs no token.
"""

import collections
import contextlib
import hashlib
import json
import os
import time
import urllib.error
import urllib.request

from . import protocol as P

#: how long a connection has to send its hello
HELLO_S = 10.0
#: connections waiting for their hello (or for the hub), at most at once
WAITING_MAX = 16
#: a connection that has sent nothing for this long may give its place to a new one
SILENT_S = 1.0
#: how long the hub has to answer who a token is
HUB_S = 5.0
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"
#: a hub user name pktlabd accepts (JupyterHub's are normalised; this only bounds them)
MAX_NAME = 128


def hub_user(hub_api, token, timeout=HUB_S):
    """The hub's name for `token`'s owner; P.Refused when the hub does not know it (or it is
    no user's), or cannot be asked. The token appears in no message."""
    req = urllib.request.Request(hub_api.rstrip("/") + "/user",
                                 headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            doc = json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        if e.code in (401, 403, 404):
            raise P.Refused("the hub does not accept this token (revoked, expired, or not a "
                            "JupyterHub API token): pktlabd serves only a learner the hub "
                            "knows; restart your server from the hub's control panel") from None
        raise P.Refused(f"the hub answered {e.code} when pktlabd asked who this token is; "
                        "try again, or ask your instructor") from None
    except (OSError, ValueError) as e:
        why = getattr(e, "reason", None) or type(e).__name__
        raise P.Refused(f"pktlabd cannot ask the hub who you are ({why}); try again in a "
                        "moment, or ask your instructor") from None
    if not isinstance(doc, dict):
        raise P.Refused("the hub's answer about this token is not a user (not a JSON object); "
                        "pktlabd serves learners the hub knows: ask your instructor")
    name = doc.get("name")
    if doc.get("kind", "user") != "user" or not isinstance(name, str) or \
            not 0 < len(name) <= MAX_NAME or "\0" in name:
        raise P.Refused("this token is not a learner's (the hub says it belongs to "
                        f"{str(doc.get('kind', 'no one'))[:20]!r}); pktlabd serves learners")
    return name


class Cache:
    """Token owners remembered briefly, by the token's SHA-256 (never the token)."""

    def __init__(self, state_dir, ttl):
        self.dir, self.ttl = os.path.join(state_dir, "tokens"), float(ttl)

    def _path(self, token):
        return os.path.join(self.dir, hashlib.sha256(token.encode()).hexdigest())

    def get(self, token):
        if self.ttl <= 0:
            return None
        try:
            with open(self._path(token)) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or not time.time() < doc.get("until", 0) <= \
                time.time() + self.ttl or not isinstance(doc.get("user"), str):
            return None
        return doc["user"]

    def put(self, token, user):
        if self.ttl <= 0:
            return
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        path = self._path(token)
        tmp = f"{path}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"user": user, "until": time.time() + self.ttl}, f)
        os.replace(tmp, path)


def lookup(cfg, token):
    cache = Cache(cfg.state_dir, cfg.token_cache_s)
    user = cache.get(token)
    if user is None:
        user = hub_user(cfg.hub_api, token)
        with contextlib.suppress(OSError):
            cache.put(token, user)
    return user


def _refuse(conn, message):
    with contextlib.suppress(OSError):
        P.send_msg(conn, {"ok": False, "error": {"kind": "refused", "message": message,
                                                 "errno": None, "log": ""}})


def identify(conn, peer, cfg, door):
    """The connection's first message must be a hello with a token the hub knows: the peer
    as that hub user, once the daemon's loop has counted the connection (door); None when
    refused (answered, and the connection is to be dropped)."""
    try:
        got = P.recv_msg(conn, 64 << 10, 0, partial_s=HELLO_S, idle_s=HELLO_S)
    except (TimeoutError, P.ProtocolError, OSError):
        got = None
        _refuse(conn, f"pktlabd here knows learners by their JupyterHub token: send it first "
                      f"(within {HELLO_S:g} s); pktlab's client does when {TOKEN_ENV} is set")
        return None
    if got is None:
        return None
    doc, _ = got
    args = doc.get("args") if isinstance(doc.get("args"), dict) else {}
    token = args.get("token")
    if doc.get("op") != "hello" or not isinstance(token, str) or not token:
        _refuse(conn, f"pktlabd here knows learners by their JupyterHub token, and this "
                      f"connection sent none: set {TOKEN_ENV} (JupyterHub sets it in every "
                      "learner's server and kernels) and connect again")
        return None
    if len(token) > 4096 or not token.isprintable():
        _refuse(conn, "this is not a JupyterHub API token")
        return None
    _tell_door(door, {"hello": True})         # spoke: its place is not given to another
    try:
        name = lookup(cfg, token)
    except P.Refused as e:
        _refuse(conn, str(e))
        return None
    finally:
        token = args = doc = None                       # not kept past here
    who = peer.as_hub_user(name)
    answer = _ask_door(door, name)
    if answer is not None:
        _refuse(conn, answer)
        return None
    P.send_msg(conn, {"ok": True, "result": hello_result(who, cfg)})
    return who


def _tell_door(door, doc):
    """A note to the daemon loop, no answer awaited."""
    if door is None:
        return
    with contextlib.suppress(OSError):
        door.settimeout(HELLO_S)
        door.send(json.dumps(doc).encode())


def _ask_door(door, name):
    """The daemon loop's word on this learner's connection: None (go on) or why not."""
    if door is None:
        return None
    door.settimeout(HELLO_S)
    try:
        door.sendall(json.dumps({"user": name}).encode())
        reply = json.loads(door.recv(4096) or b"null")
    except (OSError, ValueError):
        return "pktlabd is stopping; try again in a moment"
    return None if isinstance(reply, dict) and reply.get("ok") else \
        str((reply or {}).get("message") or "refused")


def hello_result(peer, cfg):
    return {"identity": cfg.identity, "uid": peer.uid, "user": peer.user}


def send_hello(sock, token):
    """The client's side: the token first, the daemon's answer (P.Refused when refused)."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):   # refused at the door:
        P.send_msg(sock, {"op": "hello", "args": {"token": token}})    # its answer waits
    got = P.recv_msg(sock, P.MAX_REPLY_JSON, P.MAX_REPLY_BLOB, idle_s=HUB_S + HELLO_S + 5)
    if got is None:
        raise P.DaemonGone("pktlabd closed the connection at the hello")
    doc, _ = got
    if not doc.get("ok"):
        P.raise_error(doc.get("error") or {})
    return doc.get("result")


def cgroup_of(pid):
    """The cgroup v2 path of process `pid` (a Kubernetes pod's own; "/" for every process of
    a plain host), else None."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        pass
    return None


def put_out(waiting, now):
    """(the session to put out to make room, why), or (None, None): of the `waiting` sessions
    (.spoke: its hello came, .t0: when it connected, .origin: its cgroup), the oldest that has
    sent nothing for SILENT_S, of the cgroup holding the most such."""
    silent = [s for s in waiting if not s.spoke and now - s.t0 >= SILENT_S]
    if not silent:
        return None, None
    counts = collections.Counter(s.origin for s in silent)
    heaviest = max(counts, key=counts.get)
    victim = min((s for s in silent if s.origin == heaviest), key=lambda s: s.t0)
    return victim, (f"silent for {now - victim.t0:.1f} s before its hello, put out to make "
                    f"room ({counts[heaviest]} silent from cgroup {heaviest or '?'})")
