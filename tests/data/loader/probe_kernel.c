// A tracing helper at XDP: reads kernel memory, which needs CAP_PERFMON.
#include <uapi/linux/bpf.h>

int peek(struct xdp_md *ctx)
{
    u64 word = 0;
    bpf_probe_read_kernel(&word, sizeof(word), (void *)(long)ctx->data);   // the mistake
    return word ? XDP_PASS : XDP_DROP;
}
