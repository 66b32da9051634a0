/* sipcm.bpf.c: pick SIP packets out of an interface's traffic and copy them to one ring.
 *
 * sipcm_xdp runs on ingress (XDP), sipcm_egress on egress (TC clsact / tcx). Both share the
 * maps below. A packet is selected when (SPEC section 3):
 *   - it is UDP or TCP with source or destination port in `sip_ports`, or
 *   - it is UDP to a port in `vxlan_ports` and its inner Ethernet frame is selected by the
 *     same rules (one level of encapsulation), or
 *   - it is a later (non-first) IPv4/IPv6 fragment of a datagram whose first fragment was
 *     selected: first fragments are remembered in the `frags` LRU table keyed by (family,
 *     src, dst, id, proto). A later fragment that arrives before its first fragment is not
 *     copied (counted as frag_unmatched); Linux and common stacks send first fragments first.
 *   - `heuristic` is switched on in `config` and the payload starts with a SIP method token
 *     or "SIP/2.0 " (segments that do not start a message are not caught this way).
 * The programs always return XDP_PASS / TC_ACT_OK and never write to the packet.
 *
 * Compile-time settings (cflags from sipcm/capture/program.py):
 *   SIPCM_SNAP_LEN   bytes copied at most per packet (<= 65535)
 *   SIPCM_SNAP_MASK  2^k - 1 >= SIPCM_SNAP_LEN; bounds the copy length for the verifier
 *   SIPCM_NSLOTS     scratch slots: 2 per possible CPU (one per program type)
 *   SIPCM_RING_PAGES ring size in pages (power of two)
 *   SIPCM_FRAG_ENTRIES size of the first-fragment LRU table
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>

#include "sipcm.h"
#include "parsing.h"

#ifndef SIPCM_SNAP_LEN
#define SIPCM_SNAP_LEN 65535
#endif
#ifndef SIPCM_SNAP_MASK
#define SIPCM_SNAP_MASK 0xffff
#endif
#ifndef SIPCM_NSLOTS
#define SIPCM_NSLOTS 256
#endif
#ifndef SIPCM_RING_PAGES
#define SIPCM_RING_PAGES 4096
#endif
#ifndef SIPCM_FRAG_ENTRIES
#define SIPCM_FRAG_ENTRIES 16384
#endif

struct sipcm_scratch {
    struct sipcm_rec hdr;
    __u8 data[SIPCM_SNAP_MASK + 1];
};

BPF_RINGBUF_OUTPUT(events, SIPCM_RING_PAGES);
BPF_ARRAY(sip_ports, __u8, 65536);
BPF_ARRAY(vxlan_ports, __u8, 65536);
BPF_ARRAY(config, __u32, CFG_MAX);
BPF_PERCPU_ARRAY(counters, __u64, CNT_MAX);
BPF_ARRAY(scratch, struct sipcm_scratch, SIPCM_NSLOTS);
BPF_TABLE("lru_hash", struct sipcm_frag_key, __u8, frags, SIPCM_FRAG_ENTRIES);

static __always_inline void count(__u32 idx)
{
    __u64 *c = counters.lookup(&idx);
    if (c)
        *c += 1;
}

static __always_inline int port_in(__u16 port, int vxlan)
{
    __u32 key = port;
    __u8 *v = vxlan ? vxlan_ports.lookup(&key) : sip_ports.lookup(&key);
    return v && *v;
}

/* Is the (already parsed) frame SIP by port, fragment table or payload prefix? */
static __always_inline int l4_selected(void *ctx, int xdp, struct sipcm_l4 *r, int heuristic)
{
    if (r->frag == FRAG_LATER) {
        if (frags.lookup(&r->key)) {
            count(CNT_FRAG_MATCHED);
            return 1;
        }
        count(CNT_FRAG_UNMATCHED);
        return 0;
    }
    if (r->proto != 17 && r->proto != 6)
        return 0;
    if (port_in(r->sport, 0) || port_in(r->dport, 0))
        return 1;
    if (heuristic && sipcm_sip_prefix(ctx, xdp, r->payoff)) {
        count(CNT_HEURISTIC);
        return 1;
    }
    return 0;
}

static __always_inline void remember_first(struct sipcm_l4 *r)
{
    if (r->frag != FRAG_FIRST)
        return;
    __u8 one = 1;
    frags.update(&r->key, &one);
    count(CNT_FRAG_FIRST);
}

static __always_inline int selected(void *ctx, int xdp)
{
    struct sipcm_l4 outer = {};
    int rc = sipcm_parse(ctx, xdp, 0, &outer);
    if (rc < 0)
        count(CNT_SHORT);
    if (rc != 0)
        return 0;

    __u32 hkey = CFG_HEURISTIC;
    __u32 *hv = config.lookup(&hkey);
    int heuristic = hv && *hv;

    if (l4_selected(ctx, xdp, &outer, heuristic)) {
        remember_first(&outer);
        return 1;
    }
    if (outer.proto != 17 || !port_in(outer.dport, 1))
        return 0;

    /* VXLAN (RFC 7348 section 5): 8-byte header, I flag 0x08 in the first byte. */
    __u8 vx[8];
    if (sipcm_load(ctx, xdp, outer.payoff, vx, 8) < 0) {
        count(CNT_SHORT);
        return 0;
    }
    if (!(vx[0] & 0x08))
        return 0;
    struct sipcm_l4 inner = {};
    rc = sipcm_parse(ctx, xdp, outer.payoff + 8, &inner);
    if (rc < 0)
        count(CNT_SHORT);
    if (rc != 0 || !l4_selected(ctx, xdp, &inner, heuristic))
        return 0;
    remember_first(&inner);
    remember_first(&outer);
    count(CNT_VXLAN_INNER);
    return 1;
}

static __always_inline void copy_out(void *ctx, int xdp, __u32 origlen, __u32 ifindex,
                                     __u8 direction)
{
    __u32 slot = bpf_get_smp_processor_id() * 2 + (xdp ? 0 : 1);
    struct sipcm_scratch *s = scratch.lookup(&slot);
    if (!s) {
        count(CNT_LOAD_FAILED);
        return;
    }
    __u32 len = origlen;
    if (len > SIPCM_SNAP_LEN) {
        len = SIPCM_SNAP_LEN;
        count(CNT_TRUNCATED);
    }
    /* Keep clang from folding the mask away: the verifier needs it (ebpf.md 3.1). */
    asm volatile("" : "+r"(len));
    len &= SIPCM_SNAP_MASK;
    if (len == 0)
        return;
    if (sipcm_load(ctx, xdp, 0, s->data, len) < 0) {
        count(CNT_LOAD_FAILED);
        return;
    }
    s->hdr.ts_ns = bpf_ktime_get_ns();
    s->hdr.origlen = origlen;
    s->hdr.caplen = len;
    s->hdr.ifindex = ifindex;
    s->hdr.direction = direction;
    long err = events.ringbuf_output(s, sizeof(struct sipcm_rec) + len, BPF_RB_NO_WAKEUP);
    if (err)
        count(CNT_RING_FULL_LOST);
    else
        count(CNT_COPIED);
}

int sipcm_xdp(struct xdp_md *ctx)
{
    count(CNT_SEEN);
    if (selected(ctx, 1)) {
        count(CNT_SELECTED);
        copy_out(ctx, 1, bpf_xdp_get_buff_len(ctx), ctx->ingress_ifindex, SIPCM_DIR_INGRESS);
    }
    return XDP_PASS;
}

int sipcm_egress(struct __sk_buff *skb)
{
    count(CNT_SEEN);
    if (selected(skb, 0)) {
        count(CNT_SELECTED);
        copy_out(skb, 0, skb->len, skb->ifindex, SIPCM_DIR_EGRESS);
    }
    return TC_ACT_OK;
}
