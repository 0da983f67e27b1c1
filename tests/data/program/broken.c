// Does not compile: a declaration without its semicolon.
#include <uapi/linux/bpf.h>

int broken(struct xdp_md *ctx)
{
    int verdict = XDP_PASS      // the mistake
    return verdict;
}
