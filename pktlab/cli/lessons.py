"""`pktlab lessons reset [NN ...] [--all] [--workdir DIR] [--json]`: a learner's copy of lessons
back as shipped, a dated backup of each copy it replaces kept (pktlab/lessons/reset.py)."""


def add_parser(sub):
    ls = sub.add_parser("lessons", help="the lessons: put a learner's copies back as shipped")
    lsub = ls.add_subparsers(dest="lessons_cmd", metavar="ACTION")
    lsub.required = True
    r = lsub.add_parser("reset", help="a learner's copy of lessons back as shipped (a dated "
                                      "backup of each replaced copy is kept)")
    r.add_argument("numbers", nargs="*", metavar="NN", help="lesson numbers, e.g. 02 03")
    r.add_argument("--all", dest="all_lessons", action="store_true", help="every lesson")
    r.add_argument("--workdir", metavar="DIR", default=None,
                   help="the learner's copies (default: $PKTLAB_WORKDIR, else the work/ "
                        "folder `make lab` serves)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_reset)


def cmd_reset(args):
    """Exit 0: done (or nothing to do); 2: unknown lesson numbers, or no such directory (said
    in one line, before any file is touched)."""
    import json

    from ..lessons.reset import reset
    out = reset(args.numbers, all_lessons=args.all_lessons, workdir=args.workdir)
    if args.json:
        print(json.dumps(out.to_dict(), indent=2))
    else:
        print(out.text())
    return 0
