// Redirect every frame through a DEVMAP: a map that holds interfaces.
#include <uapi/linux/bpf.h>

BPF_DEVMAP(out_ports, 4);       // the mistake

int redirect(struct xdp_md *ctx)
{
    return out_ports.redirect_map(0, XDP_PASS);
}
