"""kernel: eBPF programs compiled, loaded and attached.

Lives here: compiling and loading programs with bcc (bpf), the running kernel's BTF (btf),
attachments that remove exactly what they attached (attach), the hook set with its kprobe
mechanism fallback (hooks), the per-CPU record rings read from Python (ringbuf), and a
learner's program compiled and loaded with every refusal explained at the learner's line
(verifier, over progload, whose loader a restricted one can replace).

May import: lab (a program is attached to a lab's interface), packet, and the base modules.
"""
