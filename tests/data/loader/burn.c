// The compiler unrolls this loop ITERATIONS times: seconds of CPU for a big number.
#include <uapi/linux/bpf.h>

int burn(struct xdp_md *ctx)
{
    u64 x = ctx->ingress_ifindex;
#pragma clang loop unroll(full)
    for (u32 i = 0; i < ITERATIONS; i++)
        x = x * 2654435761u + (x >> 7) + i;
    return x ? XDP_PASS : XDP_DROP;
}
