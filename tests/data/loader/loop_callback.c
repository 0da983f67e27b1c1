// bpf_loop with a callback that runs bpf_loop again: 8 million turns of 8 million turns, if
// the kernel took it (bcc passes no function: refused, as root too).
#include <uapi/linux/bpf.h>

static long inner(u32 i, void *ctx)
{
    (*(u64 *)ctx)++;
    return 0;
}

static long outer(u32 i, void *ctx)
{
    bpf_loop(1 << 23, inner, ctx, 0);
    return 0;
}

int spin(struct xdp_md *ctx)
{
    u64 n = 0;
    bpf_loop(1 << 23, outer, &n, 0);           // the mistake
    return n ? XDP_PASS : XDP_DROP;
}
