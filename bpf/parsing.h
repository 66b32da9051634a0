/* parsing.h: bounded header walk shared by the XDP and TC programs.
 *
 * Every header is read with the load-bytes helper of the program type into a small stack
 * buffer, so the same code works on linear XDP frames and on non-linear egress skbs, and
 * the verifier never sees packet pointers. Loops have constant bounds. Nothing here touches
 * maps (BCC rewrites map calls only in the main file). */
#ifndef SIPCM_PARSING_H
#define SIPCM_PARSING_H

#include "sipcm.h"

#define ETH_P_IP_BE 0x0008       /* htons(0x0800) */
#define ETH_P_IPV6_BE 0xDD86     /* htons(0x86DD) */
#define ETH_P_8021Q_BE 0x0081    /* htons(0x8100) */
#define ETH_P_8021AD_BE 0xA888   /* htons(0x88A8) */
#define VLAN_MAX_DEPTH 2
#define IPV6_EXT_MAX 6

#define FRAG_NONE 0
#define FRAG_FIRST 1
#define FRAG_LATER 2

struct sipcm_l4 {
    __u32 payoff;   /* offset of the L4 payload (UDP/TCP) */
    __u16 sport;    /* host order */
    __u16 dport;
    __u8 proto;     /* IPPROTO_* of the transport, 0 when not reached */
    __u8 frag;      /* FRAG_* */
    __u8 pad[2];
    struct sipcm_frag_key key;
};

static __always_inline int sipcm_load(void *ctx, int xdp, __u32 off, void *buf, __u32 len)
{
    if (xdp)
        return bpf_xdp_load_bytes(ctx, off, buf, len);
    return bpf_skb_load_bytes(ctx, off, buf, len);
}

/* Ethernet, up to two VLAN tags, IPv4/IPv6 (with extension headers and fragments), UDP/TCP
 * ports. Returns 0 when an IP header was parsed (r->proto is 0 for other transports and for
 * later fragments), 1 for non-IP frames, -1 when a header ran past the end. */
static __always_inline int sipcm_parse(void *ctx, int xdp, __u32 off, struct sipcm_l4 *r)
{
    __u8 b[40];
    __u16 eproto;

    if (sipcm_load(ctx, xdp, off, b, 14) < 0)
        return -1;
    __builtin_memcpy(&eproto, b + 12, 2);
    off += 14;
#pragma unroll
    for (int i = 0; i < VLAN_MAX_DEPTH; i++) {
        if (eproto != ETH_P_8021Q_BE && eproto != ETH_P_8021AD_BE)
            break;
        if (sipcm_load(ctx, xdp, off, b, 4) < 0)
            return -1;
        __builtin_memcpy(&eproto, b + 2, 2);
        off += 4;
    }

    __u8 nh;
    if (eproto == ETH_P_IP_BE) {
        if (sipcm_load(ctx, xdp, off, b, 20) < 0)
            return -1;
        __u32 ihl = b[0] & 0x0f;
        if ((b[0] >> 4) != 4 || ihl < 5)
            return 1;
        __u16 fo = ((__u16)b[6] << 8) | b[7];
        nh = b[9];
        r->key.family = 4;
        r->key.proto = nh;
        r->key.id = ((__u32)b[4] << 8) | b[5];
        __builtin_memcpy(r->key.saddr, b + 12, 4);
        __builtin_memcpy(r->key.daddr, b + 16, 4);
        off += ihl * 4;
        if (fo & 0x1fff) {
            r->frag = FRAG_LATER;
            return 0;
        }
        if (fo & 0x2000)
            r->frag = FRAG_FIRST;
    } else if (eproto == ETH_P_IPV6_BE) {
        if (sipcm_load(ctx, xdp, off, b, 40) < 0)
            return -1;
        if ((b[0] >> 4) != 6)
            return 1;
        nh = b[6];
        r->key.family = 6;
        __builtin_memcpy(r->key.saddr, b + 8, 16);
        __builtin_memcpy(r->key.daddr, b + 24, 16);
        off += 40;
#pragma unroll
        for (int i = 0; i < IPV6_EXT_MAX; i++) {
            if (nh == 0 || nh == 43 || nh == 60) {       /* hop-by-hop, routing, dest opts */
                if (sipcm_load(ctx, xdp, off, b, 2) < 0)
                    return -1;
                nh = b[0];
                off += ((__u32)b[1] + 1) * 8;
            } else if (nh == 51) {                        /* AH: length in 4-octet units */
                if (sipcm_load(ctx, xdp, off, b, 2) < 0)
                    return -1;
                nh = b[0];
                off += ((__u32)b[1] + 2) * 4;
            } else if (nh == 44) {                        /* fragment header */
                if (sipcm_load(ctx, xdp, off, b, 8) < 0)
                    return -1;
                nh = b[0];
                __u16 fo = ((__u16)b[2] << 8) | b[3];
                r->key.id = ((__u32)b[4] << 24) | ((__u32)b[5] << 16) | ((__u32)b[6] << 8) | b[7];
                r->key.proto = nh;
                off += 8;
                if (fo & 0xfff8) {
                    r->frag = FRAG_LATER;
                    return 0;
                }
                if (fo & 1)
                    r->frag = FRAG_FIRST;
            } else {
                break;
            }
        }
    } else {
        return 1;
    }

    if (nh == 17) {
        if (sipcm_load(ctx, xdp, off, b, 8) < 0)
            return -1;
        r->payoff = off + 8;
    } else if (nh == 6) {
        if (sipcm_load(ctx, xdp, off, b, 14) < 0)
            return -1;
        r->payoff = off + (__u32)(b[12] >> 4) * 4;
    } else {
        return 0;
    }
    r->proto = nh;
    r->sport = ((__u16)b[0] << 8) | b[1];
    r->dport = ((__u16)b[2] << 8) | b[3];
    return 0;
}

/* Little-endian word of up to 8 characters, for comparing a payload prefix. */
#define SIPCM_W(a, b, c, d, e, f, g, h)                                                   \
    ((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 |                 \
     (__u64)(e) << 32 | (__u64)(f) << 40 | (__u64)(g) << 48 | (__u64)(h) << 56)
#define SIPCM_M(n) ((n) >= 8 ? ~0ULL : ((1ULL << ((n) * 8)) - 1))
#define SIPCM_TOK(w, n, tok) (((w) & SIPCM_M(n)) == (tok))

/* Does the payload at `off` start like a SIP message: a method token and a space, or
 * "SIP/2.0 " (RFC 3261 section 7.1, 7.2; methods of RFCs 3261, 3262, 3265, 3311, 3428,
 * 3515, 3903, 6086)? Reads at most 10 bytes. */
static __always_inline int sipcm_sip_prefix(void *ctx, int xdp, __u32 off)
{
    __u8 b[10];
    __u64 w;

    if (sipcm_load(ctx, xdp, off, b, 10) < 0)
        return 0;
    __builtin_memcpy(&w, b, 8);
    if (SIPCM_TOK(w, 8, SIPCM_W('S', 'I', 'P', '/', '2', '.', '0', ' ')) ||
        SIPCM_TOK(w, 7, SIPCM_W('I', 'N', 'V', 'I', 'T', 'E', ' ', 0)) ||
        SIPCM_TOK(w, 4, SIPCM_W('A', 'C', 'K', ' ', 0, 0, 0, 0)) ||
        SIPCM_TOK(w, 4, SIPCM_W('B', 'Y', 'E', ' ', 0, 0, 0, 0)) ||
        SIPCM_TOK(w, 7, SIPCM_W('C', 'A', 'N', 'C', 'E', 'L', ' ', 0)) ||
        SIPCM_TOK(w, 8, SIPCM_W('O', 'P', 'T', 'I', 'O', 'N', 'S', ' ')) ||
        SIPCM_TOK(w, 6, SIPCM_W('P', 'R', 'A', 'C', 'K', ' ', 0, 0)) ||
        SIPCM_TOK(w, 7, SIPCM_W('N', 'O', 'T', 'I', 'F', 'Y', ' ', 0)) ||
        SIPCM_TOK(w, 8, SIPCM_W('P', 'U', 'B', 'L', 'I', 'S', 'H', ' ')) ||
        SIPCM_TOK(w, 5, SIPCM_W('I', 'N', 'F', 'O', ' ', 0, 0, 0)) ||
        SIPCM_TOK(w, 6, SIPCM_W('R', 'E', 'F', 'E', 'R', ' ', 0, 0)) ||
        SIPCM_TOK(w, 8, SIPCM_W('M', 'E', 'S', 'S', 'A', 'G', 'E', ' ')) ||
        SIPCM_TOK(w, 7, SIPCM_W('U', 'P', 'D', 'A', 'T', 'E', ' ', 0)))
        return 1;
    if (w == SIPCM_W('R', 'E', 'G', 'I', 'S', 'T', 'E', 'R') && b[8] == ' ')
        return 1;
    if (w == SIPCM_W('S', 'U', 'B', 'S', 'C', 'R', 'I', 'B') && b[8] == 'E' && b[9] == ' ')
        return 1;
    return 0;
}

#endif
