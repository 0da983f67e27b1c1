"""Live labs for a notebook: LiveLab (a lab with hooks attached, opened in one cell, closed in
the last), open_lab(), and close_all() with the list of what this kernel opened.

Labs opened here are owned three times over, because a notebook is not a ``with`` block:
- the notebook's last cell calls ``close_all()`` (the normal way);
- an atexit handler closes whatever is still open when the kernel shuts down normally;
- a small reaper process (pktlab/lessons/reaper.py), started with the lab and waiting on the
  kernel's pidfd, removes the lab's namespaces when the kernel dies without running atexit
  (SIGKILL, a crash). close() stops the reaper. The next ``Lab()`` anywhere also removes stale
  labs (pktlab/lab/labs.py).

A hook the doctor could not prove here is never attached: the lab opens with the hooks that work,
and every table says why the others are missing.
"""

import atexit
import subprocess

from ..owned import Owned
from .here import WIRE_ORDER, hook_available, in_lab_thread, in_lab_thread_method, why_not
from .html import CSS, HTML, NotHere, badge, esc, table
from .pcaps import capture_path, frames
from .reaper import start_reaper
from .results import BatchView, Belt, ReplayView

#: notebook labs are named plnb + 6 hex digits; tests look for leftovers by this prefix
LAB_PREFIX = "plnb"

_open_labs = []
_open_widgets = []
_atexit_registered = False


def _register(obj, bucket):
    global _atexit_registered
    bucket.append(obj)
    if not _atexit_registered:
        atexit.register(close_all, quiet=True)
        _atexit_registered = True


def register_widget(w):
    """Widgets with a close() (steppers, panels) are closed by close_all() too."""
    _register(w, _open_widgets)
    return w


def unregister_widget(w):
    """A widget that closed by itself: close_all() has nothing left to do for it."""
    if w in _open_widgets:
        _open_widgets.remove(w)


class LiveLab(Owned):
    """A lab with hooks attached, for a notebook: open in one cell, close in the last.

    Opens with the requested hooks the doctor proved here; the others are listed with the
    doctor's reason. When none can run (not root, no bcc...) the object is still made: it is
    falsy, and every method returns the reason instead of failing.

    It is Owned (pktlab/owned.py): close() releases it once and is safe to call twice, and a
    ``with`` block closes it."""

    def __init__(self, hooks="all", xdp_mode="generic", mtu=1500):
        from ..kernel.hooks import parse_hooks
        self.requested = parse_hooks(hooks)
        self.xdp_mode = xdp_mode
        self.mtu = mtu
        self.unavailable = {}
        self.lab = None
        self.rp = None
        self.error = ""
        self._reaper = None
        self.replaced = None        # the lab an earlier run of the same cell opened (open_lab)
        self.guests = []            # learners' programs attached here (lend / give_back)
        _register(self, _open_labs)
        self._hold()            # from here on, close() has at least the registration to undo
        self._open()

    # lifecycle
    @in_lab_thread_method
    def _open(self):
        from ..errors import PktlabError
        for h in self.requested:
            if not hook_available(h):
                self.unavailable[h] = why_not(h)
        self.hooks = tuple(h for h in self.requested if h not in self.unavailable)
        if not self.hooks:
            self.error = "none of the hooks asked for can run here"
            return
        from ..lab import Lab
        try:
            self.lab = Lab(prefix=LAB_PREFIX, mtu=self.mtu).up()
            self._reaper = start_reaper(self.lab)
            self._attach(self.hooks)
        except (PktlabError, OSError) as e:
            self.error = f"the lab could not be opened: {e}"
            self.close()

    def _attach(self, hooks):
        from ..replay.run import Replayer, ring_slots_for
        # ns timestamps: the lessons put one packet's hooks in order in time (Belt); the same
        # flags as replay() below, so that both lease one compiled program per hook
        self.rp = Replayer(hooks, xdp_mode=self.xdp_mode, lab=self.lab, precise_ts=True,
                           slots=ring_slots_for()).open()
        self.hooks = tuple(hooks)

    def _detach(self):
        if self.rp is not None:
            rp, self.rp = self.rp, None
            rp.close()

    @in_lab_thread_method
    def set_hooks(self, hooks):
        """Attach another set of hooks (the doctor's unavailable ones are left out)."""
        from ..kernel.hooks import parse_hooks
        if not self:
            return
        want = tuple(h for h in parse_hooks(hooks) if hook_available(h))
        if want == self.hooks and self.rp is not None:
            return
        self._detach()
        if want:
            self._attach(want)
        else:
            self.hooks = ()

    # a learner's program in this lab (pktlab.lessons.program)
    @in_lab_thread_method
    def lend(self, guest):
        """Make room for a learner's program (`guest`, with a close()): the lab's own hooks
        step aside (an interface takes one XDP program) until give_back(guest); the lab's
        close() closes the guest first."""
        if guest not in self.guests:
            self.guests.append(guest)
        self._detach()

    @in_lab_thread_method
    def give_back(self, guest):
        """The learner's program left: once no guest is left, the lab's hooks come back."""
        if guest in self.guests:
            self.guests.remove(guest)
        if not self.guests and not self.closed and self.lab is not None and self.hooks \
                and self.rp is None:
            self._attach(self.hooks)

    @in_lab_thread_method
    def _release(self):
        """Detach every hook and remove the lab (veth, then namespaces): close() calls it once."""
        try:
            for guest in list(self.guests):
                guest.close()
            self.guests = []
            self._detach()
        finally:
            try:
                if self.lab is not None:
                    self.lab.close()
            finally:
                if self._reaper is not None:
                    self._reaper.terminate()
                    try:
                        self._reaper.wait(5)
                    except subprocess.TimeoutExpired:
                        self._reaper.kill()
                        self._reaper.wait()
                    self._reaper = None
                if self in _open_labs:
                    _open_labs.remove(self)

    def __bool__(self):
        return not self.closed and self.rp is not None

    @property
    def name(self):
        return self.lab.name if self.lab is not None else None

    @property
    def via(self):
        return dict(self.rp.via) if self.rp is not None else {}

    def why(self):
        """Why this lab is not live, in words ('' when it is)."""
        if self:
            return ""
        if self.closed and not self.error:
            return "the lab is closed (the notebook's last cell closes it); re-run the cell " \
                   "that opens it"
        why = self.error
        if self.guests and self.lab is not None and not self.closed:
            names = ", ".join(str(getattr(g, "func", g)) for g in self.guests)
            why += (f"your program {names} is attached in lab {self.name}: the lab's own hooks "
                    "stepped aside (its .detach() or .close() brings them back)")
        by_reason = {}
        for h, w in self.unavailable.items():
            by_reason.setdefault(w, []).append(h)
        if by_reason:
            why += ("; " if why else "") + "; ".join(f"{', '.join(hs)}: {w}"
                                                     for w, hs in by_reason.items())
        return why or "no hooks attached"

    def _repr_html_(self):
        rows = []
        for h in WIRE_ORDER:
            if h in self.hooks and self:
                # a plain cell: table() escapes it (escaping here too showed `&#x27;`)
                rows.append([(f"<b>{esc(h)}</b>", ""), (badge("agree", "attached"), ""),
                             self.via.get(h, "")])
            elif h in self.unavailable:
                rows.append([(f"<b>{esc(h)}</b>", ""), (badge("disagree", "not available"), ""),
                             (esc(self.unavailable[h]), "pll-expl")])
            elif h in self.requested:
                rows.append([(f"<b>{esc(h)}</b>", ""), (badge("off", "detached"), ""), ""])
        if self:
            lab = self.lab
            head = (f"<p><b>lab {esc(lab.name)}</b>: {esc(lab.ns_src)}/{esc(lab.if_src)} "
                    f"{esc(lab.src_ip4)} &harr; {esc(lab.ns_dut)}/{esc(lab.if_dut)} "
                    f"{esc(lab.dut_ip4)}</p>")
        else:
            head = f'<div class="pll-why"><b>no live lab:</b> {esc(self.why())}</div>'
        if getattr(self, "replaced", None):
            head += (f"<p class='pll-note'>closed lab {esc(self.replaced)}, which an earlier run "
                     "of this cell opened: one lab per cell</p>")
        others = [lab.name for lab in _open_labs if lab is not self and lab and lab.name]
        if others:
            head += (f"<p class='pll-note'>also open in this notebook: {esc(', '.join(others))} "
                     "(the last cell, pl.close_all(), closes every one)</p>")
        return CSS + head + table(["hook", "", "how / why not"], rows, raw=True)

    def __repr__(self):
        if self:
            return f"<LiveLab {self.name}: {', '.join(f'{h} ({v})' for h, v in self.via.items())}>"
        return f"<LiveLab not live: {self.why()}>"

    # using it
    @in_lab_thread_method
    def run(self, frames_):
        """Send frames across the lab; the Replayer's BatchResult (or None when not live)."""
        if not self:
            return None
        return self.rp.run_batch([bytes(f) for f in frames_])

    def step(self, frame, index=1):
        """One frame across the lab: a StepResult (pktlab/replay/stepper.py), or None when not
        live."""
        from ..replay.stepper import StepResult
        br = self.run([frame])
        return None if br is None else StepResult(index, br)

    def replay(self, name, limit=None, progress=True, **kw):
        """Replay a capture through the attached hooks: the agreement table (ReplayView)."""
        if not self:
            return NotHere("replay", self.why())
        from ..replay.run import replay as _replay
        path = capture_path(name)
        bar = None
        cb = None
        if progress:
            from ..packet.capture import count_frames
            from ..progress import WidgetBar
            try:
                total = count_frames(path)
            except Exception:           # damaged: replay() reads it leniently, count roughly
                total = 0
            total = min(total, limit) if limit and total else (limit or total)
            bar = WidgetBar(total, "replay")
            from IPython.display import display
            display(bar)
            cb = bar.update
        hooks = self.hooks

        def work():
            # replay() attaches its own hook set on this lab: ours steps aside meanwhile
            self._detach()
            try:
                kw.setdefault("precise_ts", True)
                return _replay(path, hooks=hooks, lab=self.lab, limit=limit, progress=cb,
                               xdp_mode=self.xdp_mode, **kw)
            finally:
                self._attach(hooks)
        try:
            res = in_lab_thread(work)
        finally:
            if bar is not None:
                bar.close()
        return ReplayView(res.summary(), self.unavailable)

    def follow(self, frame):
        """One frame followed through every attached hook: a Belt (timeline and table)."""
        if not self:
            return NotHere("follow a packet", self.why())
        return Belt(self.step(frame), self.via)

    def follow_each(self, name, limit=None):
        """Each frame of a capture followed on its own (one Belt per frame)."""
        if not self:
            return NotHere("follow packets", self.why())
        return [self.follow(f) for f in frames(name, limit)]

    def gaps(self, frame=None, n=20):
        """Follow ``n`` copies of ``frame`` (default: the HTTP GET of tcp-http.pcap) one at a
        time: the time between the hooks, per leg, over all of them (a Gaps table)."""
        from .results import Gaps
        if not self:
            return NotHere("the gaps between hooks", self.why())
        frame = frames("tcp-http.pcap")[3] if frame is None else frame
        return Gaps([self.follow(frame) for _ in range(int(n))])

    def compare(self, name, limit=None):
        """Every frame of a capture, the walker's record and each hook's verdict (a table)."""
        if not self:
            return NotHere("kernel records next to the walker's", self.why())
        fr = frames(name, limit)
        return BatchView(self.run(fr), self.hooks)


#: notebook cell id -> the LiveLab open_lab() made in that cell (JupyterLab says which cell runs)
_by_cell = {}


def _cell_id():
    """The id of the notebook cell running now (JupyterLab sends it with every execution), or
    None outside a notebook (a script, a test's kernel that is not told)."""
    try:
        from IPython import get_ipython
        kernel = getattr(get_ipython(), "kernel", None)
        parent = kernel.get_parent("shell") if kernel is not None else None
    except Exception:       # not in IPython, or an ipykernel without get_parent
        return None
    return ((parent or {}).get("metadata") or {}).get("cellId")


def open_lab(hooks="all", xdp_mode="generic", mtu=1500, factory=None):
    """A LiveLab: a fresh lab with ``hooks`` attached; close it with close_all() at the end.

    Running the same notebook cell again replaces the lab that cell opened before (closed
    first, and said so), instead of leaving one more lab open behind the learner's back.
    factory: the class of lab to make (pktlab.lessons.remote's RemoteLab through the workshop
    daemon; pl.open_lab chooses); default LiveLab."""
    cell = _cell_id()
    before = _by_cell.pop(cell, None) if cell else None
    replaced = None
    if before is not None and not before.closed:
        replaced = before.name
        before.close()
    lab = (factory or LiveLab)(hooks, xdp_mode=xdp_mode, mtu=mtu)
    lab.replaced = replaced
    if cell:
        _by_cell[cell] = lab
    return lab


def close_all(quiet=False):
    """Close every widget and lab this kernel opened; say what is left (must be nothing)."""
    from ..lab import leftovers
    names = []
    closed_widgets = []
    errors = []
    for w in list(_open_widgets):
        closed_widgets.append(type(getattr(w, "panel", w)).__name__)
        try:
            w.close()
        except Exception as e:      # keep going: the labs must still go
            errors.append(f"{type(w).__name__}: {e}")
        if w in _open_widgets:
            _open_widgets.remove(w)
    for lab in list(_open_labs):
        if lab.name:
            names.append(lab.name)
        try:
            lab.close()
        except Exception as e:
            errors.append(f"lab {lab.name}: {e}")
    left = [x for n in names for x in leftovers(n)]
    if quiet:
        return None
    lines = [f"closed lab {n}" for n in names] or ["no lab was open"]
    if closed_widgets:
        lines.append("closed " + ", ".join(closed_widgets))
    lines.append("nothing left behind" if not left else "LEFT BEHIND: " + ", ".join(left))
    lines += [f"error while closing {e}" for e in errors]
    cls = "pll-pass" if not left and not errors else "pll-fail"
    return HTML(f'<div class="{cls}">' + "<br>".join(esc(x) for x in lines) + "</div>",
                "; ".join(lines))
