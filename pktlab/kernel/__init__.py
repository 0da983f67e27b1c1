"""kernel: eBPF programs compiled, loaded and attached.

Lives here: compiling and loading programs with bcc (bpf), the running kernel's BTF (btf),
attachments that remove exactly what they attached (attach), the hook set with its kprobe
mechanism fallback (hooks), the socket-end hooks (sockhooks: cgroup-ingress, socket-filter,
sk-skb, recv) and their attachments (sockattach: cgroup, SO_ATTACH_BPF through pidfd_getfd,
sockhash, tracepoints), the per-CPU record rings read from Python (ringbuf), and a
learner's program compiled and loaded with every refusal explained at the learner's line
(verifier, over progload). Learner programs are loaded by the learner loader (loader): a fresh
worker per request (loadworker) in its own cell (sandbox: its own view of the filesystem, an
unprivileged account with CAP_BPF and CAP_NET_ADMIN only, limits, a seccomp filter) whose
maps pktlab allows or refuses before the kernel makes them (mappolicy), and whose program and
map fds only pktlab holds (bpfobj: what the kernel says about an fd, who holds an id).

May import: lab (a program is attached to a lab's interface), packet, and the base modules.
"""
