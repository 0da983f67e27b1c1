/* Mistake: printing from the program. bpf_trace_printk() writes to the kernel's trace pipe;
 * without CAP_PERFMON the verifier refuses it. */
#include <uapi/linux/bpf.h>

int say_hello(struct xdp_md *ctx)
{
	bpf_trace_printk("hello\n"); /* the mistake: a helper that needs CAP_PERFMON */
	return XDP_PASS;
}
