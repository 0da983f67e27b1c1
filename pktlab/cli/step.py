"""`pktlab replay --step`: one frame at a time in a terminal (Enter for the next, q to stop);
every frame when stdin is a pipe."""

import sys


def step_cli(args, stdin=None, out=None, replayer=None):
    """`pktlab replay --step`: interactive in a terminal, every frame when stdin is a pipe.

    replayer: what sends the frames (pktlab.cli.remote's, through the workshop daemon);
    default a Replayer on a lab of this process's own."""
    from ..replay.run import Replayer, _frames_from
    from ..replay.stepper import Stepper
    from .args import rewrite_options
    stdin = stdin or sys.stdin
    if stdin is None:               # started with stdin closed (`<&-`): as at a script's end
        import io
        stdin = io.StringIO("")
    out = out or sys.stdout
    problems = []
    color = out.isatty()
    # one frame at a time: ns timestamps cost nothing that matters here, and they order the hooks
    if replayer is None:
        replayer = Replayer(args.hooks, xdp_mode=args.xdp_mode, mtu=args.mtu,
                            rewrite=rewrite_options(args), precise_ts=True)
    with replayer as rp:
        print(f"stepping through {args.pcap} with hooks: "
              + ", ".join(f"{h} ({v})" for h, v in rp.via.items()), file=out)
        st = Stepper(rp, _frames_from(args.pcap, problems, args.limit))
        bad = 0
        while True:
            res = st.step()
            if res is None:
                print("end of capture", file=out)
                break
            print(res.text(color=color), file=out)
            bad += sum(v in ("disagree", "lost") for v in res.verdicts().values())
            print("[Enter] next frame, [q] quit: ", end="", file=out, flush=True)
            line = stdin.readline()
            print(file=out)
            # q stops; Ctrl-D at a terminal stops; a script's stdin at its end runs the rest
            if line.strip().lower() == "q" or (line == "" and stdin.isatty()):
                break
    for p in problems:
        print(f"capture problem: {p}", file=out)
    return 1 if bad else 0

