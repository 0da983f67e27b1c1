"""The C the lessons show: a file of bpf_snippets/, or one function of it, highlighted."""

import re

from .. import resources


def _source_text(name):
    with open(resources.snippet_path(name)) as f:
        return f.read()


def extract_function(text, fn):
    """The text of C function ``fn`` (from its declaration to its closing brace at column 0)."""
    m = re.search(r"^[^\n;{}]*\b" + re.escape(fn) + r"\s*\([^;{]*\)\s*\{", text, re.M)
    if not m:
        raise ValueError(f"function {fn} not found")
    end = text.index("\n}\n", m.end()) + 3
    # take the comment block just above, if any
    start = m.start()
    above = text[:start]
    cm = re.search(r"(/\*(?:(?!\*/).)*\*/\n)$", above, re.S)
    if cm:
        start -= len(cm.group(1))
    return text[start:end]


def show_source(name, function=None):
    """A file of bpf_snippets/ (or one function of it), highlighted."""
    from IPython.display import Code
    text = _source_text(name)
    if function:
        text = extract_function(text, function)
    return Code(text, language="c")
