"""What a learner's Program (pktlab.lessons.program) shows: its verdict (loaded, with its maps;
or refused, the verifier explainer: key lines first, the learner's line, one sentence, the
full log folded away), its test runs frame by frame, a replay's verdicts counted by name, and
its maps as live tables (ipywidgets, refreshed by a background thread and as a replay goes).
"""

import collections
import json
import re
import threading

from .html import CSS, HTML, badge, esc, table

TABLE_ROWS = 40                # frames a test run's table shows (.codes has them all)
MAP_ROWS = 64                  # entries a map's table shows
LOG_LINES = 400                # the end of a long log, folded away
REFRESH_S = 0.5                # the live tables' refresh period
_CODE_COLOUR = {"PASS": "agree", "OK": "agree", "DROP": "disagree", "SHOT": "disagree",
                "TX": "explained", "REDIRECT": "explained", "ABORTED": "lost"}
_HIT = re.compile(r"invalid|unbounded|!read_ok|prohibited|out of bounds|min value is negative|"
                  r"not allowed|unknown func|cannot|error:|expected", re.I)


def short_value(v):
    """A map value as pktlab run prints it (a per-CPU value: its sum, then each CPU's)."""
    if isinstance(v, dict) and set(v) == {"per_cpu", "sum"}:
        return f"{json.dumps(v['sum'])} (per CPU: {json.dumps(v['per_cpu'])})"
    return json.dumps(v)


def prose(text):
    """The explainer's sentence as HTML: escaped, its `code` in code type (no raw backticks)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text))


def code_badge(name):
    """A return code's name as a coloured badge (PASS/OK green, DROP/SHOT red, ...)."""
    tail = name.rsplit("_", 1)[-1] if name else ""
    return badge(_CODE_COLOUR.get(tail, "off"), name)


def log_block(log, keys=()):
    """A log as a scrollable block, its last LOG_LINES lines, the key lines highlighted."""
    lines = log.rstrip().splitlines()
    cut = len(lines) > LOG_LINES
    lines = lines[-LOG_LINES:]
    keyset = {k.strip() for k in keys}
    out = [(f'<span class="pll-hit">{esc(ln)}</span>'
            if ln.strip() in keyset or _HIT.search(ln) else esc(ln)) for ln in lines]
    return ((f"<p class='pll-note'>its last {LOG_LINES} lines</p>" if cut else "") +
            '<div class="pll-log">' + "\n".join(out) + "</div>")


def map_rows_html(name, entries, info):
    """One map's contents as a titled table (key, value), at most MAP_ROWS rows."""
    n = len(entries)
    title = (f"<b>{esc(name)}</b> <span class='pll-note'>({esc(info.get('type', ''))}, {n} "
             f"entr{'y' if n == 1 else 'ies'}" + (f"; {esc(info['note'])}" if info.get("note")
                                                  else "") + ")</span>")
    if not entries:
        return f"<div>{title}<p class='pll-note'>empty</p></div>"
    rows = [[k, short_value(v)] for k, v in list(entries.items())[:MAP_ROWS]]
    more = (f"<p class='pll-note'>the first {MAP_ROWS} of {n}</p>" if n > MAP_ROWS else "")
    return (f"<div>{title}" + table(["key", "value"], rows, cls="pll-t pll-mono") + more +
            "</div>")


# the verdict ----------------------------------------------------------------------------------
def loaded_html(prog):
    """A loaded program: its name and type, its maps, what to do next, the log folded."""
    r = prog.report
    n = re.search(r"processed (\d+) insns", r.log or "")
    body = (f'<div class="pll-pass"><b>loaded</b>: {esc(prog.func)} as {esc(prog.prog_type)} '
            f"(hook {esc(prog.hook)}): the verifier accepted it"
            + (f" after {n.group(1)} instructions" if n else "") + "</div>")
    rows = [[name, m.type_name, m.info.key_size, m.info.value_size, m.info.max_entries]
            for name, m in sorted(prog.maps_info.items())]
    body += (table(["map", "type", "key bytes", "value bytes", "max entries"], rows)
             if rows else "<p class='pll-note'>no maps</p>")
    if prog.counted:
        body += ("<p class='pll-note'>pktlab wraps a counter of return codes around your "
                 "function (as <code>pktlab run</code> does): .replay() counts its verdicts by "
                 "name; your lines stay your lines.</p>")
    if prog.note:
        body += f"<p class='pll-note'>{esc(prog.note)}</p>"
    if prog.closed:
        body += "<p class='pll-note'>closed: run its cell again to load it</p>"
    elif prog.attached:
        body += f"<p>attached at {esc(prog.hook)} in lab <b>{esc(prog.attached)}</b></p>"
    else:
        v = prog.func
        body += (f"<p class='pll-note'>next: <code>{esc(v)}.test_run(\"mixed.pcap\")</code>, "
                 f"<code>{esc(v)}.maps</code>, <code>{esc(v)}.replay(\"mixed.pcap\", lab=lab)"
                 "</code></p>")
    if r.log:
        body += ("<details><summary>the verifier's log</summary>" + log_block(r.log) +
                 "</details>")
    return body


def refused_html(report, first_line=1):
    """A refusal, as the verifier explainer puts it: the key lines first, the learner's line,
    what it means in one sentence and the usual fix; the full log folded away."""
    from ..kernel.verifier import POLICY_KINDS
    policy = any(e.get("kind") in POLICY_KINDS for e in report.errors)
    if policy:
        stage, who = "refused by pktlab's learner loader", "pktlab"
    elif report.stage == "compile":
        stage, who = "does not compile", "the compiler"
    else:
        stage, who = "refused by the verifier", "the verifier"
    what = f"{report.function or 'your program'} as {report.prog_type} (hook {report.hook})"
    body = f'<div class="pll-fail"><b>{esc(stage)}</b>: {esc(what)}</div>'
    keys = []
    for e in report.errors:
        said = e.get("key_lines") or [e.get("message") or ""]
        keys += said
        body += (f'<div class="pll-why"><b>{esc(who)} said</b>:<br>' + "<br>".join(
            f'<span class="pll-mono pll-hit">{esc(k)}</span>' for k in said) + "</div>")
        if e.get("line"):
            body += (f"<p>at line <b>{e['line']}</b>"
                     + (" of the cell" if first_line > 1 else "") + ": <code>"
                     f"{esc(e.get('source') or '')}</code></p>")
        for a in e.get("also", []):
            body += (f"<p>and line <b>{a['line']}</b>: <code>{esc(a.get('source') or '')}"
                     f"</code> ({esc(a['note'])})</p>")
        if e.get("meaning"):
            body += (f"<p><b>{esc(e.get('kind', ''))}</b>: {prose(e['meaning'])}</p>"
                     f"<p>usual fix: {prose(e.get('fix', ''))}</p>")
        elif e.get("explanation"):
            body += f"<p>{prose(e['explanation'])}</p>"
    if report.log and not policy:
        n = len(report.log.splitlines())
        body += (f"<details><summary>the full log ({n} lines)</summary>" +
                 log_block(report.log, keys) + "</details>")
    return body


# test runs ------------------------------------------------------------------------------------
class TestRunView(HTML):
    """A program test-run on each frame (BPF_PROG_TEST_RUN): `.codes` (each frame's return
    code by name, None where it was not run), `.retvals`, `.counts` ({name: frames})."""

    __test__ = False            # not a pytest class, whatever its name

    def __init__(self, capture, frames, results, capped, prog):
        from ..replay import compare
        from .results import record_summary
        self.capture = capture
        self.retvals = [rc for rc, _name in results]
        self.codes = [name if rc is not None else None for rc, name in results]
        self.counts = dict(collections.Counter(c for c in self.codes if c is not None))
        not_run = [i for i, c in enumerate(self.codes) if c is None]
        walked = compare.walker_records(frames) if frames else []
        rows = []
        for i, (f, (rc, name)) in enumerate(zip(frames, results)):
            if i >= TABLE_ROWS:
                break
            code = (code_badge(name), "") if rc is not None else (badge("skipped", "not run"),
                                                                   "")
            rows.append([i + 1, len(f), record_summary(walked[i]), code]
                        + ([] if not not_run else
                           ["" if rc is not None else name[len("not run: "):]]))
        rows = [[c if isinstance(c, tuple) else (esc(c), "") for c in row] for row in rows]
        src = f"{capture}" if capture else f"{len(frames)} frame(s)"
        counted = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items(),
                                                          key=lambda kv: -kv[1]))
        head = (f"<p>{esc(src)}: {len(frames)} frame(s) test-run through <b>{esc(prog.func)}"
                f"</b> ({esc(prog.prog_type)}): " + (esc(counted) or "none ran") +
                (f"; {len(not_run)} not run" if not_run else "") + "</p>")
        if capped:
            head += (f"<p class='pll-note'>the first {len(frames)} frames only (a test run "
                     "takes that many at most)</p>")
        more = (f"<p class='pll-note'>the first {TABLE_ROWS} of {len(frames)} frames: "
                ".codes has every one</p>" if len(frames) > TABLE_ROWS else "")
        cols = ["#", "bytes", "the walker's parse", "return code"] + (["why not run"]
                                                                     if not_run else [])
        super().__init__(head + table(cols, rows, raw=True) + more,
                         f"{src}: {counted or 'none ran'}" +
                         (f"; {len(not_run)} not run" if not_run else ""))

    def __len__(self):
        return len(self.codes)

    def __getitem__(self, i):
        return self.codes[i]

    def __iter__(self):
        return iter(self.codes)


# a replay -------------------------------------------------------------------------------------
class ReplayResult(HTML):
    """A capture replayed across a lab through the program: `.verdicts` ({name: frames},
    counted live by pktlab's wrapper), `.maps` (the maps after it), `.doc` (all of it)."""

    def __init__(self, doc):
        self.doc = doc
        self.verdicts, self.maps = doc["verdicts"], doc["maps"]
        import os
        head = (f"<p>{esc(os.path.basename(doc['pcap']))}: {doc['sent']} of {doc['packets']} "
                f"frame(s) sent across lab <b>{esc(doc['lab'])}</b> through <b>"
                f"{esc(doc['function'])}</b> at {esc(doc['hook'])}</p>")
        rows = [[(code_badge(k), ""), (str(n), "pll-num")]
                for k, n in sorted(self.verdicts.items(), key=lambda kv: -kv[1])]
        body = head + (table(["verdict", "frames"], rows, raw=True) if rows else
                       "<p class='pll-fail'>no verdict counted</p>")
        if doc.get("skipped"):
            first = list(doc["skipped"].items())[:3]
            body += (f"<p class='pll-note'>{len(doc['skipped'])} frame(s) not sent (a lab "
                     "cannot carry them): " + esc("; ".join(f"#{k}: {v}" for k, v in first))
                     + "</p>")
        if doc.get("lab_frames"):
            body += (f"<p class='pll-note'>{doc['lab_frames']} frame(s) of the lab's own (from "
                     "src's MAC) passed without running your program</p>")
        if doc.get("missing"):
            body += (f"<p class='pll-fail'>{doc['missing']} frame(s) sent got no verdict</p>")
        for name, entries in doc["maps"].items():
            body += map_rows_html(name, entries, doc["maps_info"].get(name, {}))
        text = (f"{doc['sent']} of {doc['packets']} sent: " +
                ", ".join(f"{k} {n}" for k, n in self.verdicts.items()))
        super().__init__(body, text)

    def __getitem__(self, key):
        return self.doc[key]


# live tables ----------------------------------------------------------------------------------
class MapTables:
    """A program's maps as ipywidgets tables, one per map, read again by a background thread
    every `interval` seconds (a widget changes only when its map did) and by the program
    between a replay's chunks, until the program closes. `.data` / `[name]`: the contents
    (mapdump's form), `.refreshes`: how many times they were read."""

    def __init__(self, program, interval=REFRESH_S):
        import ipywidgets as w
        self.program, self.interval = program, interval
        self.data, self.info, self.refreshes = {}, {}, 0
        self.boxes = {name: w.HTML() for name in sorted(program.maps_info)}
        self.status = w.HTML()
        self.widget = w.VBox([self.status, *self.boxes.values()])
        self.widget.add_class("pl-maps")
        self._stop = threading.Event()
        self._thread = None
        self._refresh_lock = threading.Lock()
        self.refresh()

    def start(self):
        if self._thread is None and not self.program.closed:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"pktlab-maps-{self.program.func}")
            self._thread.start()

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception as e:       # a map read failing: say so, stop refreshing
                self.status.value = (f'<div class="pll-fail">the live tables stopped: '
                                     f"{esc(e)}</div>")
                return

    def stop(self):
        """Stop the background refresh (the program's close() does)."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5)

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def refresh(self):
        """Read every map again and update the tables that changed."""
        p = self.program
        with p._lock:
            closed = p.closed
            maps = info = None
            if not closed:                  # (here, or from pktlabd in one request)
                maps, info = p.dump()
        self._show(maps, info, closed)

    def show(self, maps, info):
        """Update the tables that changed with `maps` and `info` (mapdump's form) read
        elsewhere: pktlabd's progress during a replay. It runs while the replay holds the
        program's connection, so it reads nothing itself."""
        self._show(maps, info or {}, False)

    def _show(self, maps, info, closed):
        # the read is done before this lock: a refresh waiting for the daemon's connection
        # (held by a replay) never holds up the replay's own progress here
        with self._refresh_lock:
            p = self.program
            if maps is not None:
                self.data.update(maps)
                self.info.update(info)
            for name, box in self.boxes.items():
                html = CSS + map_rows_html(name, self.data.get(name, {}),
                                           self.info.get(name, {}))
                if box.value != html:
                    box.value = html
            status = (f"<p class='pll-note'>{esc(p.func)} is closed: the last contents of its "
                      "maps</p>" if closed else
                      f"<p class='pll-note'>the maps of {esc(p.func)}, live: read every "
                      f"{self.interval:g} s and as a replay goes</p>")
            if not self.boxes:
                status += "<p class='pll-note'>(it has no maps)</p>"
            if self.status.value != status:
                self.status.value = status
            self.refreshes += 1

    def __getitem__(self, name):
        return self.data[name]

    def _repr_mimebundle_(self, **kw):
        return self.widget._repr_mimebundle_(**kw)

    def __repr__(self):
        return "\n".join(f"{n}: {json.dumps(d)}" for n, d in self.data.items()) or "(no maps)"
