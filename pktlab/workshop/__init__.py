"""workshop: many learners on one host, with the kernel work behind a privilege boundary.

room: the workshop (DESIGN.md, "Privilege boundary"; issue 16). Lives here: the root daemon
`pktlabd` that does pktlab's kernel operations for unprivileged callers on a Unix socket
(daemon, protocol, client), and the JupyterHub side of `pktlab workshop up|status|reset|down`:
the learner accounts and their working copies (accounts), the hub's configuration, its own
password check, its start and its end (hub).

May import: doctor (opsmptcp runs it for a learner), replay, bench, sockets, mptcp, kernel,
lab, packet and the base modules (errors, progress, resources, owned). Never lessons or cli: `pktlab workshop reset` (cli) puts lessons back with
pktlab.lessons.reset on the learner's directory that this room names.

Nothing is imported here at import time: JupyterHub loads pktlab.workshop.hubauth inside the
hub's own process, and the daemon's modules must not come along with it.
"""
