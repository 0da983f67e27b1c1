"""The `%%bpf HOOK [FUNC]` cell magic: the cell's C compiled and loaded as a learner's program.

    %%bpf xdp count_types
    #include <uapi/linux/bpf.h>
    ...
    int count_types(struct xdp_md *ctx) { ... }

shows the verdict (pktlab.lessons.program) and binds the Program under the function's name
(here `count_types`), as the cell's result (`_`) and as pl.last_program(). HOOK is one of
xdp, tc-ingress, tc-egress. Running the cell again closes the program the name held before.

`from pktlab import lessons as pl` registers it in a running IPython (register()); outside
IPython nothing happens and nothing fails. `%load_ext pktlab.lessons.magic` registers it too.
"""

import sys

USAGE = "usage: %%bpf HOOK [FUNC], HOOK one of xdp, tc-ingress, tc-egress; the C below"


def parse_line(line):
    """The magic's line -> (hook, func or None); ValueError in one line when it is wrong."""
    from .program import HOOKS, check_func
    args = line.split()
    if not args or len(args) > 2:
        raise ValueError(USAGE)
    hook, func = args[0], (args[1] if len(args) == 2 else None)
    if hook not in HOOKS:
        raise ValueError(f"%%bpf {hook}: not a hook a program of yours attaches to; choose "
                         f"{', '.join(HOOKS)}")
    check_func(func)
    return hook, func


def make_magic(shell):
    """The cell magic's function for `shell` (an IPython InteractiveShell)."""

    def bpf(line, cell):
        from IPython.core.error import UsageError

        from .program import Program, program
        try:
            hook, func = parse_line(line)
        except ValueError as e:
            raise UsageError(str(e)) from None
        prog = program(cell, hook=hook, func=func, first_line=2)
        name = prog.func
        if name and name.isidentifier():
            before = shell.user_ns.get(name)
            if isinstance(before, Program) and before is not prog and not before.closed:
                before.close()
                prog.note = ((prog.note + "; ") if prog.note else "") + \
                    f"closed the {name} an earlier run of this cell loaded"
            shell.user_ns[name] = prog
        return prog
    bpf.__doc__ = __doc__
    return bpf


def register(shell=None):
    """Register %%bpf in `shell`, or in the IPython running this code; True when it is
    registered, False outside IPython (never an error: a script imports lessons too)."""
    try:
        if shell is None:
            if "IPython" not in sys.modules:
                return False
            from IPython import get_ipython
            shell = get_ipython()
        if shell is None:
            return False
        shell.register_magic_function(make_magic(shell), magic_kind="cell", magic_name="bpf")
        return True
    except Exception:           # an IPython too old or too odd: the lessons work without it
        return False


def load_ipython_extension(shell):
    register(shell)
