"""What every lesson's checker uses: the result a checker shows (CheckResult), the corpus the
checkers run on, a learner's answer normalized, a verifier log with its telling lines marked,
the text of a file of bpf_snippets/, and the frame the lab-based checks send.
"""

import re

from ... import resources
from ..html import HTML, NotHere, esc
from ..pcaps import captures, frames, read


def snippet_text(name):
    """The text of a file of bpf_snippets/."""
    with open(resources.snippet_path(name)) as f:
        return f.read()


def corpus_frames(limit_per_file=None):
    """(file, frame number, bytes) for every frame of every capture in the capture directory."""
    out = []
    for name in captures():
        try:
            for f in read(name, limit_per_file):
                out.append((name, f.index, f.data))
        except Exception:            # a capture the reader refuses is not an exercise's business
            continue
    return out


class CheckResult(HTML):
    """What a checker found: ``passed``, and the HTML that shows why."""

    def __init__(self, passed, title, body="", text=""):
        self.passed = bool(passed)
        mark = "passed" if passed else "not yet"
        box = (f'<div class="{"pll-pass" if passed else "pll-fail"}"><b>{esc(mark)}:</b> '
               f"{esc(title)}</div>")
        super().__init__(box + body, f"{mark}: {title}" + (f"\n{text}" if text else ""))

    def __bool__(self):
        return self.passed


_HIT = re.compile(r"invalid access to packet|outside of the packet|invalid mem access|"
                  r"unbounded|R\d+ !read_ok|math between|invalid read|out of bounds|"
                  r"min value is negative|error:", re.I)


def log_html(log, tail=18):
    """The last lines of a verifier log as HTML, the lines that say why it refused highlighted."""
    lines = [ln for ln in log.strip().splitlines() if ln.strip()]
    lines = lines[-tail:]
    out = []
    for ln in lines:
        e = esc(ln)
        out.append(f'<span class="pll-hit">{e}</span>' if _HIT.search(ln) else e)
    return '<div class="pll-log">' + "\n".join(out) + "</div>"


def norm(s):
    """A learner's answer as a comparable name: trimmed, lower case, dashes for _ and spaces."""
    return str(s).strip().lower().replace("_", "-").replace(" ", "-")


def sample_frame():
    """An ordinary frame (the HTTP GET of tcp-http.pcap) for the checks that send one."""
    fr = frames("tcp-http.pcap", 4)
    return fr[3] if len(fr) > 3 else fr[0]


def guarded(checker):
    """A checker that never raises: whatever goes wrong while it reads the learner's answer (an
    answer that cannot be iterated, compared or turned into text) is shown as a failed check
    that says what happened, and the notebook goes on."""
    import functools

    @functools.wraps(checker)
    def wrapper(*args, **kwargs):
        from ...errors import PktlabError
        try:
            return checker(*args, **kwargs)
        except PktlabError as e:        # the lab or the kernel: not the learner's doing
            return NotHere(checker.__name__, str(e))
        except Exception as e:          # the learner's answer object
            return CheckResult(False, f"the check could not use your answer "
                                      f"({type(e).__name__}: {e})")
    return wrapper
