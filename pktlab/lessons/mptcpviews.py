"""Lesson 10 in a notebook: a real MPTCP transfer over two or three paths of a lab, seen by
the sock-ops hook, under an eBPF path policy; and the policy switcher.

    run = pl.mptcp_run(paths=2, policy="none")       # MptcpView: the subflow table
    run.connections(); run.timeline(); run.byte_order(); run.rto(); run.joins()
    run.plot()                                        # the figure, shown as the cell's value
    sw = pl.policy_switcher(paths=3)                 # a widget: choose a policy, the table follows
    sw.choose("no-path=3"); sw.history()

Each returns something a cell shows (HTML), or, where it cannot run here, the doctor's reason
(NotHere, which every later call on it shows again). Everything kernel-side runs
in_lab_thread() (netlink inside Jupyter); each run makes its own lab and removes it.
"""

from .here import hook_available, in_lab_thread, not_here, why_not
from .html import HTML, NotHere, esc, table

#: what lesson 10 needs: the sock-ops hook, and TC ingress for the policy
NEEDS = ("sock-ops", "tc-ingress")
POLICIES = ("none", "no-path=2", "no-path=3", "max-joins=1", "max-joins=0",
            "only-from=10.200.0.0/24")


def _remote():
    """Not root, and pktlabd listens: the runs go through it (in labs of the learner's own)."""
    import os
    from .remote import through_daemon
    return os.geteuid() != 0 and through_daemon()


def _not_here(what):
    if _remote():                 # what the daemon can do here, in the doctor's words
        for hook in NEEDS:
            if not hook_available(hook):
                return NotHere(what, why_not(hook))
        return None
    for hook in NEEDS:
        why = not_here(what, hook)
        if why is not None:
            return why
    return None


def _run_remote(paths, policy, seconds, drop, down):
    """One transfer in pktlabd (a lab of yours there, gone after): the MptcpRun rebuilt from
    the data it returns."""
    from ..mptcp import MptcpRun
    from ..workshop.client import Client
    args = {"paths": paths, "policy": str(policy), "seconds": float(seconds),
            "drop": list(drop) if drop is not None else None,
            "down": list(down) if down is not None else None}
    with Client() as c:
        return MptcpRun.from_dict(c.call("mptcp_run", args)[0])


class MptcpView(HTML):
    """One run (pktlab.mptcp.MptcpRun) as a cell shows it: the verdict and the subflow table."""

    def __init__(self, res):
        self.res, self.doc = res, res.doc
        d = self.doc
        t = d["transfer"]
        rows = [(p, v["subflows"], f"{v['bytes']:,}", f"{v['payload']:,}")
                for p, v in d["paths"].items()]
        head = (f"<p><b>policy {esc(d['policy'])}</b>: {d['subflows']['established']} "
                f"subflow(s) established, {d['subflows']['refused']} join(s) refused; "
                f"{t['sent']:,} bytes sent, {t['received']:,} received "
                f"({'complete' if t['complete'] else 'INCOMPLETE: ' + esc(t['error'])}); "
                f"tokens: client {esc(d['tokens']['src'])}, server {esc(d['tokens']['dut'])}</p>")
        body = head + table(["path", "subflows", "bytes into dut", "payload acked"], rows)
        if d["leftovers"]:
            body += f"<p class='pll-no'>LEFT BEHIND: {esc(', '.join(d['leftovers']))}</p>"
        from ..mptcp import format_text
        super().__init__(body, format_text(d))

    def __getitem__(self, key):
        return self.doc[key]

    def connections(self):
        """The subflows grouped by connection (tokens), both sides, like `ss -M`."""
        rows = []
        for c in self.res.connections():
            toks = ", ".join(f"{k} {v:08x}" for k, v in sorted(c.tokens.items()))
            for s in c.subflows:
                rows.append((toks, s.side, s.subflow_id, s._last("local_id"),
                             s._last("remote_id"), s.local, s.remote,
                             "yes" if s.established else "no", len(s.events)))
        return HTML(table(["connection tokens", "side", "subflow id", "local addr id",
                           "remote addr id", "local", "remote", "established", "callbacks"],
                          rows))

    def timeline(self, chatty=False, limit=40):
        """Every callback of every subflow, per connection, at its time."""
        from ..mptcp import timeline_text
        text = timeline_text(self.res.events, chatty=chatty, limit=limit)
        return HTML(f"<pre style='font-size:11.5px'>{esc(text)}</pre>", text)

    def byte_order(self):
        """The trap on a real callback: remote_port as the kernel gives it, read three ways."""
        b = self.doc["byte_order"]
        if not b:
            return NotHere("the byte-order trap", "no callback carried a remote port")
        rows = [("remote_port (raw u32)", b["remote_port_raw"], "what a sock_ops program gets"),
                ("ntohs(raw)", b["ntohs(raw)"], "wrong: ntohs() takes the low 16 bits"),
                ("ntohs(raw >> 16)", b["ntohs(raw >> 16)"], "right"),
                ("bswap32(raw)", b["bswap32(raw)"], "right, in one step"),
                ("local_port", b["local_port"], "already host order: use it as it is")]
        return HTML(f"<p>{esc(b['op'])} of {esc(b['local'])}</p>" +
                    table(["reading", "value", ""], rows))

    def joins(self):
        """Every join the policy program saw: its SYNs' times, verdict and why."""
        rows = [(j["from"], j["to"], j["path"], j["token"], j["verdict"], j["why"],
                 ", ".join(f"{t:g}" for t in j["syn_times_s"])) for j in self.doc["joins"]]
        return HTML(table(["from", "to", "path", "token", "verdict", "why", "SYNs at (s)"], rows))

    def join_records(self):
        """The policy program's records of the MP_JOIN SYNs (dicts), one per SYN."""
        return list(self.res.joins)

    def join_option(self, i=0):
        """The bytes of the i-th MP_JOIN SYN's option, as the policy program recorded them."""
        joins = self.res.joins
        if not joins:
            return NotHere("a join's option", "this run saw no MP_JOIN SYN")
        return bytes.fromhex(joins[i]["option"])

    def rto(self):
        """Every RTO_CB: the retransmission count and the timeout, in jiffies and ms."""
        rows = [(r["side"], r["path"], f"{r['t_s']:+.3f}", r["retransmits"], r["rto_jiffies"],
                 r["rto_ms"]) for r in self.doc["rto"]]
        return HTML(table(["side", "path", "t (s, from the dark)", "retransmits (args[0])",
                           "rto (args[1], jiffies)", "rto (ms)"], rows))

    def plot(self, ax=None):
        from ..mptcp import plot_timeline
        from .plots import show_figures_inline
        show_figures_inline()
        return plot_timeline(self.res, ax=ax)

    def plot_bytes(self, ax=None):
        from ..mptcp import plot_bytes
        from .plots import show_figures_inline
        show_figures_inline()
        return plot_bytes(self.res, ax=ax)


def mptcp_run(paths=2, policy="none", seconds=3.0, drop=None, down=None):
    """One real MPTCP transfer in a fresh lab (pktlab mptcp): an MptcpView, or NotHere."""
    from ..mptcp import check, run_mptcp
    why = _not_here("the MPTCP transfer")
    if why is not None:
        return why
    try:
        check(paths, policy, seconds, drop, down)
    except ValueError as e:
        return NotHere("the MPTCP transfer", str(e))
    from ..errors import PktlabError
    try:
        if _remote():
            return MptcpView(_run_remote(paths, policy, seconds, drop, down))
        return MptcpView(in_lab_thread(run_mptcp, paths=paths, policy=policy, seconds=seconds,
                                       drop=drop, down=down))
    except (PktlabError, ValueError) as e:
        return NotHere("the MPTCP transfer", str(e))


class PolicySwitcher:
    """Choose a policy (or write one): a real transfer runs under it, and the subflow table
    follows. ``choose(text)`` does from code what the widget does; ``history()`` lists every
    run."""

    def __init__(self, paths=3, seconds=3.0, policy="none"):
        import ipywidgets as w
        self.paths, self.seconds, self.runs = paths, seconds, []
        self.menu = w.Dropdown(options=list(POLICIES), value="none", description="policy")
        self.text = w.Text(placeholder="or write one: max-joins=1,no-path=3", layout=w.Layout(
            width="22em"))
        self.go = w.Button(description="run")
        self.out = w.HTML()
        self.widget = w.VBox([w.HBox([self.menu, self.text, self.go]), self.out])
        self.menu.observe(lambda ch: self.choose(ch["new"]), names="value")
        self.go.on_click(lambda _b: self.choose(self.text.value or self.menu.value))
        self.closed = False
        self.choose(policy)

    def choose(self, policy):
        """Run a transfer under `policy`; the table shows it. Returns the run's view."""
        if self.closed:
            return NotHere("the policy switcher", "it is closed; run the cell that makes it")
        self.out.value = f"<p class='pll-note'>running policy {esc(policy)}...</p>"
        view = mptcp_run(self.paths, policy, self.seconds)
        if view:
            self.runs.append(view)
        self.out.value = view._repr_html_()
        return view

    def last(self):
        """The view of the last run (its joins(), timeline()...)."""
        if not self.runs:
            return NotHere("the last run", "no policy has run yet")
        return self.runs[-1]

    def history(self):
        """Every policy run here: established and refused subflows, and per path."""
        rows = []
        for v in self.runs:
            d = v.doc
            rows.append((d["policy"], d["subflows"]["established"], d["subflows"]["refused"],
                         *(d["paths"][str(p)]["subflows"] for p in range(1, self.paths + 1)),
                         "yes" if d["transfer"]["complete"] else "no"))
        return HTML(table(["policy", "established", "refused",
                           *(f"path {p}" for p in range(1, self.paths + 1)), "complete"], rows))

    def close(self):
        self.closed = True
        for c in (self.menu, self.text, self.go):
            c.disabled = True

    def _repr_mimebundle_(self, **kw):
        return self.widget._repr_mimebundle_(**kw)

    def __repr__(self):
        return f"<PolicySwitcher: {len(self.runs)} run(s)>"


def policy_switcher(paths=3, seconds=3.0):
    """The widget of lesson 10 (registered: close_all() closes it), or NotHere."""
    from .live import register_widget
    why = _not_here("the policy switcher")
    if why is not None:
        return why
    return register_widget(PolicySwitcher(paths, seconds))


def sockops_offsets():
    """Where this kernel's BTF puts what the sock-ops program reads: the -D constants."""
    import os
    from ..errors import PktlabError
    from ..kernel.btf import vmlinux
    from ..mptcp.sockops import BTF_FIELDS, btf_defines
    try:
        offs = btf_defines()
    except (PktlabError, OSError) as e:
        return NotHere("the sock-ops program's BTF offsets", str(e))
    rows = [(d, path, offs[d], size) for d, (path, size) in BTF_FIELDS.items()]
    return HTML(f"<p>from <code>{esc(vmlinux().source)}</code> (kernel "
                f"{esc(os.uname().release)}), passed to the compiler as -D constants:</p>" +
                table(["-D name", "member", "offset", "bytes read"], rows))


def mptcp_available():
    """(True, '') or (False, why): can lesson 10 run live here?"""
    for hook in NEEDS:
        if not hook_available(hook):
            return False, why_not(hook)
    return True, ""
