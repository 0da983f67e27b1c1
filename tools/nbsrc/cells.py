"""What every lesson's source uses: markdown and code cells, the first cell's import, the
closing cells, and a C exercise taken from pktlab's own sources."""

IMPORT = "from pktlab import lessons as pl"
CLOSE_MD = ("## Clean up\n\nThe last cell closes every lab and widget this notebook opened "
            "(namespaces, veth, attached programs) and says what is left: it must be nothing. "
            "If the kernel is shut down first, the lab goes anyway (a watcher process removes it).")
CLOSE = "pl.close_all()"


def md(text):
    return ("markdown", text.strip("\n"))


def code(text):
    return ("code", text.strip("\n"))


def c_exercise(var, name, checker):
    from pktlab.lessons.exercises import exercise_source
    src = exercise_source(name)
    if '"""' in src or "\\" in src:
        raise ValueError(f"{name}: the function text cannot go in a raw triple-quoted string")
    return code(f'{var} = r"""\n{src.rstrip()}\n"""\n\npl.exercises.{checker}({var})')
