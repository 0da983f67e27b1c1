#include <uapi/linux/bpf.h>

int pass_all(struct xdp_md *ctx) { return XDP_PASS; }
int drop_all(struct xdp_md *ctx) { return XDP_DROP; }
