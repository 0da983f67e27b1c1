#include <uapi/linux/bpf.h>

int broken(struct xdp_md *ctx)
{
    return XDP_PASS    // the mistake
}
