#include "/etc/shadow"

int prog(struct xdp_md *ctx)
{
    return XDP_PASS;
}
