"""Helpers shared by the end-to-end event tests: run a generated capture through the real
replay pipeline, validate every document against ECS, and express expectations.

Expectations in the tests are written by hand from the traffic each test generates; nothing
here derives an expected value from product output.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

from tests.ecs import assert_valid
from tests.replayutil import brief, replay_docs_all_workers
from tests.sipgen import MS, SDP, T0, Capture, Leg, Req, S

__all__ = [
    "MS",
    "SDP",
    "T0",
    "Capture",
    "Leg",
    "Req",
    "S",
    "auth_hdr",
    "brief",
    "briefs",
    "iso",
    "ndjson",
    "proxy_copy",
    "run",
    "ts_of",
    "v6_fix",
]


def run(
    tmp_path: Path, cap: Capture, *overrides: str, end: str = "conclude", name: str = "c.pcap"
) -> list[dict]:
    """Write `cap`, replay it through the real pipeline (with 1, 2 and 3 workers, which
    must agree), ECS-validate every document."""
    path = cap.write(tmp_path / name)
    docs, _totals = replay_docs_all_workers([path], *overrides, end=end)
    for d in docs:
        assert_valid(d)
    return docs


def run_files(files: Sequence[Path], *overrides: str, end: str = "conclude") -> tuple:
    """Replay existing files (1, 2 and 3 workers, which must agree); ECS-validate every
    document; return (docs, totals)."""
    docs, totals = replay_docs_all_workers(list(files), *overrides, end=end)
    for d in docs:
        assert_valid(d)
    return docs, totals


def briefs(docs: list[dict]) -> list[tuple]:
    """(action, call_id, method, code) of every document, in publication order."""
    return [brief(d) for d in docs]


def iso(ts_ns: int) -> str:
    """RFC 3339 UTC text with 9 fractional digits (independent of the product's formatter)."""
    sec, ns = divmod(ts_ns, 1_000_000_000)
    day = dt.datetime.fromtimestamp(sec, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{day}.{ns:09d}Z"


def ts_of(doc: dict) -> int:
    """@timestamp of a document back in nanoseconds since the epoch."""
    text = doc["@timestamp"]
    day, frac = text[:-1].split(".")
    sec = dt.datetime.strptime(day, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC).timestamp()
    return int(sec) * 1_000_000_000 + int(frac.ljust(9, "0"))


def ndjson(docs: list[dict]) -> bytes:
    """A canonical serialisation for byte comparisons."""
    return b"".join(json.dumps(d, sort_keys=True).encode() + b"\n" for d in docs)


def auth_hdr(user: str, realm: str = "example.com", *, proxy: bool = False, n: int = 1) -> str:
    """A Digest Authorization (or Proxy-Authorization) header with a fake response."""
    name = "Proxy-Authorization" if proxy else "Authorization"
    return (
        f'{name}: Digest username="{user}",realm="{realm}",nonce="n{n:08x}",'
        f'uri="sip:{realm}",response="{n:032x}",algorithm=MD5'
    )


def proxy_copy(raw: bytes, proxy: str, branch: str, *, request: bool) -> bytes:
    """The proxy's other-side copy of a message: a request gains the proxy's Via on top (and
    Max-Forwards is decremented); a response as sent by the callee still carries it."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    via = f"Via: SIP/2.0/UDP {proxy}:5060;branch={branch}".encode()
    lines.insert(1, via)
    if request:
        lines = [b"Max-Forwards: 69" if ln == b"Max-Forwards: 70" else ln for ln in lines]
    return b"\r\n".join(lines) + sep + body


def v6_fix(raw: bytes, *ips: str) -> bytes:
    """Bracket IPv6 literals that sipgen writes as `ip:port` in Via/Contact/URIs (RFC 3261
    25.1 requires `[v6]:port`); Content-Length is unaffected (headers only)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    for ip in ips:
        b = ip.encode()
        head = head.replace(b + b":", b"[" + b + b"]:")
        head = head.replace(b"@" + b + b">", b"@[" + b + b"]>")
    return head + sep + body


def branch_of(req: Req) -> str:
    """The Via branch of a built request (an ACK to a non-2xx and a CANCEL reuse it)."""
    return req.via.split("branch=", 1)[1].split(";", 1)[0]


def rebuild_udp(cap: Capture, fix) -> Capture:
    """A copy of a UDP-only capture with every payload passed through `fix` (frames rebuilt so
    lengths stay right)."""
    import ipaddress
    import struct

    from sipcm.capture.pcapwriter import udp_frame

    out = Capture()
    for ts, frame in cap.packets:
        (etype,) = struct.unpack_from("!H", frame, 12)
        if etype == 0x86DD:
            src = str(ipaddress.IPv6Address(frame[22:38]))
            dst = str(ipaddress.IPv6Address(frame[38:54]))
            l4 = frame[54:]
        else:
            ihl = (frame[14] & 15) * 4
            src = str(ipaddress.IPv4Address(frame[26:30]))
            dst = str(ipaddress.IPv4Address(frame[30:34]))
            l4 = frame[14 + ihl :]
        sport, dport = struct.unpack_from("!HH", l4, 0)
        out.packets.append((ts, udp_frame(src, sport, dst, dport, fix(l4[8:]))))
    return out


def doubled(cap: Capture, gap_ns: int = 20_000) -> Capture:
    """Every frame twice, byte for byte (ingress and egress copy of one host)."""
    out = Capture()
    for ts, frame in cap.packets:
        out.packets.append((ts, frame))
        out.packets.append((ts + gap_ns, frame))
    return out
