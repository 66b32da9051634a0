"""SIP parser throughput: messages per second on one core (`python -m bench.parser_bench`).

Parses a typical INVITE with SDP, a 200 OK, a REGISTER with Digest credentials, a de-REGISTER
with `Contact: *`, a 180 and a BYE (these two take the keyed step: their other headers wait
for a second step the tracker seldom needs), and every SIP payload of the shared corpus, each
best-of-several over a fixed count, and prints one table row per input; then the one-step
parse (`parse_full`) of the same INVITE and BYE, and `shardkey.shard_key` (the dispatcher's
Call-ID/AOR extraction from bytes). Pure CPU; no network, no files written.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sipcm.sip.message import SipMessage  # noqa: E402
from sipcm.sip.parser import parse, parse_full  # noqa: E402
from sipcm.sip.shardkey import shard_key  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus"

SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    b"a=sendrecv\r\n"
)
INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b'From: "Alice Liddell" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com;transport=udp>\r\n"
    b"User-Agent: Zoiper rv2.10.20.4\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY\r\n"
    b"Supported: replaces, timer, 100rel\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
)
OK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP server10.biloxi.example.com;branch=z9hG4bK4b43c2ff8.1;"
    b"received=192.0.2.3\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;"
    b"received=192.0.2.1\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b'From: "Alice Liddell" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:bob@192.0.2.4>\r\n"
    b"Server: Kamailio (5.7.4 (x86_64/linux))\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
)
REGISTER = (
    b"REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n"
    b"Call-ID: 843817637684230@998sdasdh09\r\n"
    b"CSeq: 1827 REGISTER\r\n"
    b'Contact: <sip:bob@192.0.2.4;transport=udp>;expires=3600;+sip.instance="<urn:uuid:'
    b'00000000-0000-1000-8000-AABBCCDDEEFF>"\r\n'
    b'Authorization: Digest username="bob", realm="biloxi.example.com", '
    b'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:registrar.biloxi.example.com", '
    b'qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    b'opaque="5ccc069c403ebaf9f0171e9517f40e41", algorithm=MD5\r\n'
    b"User-Agent: Linphone/5.2.0\r\n"
    b"Expires: 3600\r\n"
    b"Content-Length: 0\r\n\r\n"
)
RINGING = (
    OK_200.replace(b"200 OK", b"180 Ringing")
    .split(b"Content-Type")[0]
    .replace(b"Contact: <sip:bob@192.0.2.4>\r\n", b"")
    + b"Content-Length: 0\r\n\r\n"
)
BYE = (
    INVITE.replace(b"INVITE sip:bob@biloxi.example.com", b"BYE sip:bob@192.0.2.4")
    .replace(b"314159 INVITE", b"314160 BYE")
    .replace(
        b"To: Bob <sip:bob@biloxi.example.com>", b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf"
    )
    .split(b"Contact:")[0]
    + b"Content-Length: 0\r\n\r\n"
)
DEREGISTER = REGISTER.replace(
    REGISTER[REGISTER.index(b"Contact:") : REGISTER.index(b"Authorization:")], b"Contact: *\r\n"
).replace(b"Expires: 3600", b"Expires: 0")


def corpus_payloads() -> list[bytes]:
    """Every SIP candidate payload of the shared corpus, decoded by the real decode layer."""
    from sipcm.capture.pcapfile import PcapReader
    from sipcm.decode.decoder import Decoder
    from sipcm.decode.stream import TcpReassembler

    out: list[bytes] = []
    for path in sorted(CORPUS.glob("*/*.pcap*")):
        c: Counter[str] = Counter()
        dec = Decoder(c, tcp=TcpReassembler(c))
        out += [p.data for b in PcapReader(path).batches() for p in dec.decode(b)]
    return out


def rate(messages: list[bytes], rounds: int, repeat: int, fn=parse) -> tuple[float, float]:
    """(best messages/s, best microseconds per message) of `fn` over `repeat` timed runs."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(rounds):
            for m in messages:
                fn(m)
        best = min(best, time.perf_counter() - t0)
    n = rounds * len(messages)
    return n / best, best / n * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=20000, help="messages per timed run")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs; the best is kept")
    args = ap.parse_args(argv)
    cases = [
        ("INVITE + SDP", [INVITE], parse),
        ("200 OK + SDP", [OK_200], parse),
        ("REGISTER + Digest", [REGISTER], parse),
        ("de-REGISTER Contact: *", [DEREGISTER], parse),
        ("180 Ringing (keyed step)", [RINGING], parse),
        ("BYE (keyed step)", [BYE], parse),
    ]
    if CORPUS.is_dir():
        cases.append(("corpus (all SIP payloads)", corpus_payloads(), parse))
    cases += [
        ("INVITE, parse_full", [INVITE], parse_full),
        ("BYE, parse_full", [BYE], parse_full),
        ("INVITE, shard_key", [INVITE], shard_key),
    ]
    print(f"{'input':28s} {'msgs':>5s} {'avg bytes':>9s} {'msgs/s':>10s} {'us/msg':>7s}")
    for name, msgs, fn in cases:
        assert all(isinstance(parse(m), SipMessage) for m in msgs[:4]), name
        rounds = max(1, args.count // len(msgs))
        per_s, us = rate(msgs, rounds, args.repeat, fn)
        avg = sum(map(len, msgs)) // len(msgs)
        print(f"{name:28s} {len(msgs):5d} {avg:9d} {per_s:10,.0f} {us:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
