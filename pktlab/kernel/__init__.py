"""kernel: eBPF programs compiled, loaded and attached.

Lives here: compiling and loading programs with bcc (bpf), the running kernel's BTF (btf),
attachments that remove exactly what they attached (attach), the hook set with its kprobe
mechanism fallback (hooks), and the per-CPU record rings read from Python (ringbuf). To come:
the verifier explainer and the learner loader.

May import: lab (a program is attached to a lab's interface), packet, and the base modules.
"""
