"""Lesson 08, the end of the belt: a live belt in a notebook, from src's wire to the application.

    belt = pl.open_belt("http")     # a lab, its cgroup, every hook the doctor proved here,
    belt                            #   a real server in dut; which hooks, and why not the others
    run = belt.request()            # one real request from a real client: a RequestBelt
    run.plot(), run.views()         # the conveyor belt; what each hook sees of the frame
    belt.l7_peek(run)               # the L7 guess at XDP (every header first) and at sk-skb
    belt.filter_inheritance(run)    # the socket filter: set on the listener, ran on accept()'s
    belt.late_insert()              # a reader blocked in recv() before its socket was in the map
    belt.chooser()                  # tick hooks on and off: a new request through those

A LiveBelt is owned like a LiveLab (pktlab/lessons/live.py): close_all() in the last cell, an
atexit handler, and a reaper process for a kernel that dies. A learner who is not root, with a
workshop daemon present, gets a RemoteBelt: the lab, its server and its hooks live in pktlabd
(pktlab/workshop/opssockets.py) on the belt's own connection, and every view is built here
from the data it returns (BeltRun.from_dict), the same views as root's. A hook the doctor could not prove
here is never attached; every view says why it is missing, and when nothing can run the
methods return that reason (NotHere) instead of failing.
"""

from ..owned import Owned
from .here import (BELT_ORDER, hook_available, in_lab_thread, in_lab_thread_method,
                   why_not)
from .html import CSS, HTML, NotHere, badge, esc, table
from .live import LAB_PREFIX, _open_labs, _register
from .reaper import start_reaper
from .results import RequestBelt


class LiveBelt(Owned):
    """Every hook the doctor proved here around a real `traffic` server (see the module
    docstring); falsy, with the reason in why(), when none can run."""

    def __init__(self, traffic="http", hooks="all"):
        from ..sockets.belt import parse_belt_hooks
        from ..sockets.apps import check_kind
        self.traffic = check_kind(traffic)
        self.requested = parse_belt_hooks(hooks)
        self.unavailable = {}
        self.hooks = ()
        self.belt = self.lab = None
        self.error = ""
        self._reaper = None
        _register(self, _open_labs)
        self._hold()
        self._open()

    @in_lab_thread_method
    def _open(self):
        from ..errors import PktlabError
        from ..lab import Lab
        from ..sockets.belt import Belt
        self.unavailable = {h: why_not(h) for h in self.requested if not hook_available(h)}
        hooks = tuple(h for h in self.requested if h not in self.unavailable)
        if not hooks:
            self.error = "none of the hooks asked for can run here"
            return
        try:
            self.lab = Lab(prefix=LAB_PREFIX).up()
            self._reaper = start_reaper(self.lab)
            self.belt = Belt(self.traffic, hooks, lab=self.lab).open()
            self.unavailable.update(self.belt.unavailable)
            self.hooks = self.belt.attached
        except (PktlabError, OSError) as e:
            self.error = f"the belt could not be set up: {e}"
            self.close()

    @in_lab_thread_method
    def _release(self):
        try:
            if self.belt is not None:
                self.belt.close()
        finally:
            try:
                if self.lab is not None:
                    self.lab.close()
            finally:
                if self._reaper is not None:
                    self._reaper.terminate()
                    self._reaper.wait(5)
                    self._reaper = None
                if self in _open_labs:
                    _open_labs.remove(self)

    def __bool__(self):
        return not self.closed and self.belt is not None and not self.belt.closed

    @property
    def name(self):
        return self.lab.name if self.lab is not None else None

    def why(self):
        """Why this belt is not live ('' when it is)."""
        if self:
            return ""
        if self.closed and not self.error:
            return "the belt is closed (the notebook's last cell closes it); re-run its cell"
        by_reason = {}
        for h, w in self.unavailable.items():
            by_reason.setdefault(w, []).append(h)
        parts = [self.error] if self.error else []
        parts += [f"{', '.join(hs)}: {w}" for w, hs in by_reason.items()]
        return "; ".join(parts) or "no hooks attached"

    def _repr_html_(self):
        rows = []
        for h in BELT_ORDER:
            if h in self.hooks and self:
                rows.append([(f"<b>{esc(h)}</b>", ""), (badge("agree", "attached"), ""),
                             self.belt.via.get(h, "")])     # a plain cell: table() escapes it
            elif h in self.unavailable:
                rows.append([(f"<b>{esc(h)}</b>", ""), (badge("disagree", "not available"), ""),
                             (esc(self.unavailable[h]), "pll-expl")])
        if self:
            srv = self.belt.server
            head = (f"<p><b>lab {esc(self.name)}</b>: a {esc(self.traffic)} server (pid "
                    f"{srv.pid}) on {esc(self.lab.dut_ip4)}:{srv.port} in {esc(self.lab.ns_dut)}"
                    f", in cgroup {esc(getattr(self.belt.cgroup, 'path', '(none)'))}; the "
                    f"client runs in {esc(self.lab.ns_src)}</p>")
        else:
            head = f'<div class="pll-why"><b>no live belt:</b> {esc(self.why())}</div>'
        return CSS + head + table(["hook", "", "how / why not"], rows, raw=True)

    def __repr__(self):
        if self:
            return f"<LiveBelt {self.name}: {', '.join(self.hooks)}>"
        return f"<LiveBelt not live: {self.why()}>"

    @in_lab_thread_method
    def set_hooks(self, hooks):
        """Attach another set of hooks around the same server's lab (the doctor's unavailable
        ones are left out); returns the hooks attached."""
        from ..sockets.belt import Belt, parse_belt_hooks
        if not self:
            return ()
        want = tuple(h for h in parse_belt_hooks(hooks) if hook_available(h)) if hooks else ()
        if not want:
            raise ValueError("tick at least one hook")
        if want != self.hooks:
            self.belt.close()
            self.belt = Belt(self.traffic, want, lab=self.lab).open()
            self.hooks = self.belt.attached
        return self.hooks

    def chooser(self):
        """A hook chooser (pl.HookChooser over all eight hooks): each change attaches the
        ticked hooks and follows a new request through them, shown below it."""
        if not self:
            return NotHere("choosing hooks", self.why())
        import ipywidgets as w
        from .widgets import HookChooser
        ch = HookChooser(hooks=BELT_ORDER, value=self.hooks)
        out = w.HTML(self.request()._repr_html_())
        out.add_class("pl-belt-run")

        def changed(hooks):
            try:
                self.set_hooks(hooks)
                out.value = self.request()._repr_html_()
            except Exception as e:        # a failed attach is shown; the widget stays alive
                out.value = f"<div class='pll-why'>{esc(e)}</div>"
        ch.observe(changed)
        box = w.VBox([ch.widget, out])
        box.add_class("pl-belt-chooser")
        return box

    # using it ---------------------------------------------------------------------------------
    def request(self):
        """One real request through every attached hook: a RequestBelt."""
        if not self:
            return NotHere("follow a request", self.why())
        return RequestBelt(in_lab_thread(self.belt.request), self.unavailable)

    def l7_peek(self, run):
        """The L7 guess at each hook that made one: what it parsed before it could look."""
        if not isinstance(run, RequestBelt):
            return run
        from ..packet import record as R
        rows = []
        for h in run.order():
            rec = run.run.record(h)
            if int(rec.l7) == 0 and int(rec.payload_len) == 0:
                continue
            layers = _headers_before_payload(rec)
            rows.append([(f"<b>{esc(h)}</b>", ""), " → ".join(layers) or "none",
                         (esc(int(rec.payload_off)), "pll-num"),
                         (esc(int(rec.parse_end)), "pll-num"),
                         R.l7_name(int(rec.l7)),
                         (esc(bytes(rec.payload[:16]).decode("latin-1")), "pll-mono")])
        return HTML(table(["hook", "headers parsed first (each one bounds-checked)",
                           "payload at byte", "bytes read", "L7 guess", "first payload bytes"],
                          rows, raw=True))

    def filter_inheritance(self, run):
        """Where the socket filter was attached, and the socket it ran on for the request."""
        if not self or "socket-filter" not in self.hooks:
            return NotHere("the socket filter", self.why() or self._why_not("socket-filter"))
        rec = run.run.record("socket-filter") if isinstance(run, RequestBelt) else None
        where = self.belt.sockhooks.where.get("socket-filter", "")
        seen = "saw it" if rec is not None else "did NOT see it"
        text = (f"The filter was attached once, to the server's listening socket ({where}), "
                "before any client came. The request's bytes arrived later, on the socket "
                f"accept() returned for that connection, and the filter {seen} there "
                + (f"(TCP flags {int(rec.tcp_flags):#04x}, {int(rec.payload_len)} payload "
                   "bytes): accept() copies the listener's filter to every socket it makes "
                   "(sk_clone)." if rec is not None else "."))
        return HTML(f"<p>{esc(text)}</p>", text)

    def _why_not(self, hook):
        return self.unavailable.get(hook) or why_not(hook)

    def _late_insert(self, wait):
        from ..sockets.sockmap import late_insert
        return in_lab_thread(late_insert, self.lab, wait=wait)

    def late_insert(self, wait=1.0):
        """A reader blocked in recv() before its socket was put in the sockmap (a table)."""
        if not self or "sk-skb" not in self.hooks:
            return NotHere("the late sockmap insertion", self.why() or self._why_not("sk-skb"))
        res = self._late_insert(wait)
        rows = [[k, (esc(v), "pll-mono")] for k, v in (
            ("the server was blocked in", res["blocked_in"]),
            ("then its socket went into the sockhash; the client sent", "late-insert\\n"),
            ("sk-skb verdicts on those bytes", res["verdicts"]),
            (f"echo back within {res['waited_s']} s", res["echoed"]),
            ("bytes waiting in the socket's Recv-Q", res["recv_q"]),
            ("the server is still blocked in", res["still_blocked_in"]))]
        verdict = ("the reader hangs: it went to sleep in TCP's own receive path before its "
                   "socket changed hands, and the bytes now go to the sockmap's queue, which "
                   "never wakes it" if not res["echoed"] else "the reader got its bytes")
        return HTML(table(["", ""], rows, raw=True) + f"<p class='pll-note'>{esc(verdict)}</p>",
                    str(res))


def _headers_before_payload(rec):
    out = []
    if any(bytes(rec.dst_mac)) or any(bytes(rec.src_mac)):
        out.append("Ethernet")
    if int(rec.ip_version) == 4:
        out.append("IPv4")
    elif int(rec.ip_version) == 6:
        out.append("IPv6")
    if int(rec.tcp_doff):
        out.append("TCP")
    elif int(rec.l4_proto) == 17 and int(rec.payload_off):
        out.append("UDP")
    return out


class _Seen:
    """What a view reads of the daemon's belt (its via, server, cgroup, where the socket
    hooks sit), from the daemon's answer: attribute names as a Belt's."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


class RemoteBelt(LiveBelt):
    """A LiveBelt whose lab, server and hooks pktlabd holds for this learner (not root, a
    daemon present): every method goes through the daemon on this belt's own connection, and
    what it shows is built from the data it returns (a BeltRun rebuilt: BeltRun.from_dict).
    The connection is the owner: close_all(), or the kernel dying, removes it all."""

    client = None

    def _open(self):
        from ..errors import PktlabError
        from ..workshop.client import Client
        try:
            self.client = Client()
            info, _ = self.client.call("belt_open", {"traffic": self.traffic,
                                                     "hooks": list(self.requested)})
        except (PktlabError, OSError, ValueError) as e:
            self.error = f"the belt could not be set up (workshop daemon): {e}"
            self.close()
            return
        self._took(info)

    def _took(self, info):
        self.lab = _Seen(name=info["lab"], dut_ip4=info["dut_ip4"], ns_src=info["ns_src"],
                         ns_dut=info["ns_dut"])
        self.belt = _Seen(closed=False, via=dict(info["via"]),
                          server=_Seen(pid=info["server"]["pid"], port=info["server"]["port"]),
                          cgroup=_Seen(path=info["cgroup"]) if info["cgroup"] else None,
                          sockhooks=_Seen(where=dict(info["where"])))
        self.unavailable.update(info["unavailable"])
        self.hooks = tuple(info["hooks"])

    def _release(self):
        try:
            if self.client is not None and self.lab is not None and not self.client.closed:
                self.client.call("close_lab", {"lab": self.lab.name})
        finally:
            if self.belt is not None:
                self.belt.closed = True
            if self.client is not None:
                self.client.close()     # the daemon closes whatever else this connection held
            if self in _open_labs:
                _open_labs.remove(self)

    def set_hooks(self, hooks):
        """Another set of hooks around the same server's lab, attached by the daemon."""
        from ..sockets.belt import parse_belt_hooks
        if not self:
            return ()
        want = parse_belt_hooks(hooks) if hooks else ()
        if not want:
            raise ValueError("tick at least one hook")
        if want != self.hooks:
            info, _ = self.client.call("belt_set_hooks", {"lab": self.name, "hooks": list(want)})
            self._took(info)
        return self.hooks

    def request(self):
        """One real request through every attached hook (in the daemon): a RequestBelt."""
        from ..sockets.belt import BeltRun
        if not self:
            return NotHere("follow a request", self.why())
        doc, _ = self.client.call("belt_request", {"lab": self.name})
        return RequestBelt(BeltRun.from_dict(doc), self.unavailable)

    def _late_insert(self, wait):
        return self.client.call("belt_late_insert", {"lab": self.name, "wait": wait})[0]

    def __repr__(self):
        if self:
            return f"<RemoteBelt {self.name} (workshop daemon): {', '.join(self.hooks)}>"
        return f"<RemoteBelt not live: {self.why()}>"


def open_belt(traffic="http", hooks="all"):
    """A LiveBelt: a fresh lab with every hook of `hooks` the doctor proved here around a
    real `traffic` server; close it with close_all() at the end. Not root, and a workshop
    daemon present: a RemoteBelt (the daemon holds it)."""
    from .remote import through_daemon
    return (RemoteBelt if through_daemon() else LiveBelt)(traffic, hooks)
