"""A call's flow as a ladder: hosts (ip:port) as columns, one arrow per message.

Input: a flow from `sipcm.flows` (messages in capture order). `view` turns it into the JSON
the API serves and the web page draws (hosts in order of first appearance; per message its
source and destination column, absolute and relative time, first line, duplicate verdict);
`text` renders that view for a terminal (`sipcm flow`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

NS = 1_000_000_000
MARKS = {"retrans": "[retransmission]", "copy": "[copy]"}


def host(ip: str, port: int) -> str:
    """ip:port, IPv6 in brackets."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def iso(ts_ns: int) -> str:
    """RFC 3339 UTC with microseconds."""
    sec, ns = divmod(ts_ns, NS)
    day = dt.datetime.fromtimestamp(sec, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{day}.{ns // 1000:06d}Z"


def view(flow: dict[str, Any]) -> dict[str, Any]:
    """The flow as hosts and arrows (JSON-able; raw text decoded as UTF-8, bad bytes
    replaced, None when not kept)."""
    hosts: list[str] = []
    index: dict[str, int] = {}

    def col(name: str) -> int:
        if name not in index:
            index[name] = len(hosts)
            hosts.append(name)
        return index[name]

    msgs = flow["messages"]
    t0 = msgs[0]["ts_ns"] if msgs else 0
    out = []
    for m in msgs:
        src, dst = host(m["src_ip"], m["src_port"]), host(m["dst_ip"], m["dst_port"])
        raw = m["raw"]
        out.append(
            {
                "ts_ns": m["ts_ns"],
                "time": iso(m["ts_ns"]),
                "rel_ns": m["ts_ns"] - t0,
                "src": src,
                "dst": dst,
                "from": col(src),
                "to": col(dst),
                "transport": m["transport"],
                "direction": m["direction"],
                "vlan": m["vlan"],
                "tunnel": _tunnel(m["tunnel"]),
                "reassembled": m["reassembled"],
                "leg": m["leg"],
                "first_line": m["first_line"],
                "dup": m["dup"],
                "size": m["size"],
                "raw": raw.decode("utf-8", "replace") if raw is not None else None,
            }
        )
    return {
        "call_id": flow["call_id"],
        "hosts": hosts,
        "messages": out,
        "messages_dropped": flow["messages_dropped"],
        "raw_dropped": flow["raw_dropped"],
        "anonymized": flow["anonymized"],
    }


def _tunnel(t: tuple | list | None) -> dict[str, Any] | None:
    """A tunnel as the events show it (sipcm.tunnel: type, vni, outer endpoints)."""
    if t is None:
        return None
    kind, src, dst, sport, dport, vni = t
    return {"type": kind, "vni": vni, "source": {"ip": src, "port": sport},
            "destination": {"ip": dst, "port": dport}}  # fmt: skip


def _lanes(n: int, width: int, src: int, dst: int) -> str:
    row = [" "] * ((n - 1) * width + 1)
    for i in range(n):
        row[i * width] = "|"
    a, b = src * width, dst * width
    if a == b:
        row[a] = "o"
    else:
        step = 1 if b > a else -1
        for x in range(a + step, b, step):
            row[x] = "-"
        row[b - step] = ">" if step > 0 else "<"
    return "".join(row)


def text(v: dict[str, Any]) -> list[str]:
    """Terminal lines: a summary, the host header, one line per message (UTC clock time,
    seconds since the first message, transport, arrow, first line, duplicate mark)."""
    hosts, msgs = v["hosts"], v["messages"]
    lines = [
        f"Call-ID {v['call_id']}: {len(msgs)} messages between {len(hosts)} hosts, "
        f"first at {msgs[0]['time'] if msgs else '-'}"
    ]
    if v["messages_dropped"] or v["raw_dropped"]:
        lines.append(
            f"flow limits: {v['messages_dropped']} messages not kept, "
            f"{v['raw_dropped']} kept without their text"
        )
    width = max(len(h) for h in hosts) + 3
    margin = " " * (max(len(h) for h in hosts) // 2)
    prefix = " " * len(f"{'00:00:00.000000':15}  {'+0.000000':>11}  {'UDP':<4}")
    head = [" "] * ((len(hosts) - 1) * width + len(margin) * 2 + 1)
    for i, h in enumerate(hosts):
        start = len(margin) + i * width - len(h) // 2
        head[start : start + len(h)] = h
    lines.append((prefix + "  " + "".join(head)).rstrip())
    for m in msgs:
        clock = m["time"][11:26]
        arrow = _lanes(len(hosts), width, m["from"], m["to"])
        mark = MARKS.get(m["dup"])
        sec, ns = divmod(m["rel_ns"], NS)
        line = f"{clock:15}  {f'+{sec}.{ns // 1000:06d}':>11}  {m['transport'].upper():<4}"
        line += f"  {margin}{arrow}  {m['first_line']}" + (f" {mark}" if mark else "")
        lines.append(line)
    return lines
