"""What works here: the doctor's report (run once per kernel session) and the tables that show
it, the hooks in the order a packet meets them, and in_lab_thread(), where netlink works.

A hook the doctor could not prove here is never attached by the lessons. Set
``PKTLAB_PRETEND_MISSING=kprobe`` (or ``xdp,tc-ingress``, or ``all``) to see a lesson as a
learner without those hooks would.
"""

import functools
import os
import threading

from .html import HTML, esc, prose, table

HOOKS = ("xdp", "tc-ingress", "tc-egress", "kprobe")
WIRE_ORDER = ("tc-egress", "kprobe", "xdp", "tc-ingress")
#: the socket-end hooks (lesson 08): they see only real traffic to a real socket
SOCKET_HOOKS = ("cgroup-ingress", "socket-filter", "sk-skb", "recv")
#: every hook, in the order one request meets them, from src's wire to dut's application
BELT_ORDER = WIRE_ORDER + SOCKET_HOOKS
#: hooks on connection events, not packets (lesson 10)
CONNECTION_HOOKS = ("sock-ops",)
PRETEND_ENV = "PKTLAB_PRETEND_MISSING"


def in_lab_thread(fn, *args, **kwargs):
    """Call ``fn`` where netlink works: on pktlab's netlink thread when this thread runs an
    asyncio loop (a Jupyter kernel's main thread does), directly otherwise (pktlab.lab.nl.call).

    pktlab.lab.nl already does this for every netlink call; running a whole lesson step there as
    well keeps the steps of one notebook in order."""
    from ..lab import nl
    return nl.call(fn, *args, **kwargs)


def in_lab_thread_method(method):
    """Decorator: run the method with in_lab_thread()."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        return in_lab_thread(method, *args, **kwargs)
    return wrapper


_doctor = None
_doctor_lock = threading.Lock()


def _pretend_missing():
    v = os.environ.get(PRETEND_ENV, "").strip()
    if not v:
        return ()
    if v == "all":
        return HOOKS + SOCKET_HOOKS + CONNECTION_HOOKS
    return tuple(h.strip() for h in v.split(",") if h.strip())


def doctor(refresh=False):
    """The doctor's report (pktlab/doctor.py), run once per kernel session (about 8 s).

    Running it also compiles every hook program, which later cells then reuse."""
    global _doctor
    with _doctor_lock:
        if _doctor is None or refresh:
            from .. import doctor as d
            if os.geteuid() != 0:
                # doctor.run() would try a lab; say what is wrong without trying
                root = d._check_root().to_dict()
                report = {"ok": False, "kernel": os.uname().release, "checks": [root],
                          "hooks": {h: {"available": False, "via": None,
                                        "why": f"{root['detail']}; fix: {root['fix']}"}
                                    for h in HOOKS + SOCKET_HOOKS + CONNECTION_HOOKS}}
                _through_daemon(report)
            else:
                report, _ = in_lab_thread(d.run)
            for h in _pretend_missing():
                if h in report["hooks"]:
                    report["hooks"][h] = {
                        "available": False, "via": None,
                        "why": f"pretending it is missing ({PRETEND_ENV}="
                               f"{os.environ.get(PRETEND_ENV)}): this is what a learner on a "
                               "machine without it sees"}
            _doctor = report
        return _doctor


def _through_daemon(report):
    """Not root, but pktlab's workshop daemon listens: the lessons' kernel work is the
    daemon's (pl.open_lab makes a RemoteLab, the bench and MPTCP runs go through it), so the
    report is the doctor's as the daemon ran it (its probe labs yours, in your quota), marked
    as such. Falls back to the daemon's replay hooks when it cannot run the doctor."""
    from ..errors import PktlabError
    from ..workshop.client import Client, daemon_present
    if not daemon_present():
        return
    try:
        with Client() as c:
            path = c.path
            try:
                got, why = c.call("doctor")[0]["report"], ""
            except PktlabError as e:      # an older daemon, or your labs' quota is full
                got, why = None, str(e)
            hooks = c.hooks() if got is None else None
    except PktlabError:
        return
    if got is not None:
        report.clear()
        report.update(got)
    report["ok"] = bool(got["ok"]) if got is not None else True
    report["root"] = False
    report["through"] = path
    report["checks"] = [c for c in report["checks"] if c["name"] != "privileges"]
    report["checks"].insert(0, {
        "name": "workshop daemon", "ok": True, "required": False,
        "detail": f"you are {_user()} (uid {os.geteuid()}); pktlabd at {path} runs as root and "
                  "does the lessons' kernel work (labs, eBPF programs) in labs of your own"
                  + ("; the checks below are what it found on this machine" if got else
                     f"; it attaches the replay hooks (it could not run the doctor: {why})"),
        "fix": ""})
    if got is not None:
        return
    for h, info in hooks.items():
        report["hooks"][h] = {"available": info["available"], "via": info["via"],
                              "why": info["why"] + (" (workshop daemon)" if info["why"] else "")}
    for h in SOCKET_HOOKS + CONNECTION_HOOKS:
        report["hooks"][h]["why"] = f"the workshop daemon could not run the doctor: {why}"


def _user():
    import pwd
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def through_pktlabd():
    """The daemon's socket path when the doctor's report is pktlabd's (not root), else None."""
    return doctor().get("through")


def hook_available(hook):
    """True when the doctor proved ``hook`` here (it attached and recorded a frame)."""
    return bool(doctor()["hooks"].get(hook, {}).get("available"))


def why_not(hook):
    """Why ``hook`` is not available here, in the doctor's words ('' when it is)."""
    rep = doctor()
    info = rep["hooks"].get(hook)
    if info is None:
        return f"{hook!r} is not a pktlab hook (choose from {', '.join(HOOKS)})"
    if info["available"]:
        return ""
    why = info["why"]
    if rep.get("through") and "pktlabd" not in why and not why.startswith("pretending"):
        why += " (found by pktlabd, the workshop daemon)"
    failed = [c for c in rep["checks"] if not c["ok"] and getattr(c, "required", True)]
    if why.startswith("not tried") and failed:
        why += ": " + "; ".join(f"{c['name']}: {c['detail']} (fix: {c['fix']})" for c in failed)
    return why


def doctor_table(refresh=False):
    """The doctor as tables: every check with its fix, then every hook with how or why not."""
    rep = doctor(refresh)
    rows = []
    for c in rep["checks"]:
        mark = ('<span class="pll-ok">ok</span>' if c["ok"] else '<span class="pll-no">FAIL</span>', "")
        rows.append([mark, c["name"], (prose(c["detail"]), "pll-mono"), (prose(c["fix"]), "")])
    via = rep.get("through")
    body = (f"<h4>pktlab doctor: kernel {esc(rep.get('kernel', ''))}"
            + (" (through pktlabd, the workshop daemon)" if via else "") + "</h4>")
    body += table(["", "check", "detail", "fix"], rows, raw=True)
    body += hooks_table()._body()
    verdict = ("the lab can run here" if rep["ok"] else
               "the lab cannot run here: the FAIL lines above say what to fix")
    if via and rep["ok"]:
        verdict = ("the lab can run here through pktlabd: it does the kernel work (labs, "
                   "eBPF programs) in labs of your own")
    body += f'<p class="{"pll-ok" if rep["ok"] else "pll-no"}">{esc(verdict)}</p>'
    return HTML(body)


_WHERE = {
    "tc-egress": "src veth, clsact egress: the packet leaving (an skb)",
    "kprobe": "__netif_receive_skb_core on dut: a kernel function, reading the sk_buff",
    "xdp": "dut veth: the raw frame, before the kernel builds an skb (generic mode)",
    "tc-ingress": "dut veth, clsact ingress: the skb, after the stack untagged VLANs",
    "cgroup-ingress": "the lab server's cgroup v2: from the IP header, once the packet has a "
                      "socket",
    "socket-filter": "the server's socket (SO_ATTACH_BPF): from the TCP/UDP header",
    "sk-skb": "a sockmap holding the server's sockets: the payload only",
    "recv": "where the application receives (recvfrom and friends): the bytes it got",
}


class _HooksTable(HTML):
    def __init__(self, rows):
        self.rows = rows
        super().__init__(self._body())

    def _body(self):
        return "<h4>hooks (in alphabetical order)</h4>" + table(
            ["hook", "available", "how / why not", "where it sits"], self.rows, raw=True)


def hooks_table():
    """Each hook: available or not, how it attaches here or why it cannot. In alphabetical
    order on purpose: the order a packet meets them is an exercise (lessons 00 and 08)."""
    rep = doctor()
    through = " (through pktlabd)" if rep.get("through") else ""
    rows = []
    for h in sorted(BELT_ORDER):
        info = rep["hooks"].get(h)
        if info is None:
            continue
        ok = info["available"]
        how = (f"via {info['via']}{through}"
               + (f" — {info['why']}" if h == "kprobe" and info["why"] else "")
               if ok else why_not(h))
        rows.append([(f"<b>{esc(h)}</b>", ""),
                     ('<span class="pll-ok">yes</span>' if ok else '<span class="pll-no">no</span>', ""),
                     (prose(how), "" if ok else "pll-expl"), _WHERE[h]])
    return _HooksTable(rows)


def not_here(what, hook):
    """None when `what` can run here (root, and `hook` proven by the doctor), else the NotHere
    that says why: what a live lesson step returns instead of failing."""
    from .html import NotHere
    if os.geteuid() != 0:
        return NotHere(what, "loading eBPF programs needs root (run JupyterLab with `make lab`)")
    if not hook_available(hook):
        return NotHere(what, why_not(hook))
    return None
