/* Mistake: pointer arithmetic that only a privileged loader may do. data_end - data
 * subtracts two pointers; without CAP_PERFMON the verifier refuses it. */
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>

int short_frames(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u64 len = data_end - data; /* the mistake: pointer minus pointer */

	return len < 64 ? TC_ACT_SHOT : TC_ACT_OK;
}
