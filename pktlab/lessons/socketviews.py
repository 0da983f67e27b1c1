"""Lesson 09 in a notebook: a learner's program through the verifier explainer, the four
connection-tracking firewalls side by side on real flows, and the TIME_WAIT trap.

Each returns something a cell shows (HTML), or, where the lab cannot run here, the doctor's
reason (NotHere). Everything kernel-side runs in_lab_thread() (netlink inside Jupyter). A learner
who is not root, with a workshop daemon present, gets the same views built from what pktlabd
returns (its verify, conntrack and timewait ops, in labs of the learner's own).
"""

from .here import in_lab_thread, not_here
from .html import HTML, NotHere, esc, prose, table

_NEEDS = "tc-ingress"      # every firewall here sits at TC ingress


def _not_here(what):
    return not_here(what, _NEEDS)


def daemon_call(op, args, blob=b""):
    """One request to pktlabd on a connection of its own (the result, its blob): what a
    learner's lesson 08/09 step does when it is not root and a daemon is there
    (pktlab.lessons.remote.through_daemon). The experiment's labs are the connection's."""
    from ..workshop.client import Client
    with Client() as c:
        return c.call(op, args, blob)


def _through_daemon():
    from .remote import through_daemon
    return through_daemon()


def report_from_dict(doc):
    """A verifier Report from its to_dict() (the daemon's verify answer)."""
    import dataclasses
    from ..kernel.verifier import Report
    return Report(**{f.name: doc[f.name] for f in dataclasses.fields(Report) if f.name in doc})


class VerifyView(HTML):
    """A Report of pktlab verify, as a cell shows it: the verdict, the key lines at the
    learner's own lines, what they mean and the usual fix; the full log folded away."""

    def __init__(self, report):
        self.report, self.ok = report, report.ok
        if report.ok:
            head = (f'<div class="pll-pass"><b>loaded</b>: the verifier accepted '
                    f"{esc(report.function)} as {esc(report.prog_type)}</div>")
        else:
            stage = "does not compile" if report.stage == "compile" else "refused by the verifier"
            head = f'<div class="pll-fail"><b>{esc(stage)}</b></div>'
        rows = []
        for e in report.errors:
            rows.append((e.get("line") or "", e.get("source") or "", e.get("message") or "",
                         e.get("explanation") or "", e.get("fix") or ""))
        body = head
        if rows:        # the explainer quotes code in backticks: shown as code instead
            body += table(["line", "your code", "the verifier (or compiler) said", "what it means",
                           "usual fix"], [[*r[:3], (prose(r[3]), ""), (prose(r[4]), "")]
                                          for r in rows], raw=True)
        if report.log:
            body += ("<details><summary>the full log</summary><pre>" + esc(report.log) +
                     "</pre></details>")
        lines = [f"line {r[0]}: {r[1]}\n  {r[2]}\n  {r[3]} {r[4]}" for r in rows]
        super().__init__(body, ("LOADED" if report.ok else "REFUSED") + "\n" + "\n".join(lines))

    def __bool__(self):
        return self.ok


def verify(source, hook="tc-ingress", func=None):
    """Compile and load a learner's C (a notebook cell's text) as `hook`'s program type, and
    show what the verifier said, at the learner's own lines (pktlab verify)."""
    from .exercises.ex09 import verify_source
    if _through_daemon():
        from ..errors import PktlabError
        data = str(source).encode()
        try:
            doc, _ = daemon_call("verify", {"name": "lesson09.c", "hook": hook, "func": func,
                                            "source_len": len(data)}, data)
        except (PktlabError, OSError, ValueError) as e:
            return NotHere("verify", str(e))
        return VerifyView(report_from_dict(doc))
    why = _not_here("verify")
    if why is not None:
        return why
    try:
        return VerifyView(in_lab_thread(verify_source, source, hook, func))
    except (OSError, ValueError) as e:
        return NotHere("verify", str(e))


class ConntrackView(HTML):
    """`pktlab conntrack` in a notebook: the table, the explanation and the bars."""

    def __init__(self, doc):
        from ..sockets import format_conntrack
        self.doc = doc
        cols = ("connected", "echoed", "insert_failed", "evicted")
        rows = [(name, *(v.get(c, 0) for c in cols)) for name, v in doc["variants"].items()]
        body = (f"<p>{doc['flows']} flows, maps of {doc['max_entries']} entries</p>" +
                table(["firewall", *cols], rows))
        super().__init__(body, format_conntrack(doc))

    def __getitem__(self, key):
        return self.doc[key]

    def plot(self, ax=None):
        from ..sockets import plot_conntrack
        from .plots import show_figures_inline
        show_figures_inline()
        return plot_conntrack(self.doc, ax=ax)


def conntrack(flows=1000, max_entries=256):
    """The four firewalls on real flows, each on a fresh lab (pktlab conntrack)."""
    from ..sockets import run_conntrack
    if _through_daemon():
        return ConntrackView(daemon_call("conntrack", {"flows": flows,
                                                       "max_entries": max_entries})[0])
    why = _not_here("the connection-tracking comparison")
    if why is not None:
        return why
    return ConntrackView(in_lab_thread(run_conntrack, flows=flows, max_entries=max_entries))


def timewait(wait=1.0):
    """The TIME_WAIT trap of bpf_sk_lookup_tcp, and the fix with bpf_skc_lookup_tcp."""
    from ..sockets import format_timewait, timewait_trap
    if _through_daemon():
        result = daemon_call("timewait", {"wait": wait})[0]
    else:
        why = _not_here("the TIME_WAIT trap")
        if why is not None:
            return why
        result = in_lab_thread(timewait_trap, wait=wait)
    return HTML("<pre>" + esc(format_timewait(result)) + "</pre>", format_timewait(result))
