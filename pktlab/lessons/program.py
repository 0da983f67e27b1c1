"""A learner's own program in a notebook: `%%bpf HOOK [FUNC]` (pktlab.lessons.magic) and
``pl.program(source, hook=...)``, both making a Program.

    prog = pl.program(c_text, hook="xdp")       # compiled and loaded by the learner loader
    prog                                        # loaded (name, type, maps) or refused (the
                                                # explainer at the learner's line, log folded)
    prog.test_run("mixed.pcap")                 # BPF_PROG_TEST_RUN per frame: return codes
    prog.maps                                   # live tables (ipywidgets), one per map
    prog.attach(lab)                            # in the learner's open lab (pl.open_lab)
    prog.replay("mixed.pcap", lab=lab)          # verdicts counted by name, maps at the end
    prog.close()                                # nothing left: no attachment, no fd

What is loaded is pktlab's counting wrapper around the learner's function (pktlab.kernel.
verdicts, as `pktlab run` loads it): the learner's lines stay the learner's, test runs return
what the learner's function returned, and a replay counts live verdicts by name. When the
wrapper does not load, the learner's C is loaded again as written, so that the verdict and its
explanation are about what the learner wrote (pktlab verify's). Everything goes through the
learner loader (pktlab.kernel.loader): the fds stay in this process, and close() gives them
back; the lab's close() and pl.close_all() close the program too. A learner who is not root
(`.remote`) has it loaded by the same loader in pktlab's workshop daemon, which holds it on
the notebook's connection (pktlab.lessons.remote.RemoteProgram): test runs, maps, attach and
replay are requests, in the notebook's own labs only; what they show is the same.

The C given to the %%bpf magic starts on the cell's second line: it is loaded with one empty
line on top, so that every line the compiler or the verifier names is the cell's own line.
"""

import ctypes
import re
import threading

from ..owned import Owned
from .here import in_lab_thread, not_here
from .html import CSS, NotHere
from .live import LAB_PREFIX, register_widget, unregister_widget
from .programviews import MapTables, ReplayResult, TestRunView, loaded_html, refused_html

#: the packet hooks a learner's program may attach to -> its program type
HOOKS = {"xdp": "XDP", "tc-ingress": "SCHED_CLS", "tc-egress": "SCHED_CLS"}
CELL_NAME = "cell.c"
TEST_RUN_MAX = 2000            # frames one test run takes at most
REPLAY_CHUNK = 64              # frames sent before the live tables are refreshed
_CTX = re.compile(r"^[ \t]*(?!static\b)(?:[\w\s*]*?)\b(?P<name>[A-Za-z_]\w*)\s*\(\s*(?:const\s+)?"
                  r"struct\s+(?:xdp_md|__sk_buff)\s*\*", re.M)

_last = None


def last_program():
    """The Program the last %%bpf cell or pl.program() made (None before the first)."""
    return _last


def check_hook(hook):
    """A hook a learner's program may attach to -> its program type; ValueError otherwise."""
    if hook not in HOOKS:
        raise ValueError(f"hook {hook!r}: a program of yours attaches at {', '.join(HOOKS)} "
                         "(the packet hooks of a lab)")
    return HOOKS[hook]


def check_func(func):
    if func is not None and not (isinstance(func, str) and func.isidentifier()):
        raise ValueError(f"func {func!r}: the name of a C function in the program")
    return func


def program(source, hook="xdp", func=None, first_line=1):
    """Compile and load `source` (C text: bcc's dialect, the uapi headers and pktlab's in view)
    through the learner loader as `hook`'s program type: a Program, shown as its verdict.
    `func` names the program when the text defines several. `first_line` is the line of
    `source`'s first line in what the learner sees (2 for a %%bpf cell). A bad hook or func
    raises ValueError; anything else is shown."""
    global _last
    check_hook(hook)
    check_func(func)
    if isinstance(source, bytes):
        source = source.decode("utf-8", errors="replace")
    if not isinstance(source, str):
        raise ValueError(f"source: C text (a str), not {type(source).__name__}")
    _last = Program(source, hook, func, first_line)
    return _last


def programs_in(source):
    """The names of the functions `source` defines at file scope with a context parameter
    (struct xdp_md * or struct __sk_buff *), static ones left out: its programs."""
    from ..kernel.verdicts import _blank, top_level_names
    code = _blank(source)
    names = dict.fromkeys(m.group("name") for m in _CTX.finditer(code))
    return [n for n in names if top_level_names(source, n)]


class Program(Owned):
    """A learner's program: `.source` (the C as written), `.hook`, `.func` (the program's
    function), `.ok` (loaded), `.attempt` (the loader's Attempt), `.report` (the verifier's
    Report), `.why` (why it was not tried here, or what is wrong with the request)."""

    def __init__(self, source, hook, func=None, first_line=1):
        self.source, self.hook, self.func = source, hook, func
        self.prog_type = check_hook(hook)
        self.first_line = max(1, int(first_line))
        self.ok, self.attempt, self.report, self.why = False, None, None, None
        self.counted = False            # loaded with pktlab's counting wrapper around it
        self.note = None                # said under the verdict (a replaced program, ...)
        self._prog = self._attachment = self._lab = self._base = self._tables = None
        self._lock = threading.RLock()
        self.remote = False             # loaded in pktlabd (not root: pktlab.lessons.remote)
        self._load()
        if self._prog is not None:
            self._hold()
            register_widget(self)

    # loading ------------------------------------------------------------------------------
    def _text(self):
        return ("\n" * (self.first_line - 1) + self.source).encode("utf-8")

    def _load(self):
        from ..errors import PktlabError
        from ..kernel import loader
        from .remote import through_daemon
        guess = programs_in(self.source)
        self.func = self.func or (guess[0] if len(guess) == 1 else None)
        self.remote = through_daemon()
        if not self.remote:
            missing = not_here("your program", self.hook)
            if missing is not None:
                self.why = missing.why
                return
            ok, reason = loader.available()
            if not ok:
                self.why = reason
                return
        try:
            in_lab_thread(self._load_in)
        except (PktlabError, OSError) as e:
            self.why = str(e)

    def _load_one(self, text, func):
        """(the loader's Attempt, the program or None): here, or in pktlabd (self.remote)."""
        from .. import resources
        from ..kernel import loader
        from ..kernel.progload import LoadRequest
        if self.remote:
            from .remote import load_program
            a, prog, _doc, _blob = load_program(text, CELL_NAME, self.prog_type, func,
                                                hook=self.hook)
            return a, prog
        return loader.load(LoadRequest(text, CELL_NAME, self.prog_type, func,
                                       (resources.snippets_dir(),)))

    def _load_in(self):
        from ..kernel import verdicts, verifier
        text = self._text()
        func = self.func
        if func and verdicts.top_level_names(text.decode("latin-1"), func):
            wrapped = verdicts.wrap(text, func, self.prog_type)
            a, prog = self._load_one(wrapped, verdicts.WRAPPER_FUNC)
            if prog is not None:
                self.attempt, self._prog, self.ok, self.counted = a, prog, True, True
                self.report = verifier.judge(a, CELL_NAME, self.hook, wrapped)
                self.report.function = func
                return
        # refused (or no single program to wrap): the C as written, explained as written
        a, prog = self._load_one(text, self.func)
        self.attempt = a
        try:
            self.report = verifier.judge(a, CELL_NAME, self.hook, text, self.func)
        except ValueError as e:        # no program, several, or no such function
            if prog is not None:
                prog.close()
            self.why = str(e).replace("choose one with --func NAME",
                                      "name one: `%%bpf HOOK NAME`, or func=NAME")
            return
        self.func = self.func or a.func
        if prog is not None:
            self._prog, self.ok = prog, True
            self.note = ("pktlab's counting wrapper did not load around it: test runs and its "
                         "maps work, .attach() and .replay() do not")

    # what it shows ------------------------------------------------------------------------
    def _repr_html_(self):
        if self.why is not None:
            return NotHere(f"your program{' ' + self.func if self.func else ''}",
                           self.why)._repr_html_()
        if not self.ok:
            return CSS + refused_html(self.report, self.first_line)
        return CSS + loaded_html(self)

    def __repr__(self):
        if self.why is not None:
            return f"<program {self.func or '?'} at {self.hook}: not loaded: {self.why}>"
        if not self.ok:
            from ..kernel.verifier import format_text
            return format_text(self.report)
        state = "closed" if self.closed else (f"attached in lab {self._base.name}"
                                              if self._attachment is not None else "loaded")
        return f"<program {self.func} ({self.prog_type}) at {self.hook}: {state}>"

    def __bool__(self):
        return self.ok and not self.closed

    def _not_usable(self, what):
        """None when `what` can be done, else the NotHere that says why not."""
        if self.why is not None:
            return NotHere(what, self.why)
        if not self.ok:
            line = (self.report.errors[0].get("line") if self.report and self.report.errors
                    else None)
            return NotHere(what, "your program did not load" + (f" (line {line})" if line
                                                                 else "") + ": fix it and run "
                           "its cell again")
        if self.closed:
            return NotHere(what, "this program is closed (run its cell again to load it)")
        return None

    @property
    def maps_info(self):
        """{map name: its LearnerMap} of the learner's own maps (pktlab's counting maps left
        out)."""
        from ..kernel import verdicts
        if self._prog is None:
            return {}
        return {n: m for n, m in self._prog.maps.items()
                if n not in (verdicts.MAP, verdicts.CONFIG)}

    def dump(self):
        """The learner's maps now, as pktlab run prints them: (maps, info) (mapdump.dump)."""
        from ..kernel import mapdump, verdicts
        with self._lock:
            if self.closed:
                return {}, {}
            if self.remote:
                return self._prog.dump(skip={verdicts.MAP, verdicts.CONFIG})
            return mapdump.dump(self._prog, skip={verdicts.MAP, verdicts.CONFIG})

    # test runs ----------------------------------------------------------------------------
    def test_run(self, capture_or_frames, limit=TEST_RUN_MAX):
        """BPF_PROG_TEST_RUN on each frame of a capture (a name or path) or of a list of
        frames (bytes): the return code of each, by name (a TestRunView: `.codes`,
        `.counts`). At most `limit` frames (TEST_RUN_MAX)."""
        bad = self._not_usable("test run")
        if bad is not None:
            return bad
        from ..errors import PktlabError
        from .pcaps import capture_path, frames
        limit = max(1, min(int(limit), TEST_RUN_MAX))
        try:
            if isinstance(capture_or_frames, str) or hasattr(capture_or_frames, "__fspath__"):
                name = str(capture_or_frames)
                fr = frames(capture_path(name), limit + 1)
            elif isinstance(capture_or_frames, (bytes, bytearray, memoryview)):
                name, fr = None, [bytes(capture_or_frames)]
            else:
                name = None
                fr = [bytes(f) for f in list(capture_or_frames)[:limit + 1]]
        except (OSError, ValueError, TypeError, PktlabError) as e:
            return NotHere("test run", str(e))
        capped = len(fr) > limit
        fr = fr[:limit]
        try:
            results = self._run_remote(fr) if self.remote else [self._run_one(f) for f in fr]
        except PktlabError as e:
            return NotHere("test run", str(e))
        return TestRunView(name, fr, results, capped, self)

    def _run_remote(self, frames):
        """_run_one's answers for every frame, from one request to pktlabd."""
        from ..kernel import verdicts
        from ..kernel.bpf import MIN_TEST_RUN_FRAME
        out = [None] * len(frames)
        run = [i for i, f in enumerate(frames) if len(f) >= MIN_TEST_RUN_FRAME]
        for i, f in enumerate(frames):
            if len(f) < MIN_TEST_RUN_FRAME:
                out[i] = (None, f"not run: {len(f)} bytes (the kernel runs a program on "
                                f"{MIN_TEST_RUN_FRAME} bytes at least)")
        with self._lock:
            if self.closed:
                return [(None, "not run: the program was closed")] * len(frames)
            doc = self._prog.test_runs([frames[i] for i in run]) if run else {"runs": []}
        for i, (rc, ns) in zip(run, doc["runs"]):
            if rc is None:
                out[i] = (None, f"not run: {ns}")
            else:
                rc = ctypes_int(rc)
                out[i] = (rc, verdicts.NAMES[self.prog_type].get(rc, f"rc={rc}"))
        return out

    def _run_one(self, frame):
        """(return code or None, its name or why the frame was not run)."""
        from ..errors import BPFError
        from ..kernel import verdicts
        from ..kernel.bpf import MIN_TEST_RUN_FRAME
        if len(frame) < MIN_TEST_RUN_FRAME:
            return None, (f"not run: {len(frame)} bytes (the kernel runs a program on "
                          f"{MIN_TEST_RUN_FRAME} bytes at least)")
        with self._lock:
            if self.closed:
                return None, "not run: the program was closed"
            try:
                rc, _ns = self._prog.test_run(frame)
            except BPFError as e:
                return None, f"not run: {e}"
        rc = ctypes_int(rc)
        return rc, verdicts.NAMES[self.prog_type].get(rc, f"rc={rc}")

    # in a lab -----------------------------------------------------------------------------
    def attach(self, lab):
        """Attach the program at its hook in `lab` (the learner's pl.open_lab(...), or a
        pktlab.lab.Lab). The lab's own hooks step aside while it is there; detach() (or
        close(), or the lab's close) brings them back. Returns the program (shown)."""
        bad = self._not_usable("attach")
        bad = bad if bad is not None else self._not_counted("attach")
        if bad is not None:
            return bad
        base = getattr(lab, "lab", lab) if hasattr(lab, "lend") else lab
        if base is None or getattr(base, "closed", True):
            why = lab.why() if hasattr(lab, "why") else "the lab is closed"
            return NotHere("attach", why or "the lab is closed")
        if self._lab is lab and self._attachment is not None:
            return self
        if self._attachment is not None:
            self.detach()
        from ..errors import PktlabError
        try:
            in_lab_thread(self._attach_in, lab)
        except PktlabError as e:
            return NotHere("attach", str(e))
        return self

    def _not_counted(self, what):
        if not self.counted:
            return NotHere(what, self.note or "pktlab's counting wrapper is not loaded")
        return None

    def _attach_in(self, lab):
        if self.remote:
            return self._attach_remote(lab)
        from ..kernel import verdicts
        from ..replay import learner
        live = hasattr(lab, "lend")
        base = lab.lab if live else lab
        if live:
            lab.lend(self)
        try:
            att = learner.attach(base, self.hook, self._prog.fd)
            try:
                verdicts.skip_source(self._prog, base.mac("src"))
            except BaseException:
                att.close()
                raise
        except BaseException:
            if live:
                lab.give_back(self)
            raise
        self._attachment, self._lab, self._base = att, lab, base

    def detach(self):
        """Take the program off its lab (the lab's own hooks come back); it stays loaded."""
        if self._attachment is not None:
            in_lab_thread(self._detach_in)
        return self

    def _attach_remote(self, lab):
        """In a lab of this notebook's held by pktlabd (a RemoteLab on the same connection):
        the daemon attaches the program there, its hooks step aside."""
        from ..errors import PktlabError
        if getattr(lab, "client", None) is not self._prog.client or lab.lab is None:
            raise PktlabError("a program loaded through the workshop daemon attaches only in a "
                              "lab this notebook opened with pl.open_lab(...)")
        lab.lend(self)
        try:
            self._prog.lab("attach", lab.lab.name)
        except BaseException:
            lab.give_back(self)
            raise
        self._attachment, self._lab, self._base = "pktlabd", lab, lab.lab

    def _detach_remote(self):
        lab = self._lab
        self._attachment = self._lab = self._base = None
        try:
            if not self._prog.closed and not self._prog.client.closed:
                self._prog.lab("detach")
        finally:
            lab.give_back(self)

    def _detach_in(self):
        from ..kernel.bpfobj import map_update
        from ..kernel import verdicts
        if self.remote and self._attachment is not None:
            return self._detach_remote()
        att, lab, base = self._attachment, self._lab, self._base
        self._attachment = self._lab = self._base = None
        if att is None:
            return
        try:
            att.close()
            if att in getattr(base, "_owned", []):
                base._owned.remove(att)
        finally:
            try:
                if self._prog is not None and not self._prog.closed:
                    map_update(self._prog.maps[verdicts.CONFIG].fd, ctypes.c_uint32(0),
                               bytes(8))
            finally:
                if hasattr(lab, "give_back"):
                    lab.give_back(self)

    @property
    def attached(self):
        """The name of the lab the program is attached in, or None."""
        return self._base.name if self._attachment is not None else None

    def replay(self, capture, lab=None):
        """Send a capture's frames across a lab through the program, its return codes counted
        by name (pktlab run's wrapper): in `lab` when given (attached there for the replay
        only, unless it already is), else in the lab it is attached in, else in a throwaway
        lab. The live tables (.maps) refresh as it goes. A ReplayResult."""
        bad = self._not_usable("replay")
        bad = bad if bad is not None else self._not_counted("replay")
        if bad is not None:
            return bad
        from ..errors import PktlabError
        from ..replay import learner
        from .pcaps import capture_path
        target = lab if lab is not None else self._lab
        try:
            path = capture_path(capture)
            mtu = getattr(getattr(target, "lab", target), "mtu", 1500) if target else 1500
            learner.check_capture(path, mtu)
        except (OSError, ValueError, PktlabError) as e:
            return NotHere("replay", str(e))
        if hasattr(target, "lend") and target.lab is None:
            return NotHere("replay", target.why())
        if self.remote:
            return self._replay_remote(path, target)
        try:
            return in_lab_thread(self._replay_in, path, lab)
        except PktlabError as e:
            return NotHere("replay", str(e))

    def _replay_in(self, path, lab):
        import contextlib

        from ..lab import Lab
        from ..replay import learner
        with contextlib.ExitStack() as stack:
            if self._attachment is None or (lab is not None and lab is not self._lab):
                before = self._lab
                if self._attachment is not None:
                    self._detach_in()
                target = lab if lab is not None else stack.enter_context(Lab(prefix=LAB_PREFIX))
                self._attach_in(target)
                stack.callback(self._detach_in)
                if before is not None:      # back where it was, once done
                    stack.callback(self._attach_in, before)
            lab_name = self._base.name
            if self._tables is not None:
                self._tables.refresh()
            doc = learner.replay_attached(self._prog, self._base, path, chunk=REPLAY_CHUNK,
                                          on_chunk=self._on_chunk)
        maps, info = self.dump()
        if self._tables is not None:
            self._tables.refresh()
        return ReplayResult(dict(doc, lab=lab_name, pcap=path, function=self.func,
                                 hook=self.hook, maps=maps, maps_info=info))

    def _replay_remote(self, path, target):
        """The replay in pktlabd: in `target` (a lab of this notebook's) or a throwaway lab of
        the learner's there; the live tables are read again once it is done."""
        import os

        from ..errors import PktlabError
        from ..workshop.client import read_capture
        name = None
        if target is not None:
            if getattr(target, "client", None) is not self._prog.client:
                return NotHere("replay", "a program loaded through the workshop daemon "
                               "replays in a lab this notebook opened with pl.open_lab(...)")
            name = target.lab.name
        tables = self._tables

        def went(doc):                  # the daemon's maps as the replay goes
            tables.show(doc.get("maps", {}), doc.get("maps_info", {}))
        try:
            doc, _ = self._prog.lab("replay", name, read_capture(path),
                                    label=os.path.basename(str(path)),
                                    on_progress=went if tables is not None else None)
        except (PktlabError, OSError, ValueError) as e:
            return NotHere("replay", str(e))
        if self._tables is not None:
            self._tables.refresh()
        return ReplayResult(dict(doc, pcap=str(path), function=self.func, hook=self.hook))

    def _on_chunk(self, _sent):
        if self._tables is not None:
            self._tables.refresh()

    # live tables --------------------------------------------------------------------------
    @property
    def maps(self):
        """The program's maps as live tables (ipywidgets): refreshed every REFRESH_S seconds
        by a background thread and between the chunks of a replay, until close()."""
        bad = self._not_usable("the program's maps")
        if bad is not None:
            return bad
        if self._tables is None:
            self._tables = MapTables(self)
            self._tables.start()
        return self._tables

    def _release(self):
        tables = self._tables
        if tables is not None:
            tables.stop()           # first: its thread takes the lock to read the maps
        try:
            if self._attachment is not None:
                in_lab_thread(self._detach_in)
        finally:
            with self._lock:
                prog, self._prog = self._prog, None
                if prog is not None:
                    prog.close()
            if tables is not None:
                tables.refresh()     # says closed
            unregister_widget(self)


def ctypes_int(rc):
    """A test run's return value (unsigned 32 bits) as the signed int a program returns."""
    rc = int(rc) & 0xFFFFFFFF
    return rc - (1 << 32) if rc >= 1 << 31 else rc

