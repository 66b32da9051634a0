"""Cost of the Elasticsearch output's write-ahead queue per event (`python -m bench.es_queue`).

Encodes a representative event document (an auth-failed event of the corpus, 1.6 KB),
appends it to the disk queue in write() batches, then reads it back as the sender does
(peek, `_id` hash, bulk body, ack), for both fsync policies. Prints CPU time per event for
each step (`time.process_time()`, so other load on the machine matters little) and the wall
time of the appends, which is where fsync shows. Writes under a temporary directory in
/var/tmp (a real disk, not tmpfs) and removes it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sipcm.outputs.elasticsearch import bulk_body, encode_event  # noqa: E402
from sipcm.outputs.spool import Spool  # noqa: E402

DOC = {
    "@timestamp": "2005-07-04T09:33:10.455801000Z",
    "ecs": {"version": "9.5.0-dev"},
    "event": {
        "action": "auth-failed",
        "kind": "event",
        "category": ["authentication", "network"],
        "type": ["start"],
        "outcome": "failure",
        "dataset": "sipcm.sip",
        "module": "sipcm",
        "reason": "Wrong password",
    },
    "source": {"ip": "212.242.33.35", "port": 5060},
    "destination": {"ip": "192.168.1.2", "port": 5060},
    "client": {"ip": "192.168.1.2", "port": 5060},
    "server": {"ip": "212.242.33.35", "port": 5060},
    "network": {"transport": "udp", "type": "ipv4", "protocol": "sip"},
    "observer": {
        "hostname": "vm",
        "product": "sipcm",
        "vendor": "sipcm",
        "version": "0.1.0",
        "type": "sensor",
    },
    "url": {"original": "sip:sip.cybercity.dk"},
    "user_agent": {"original": "Nero SIPPS IP Phone Version 2.0.51.16"},
    "user": {"name": "voi18063"},
    "related": {
        "ip": ["212.242.33.35", "192.168.1.2"],
        "user": ["voi18063"],
        "hosts": ["sip.cybercity.dk"],
    },
    "sip": {
        "call_id": "578222729-4665d775@578222732-4665d772",
        "method": "REGISTER",
        "code": 403,
        "status": "Wrong password",
        "uri": {"original": "sip:sip.cybercity.dk", "scheme": "sip", "host": "sip.cybercity.dk"},
        "from": {
            "tag": "8e948b0",
            "uri": {
                "original": "sip:voi18063@sip.cybercity.dk",
                "scheme": "sip",
                "username": "voi18063",
                "host": "sip.cybercity.dk",
            },
        },
        "to": {
            "tag": "00-04085-1701af98-51a65b340",
            "uri": {
                "original": "sip:voi18063@sip.cybercity.dk",
                "scheme": "sip",
                "username": "voi18063",
                "host": "sip.cybercity.dk",
            },
        },
        "contact": {
            "uri": {
                "original": "sip:voi18063@192.168.1.2:5060;line=9c7d2dbd8822013c",
                "scheme": "sip",
                "username": "voi18063",
                "host": "192.168.1.2",
                "port": 5060,
            },
            "expires": 1200,
        },
        "cseq": {"code": 69, "method": "REGISTER"},
        "auth": {"scheme": "Digest", "realm": "sip.cybercity.dk"},
    },
    "sipcm": {"frame": 5},
}


def run(events: int, batch: int, fsync_interval: float) -> str:
    docs = [dict(DOC, n=i) for i in range(batch)]
    d = tempfile.mkdtemp(dir="/var/tmp", prefix="sipcm-esq-")
    try:
        sp = Spool(d, max_bytes=1 << 40, counters=Counter(), fsync_interval_s=fsync_interval)
        enc = app = send = wall = 0.0
        for _ in range(events // batch):
            t = time.process_time()
            lines = [encode_event(x) for x in docs]
            enc += time.process_time() - t
            t, w = time.process_time(), time.monotonic()
            sp.append(lines)
            app += time.process_time() - t
            wall += time.monotonic() - w
        t = time.process_time()
        while (b := sp.peek(500)) is not None:
            bulk_body(b.lines)
            sp.ack(b)
        send = time.process_time() - t
        sp.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    policy = "every batch" if fsync_interval == 0 else f"every {fsync_interval:g} s"
    us = 1e6 / events
    return (
        f"| {batch} | {policy} | {enc * us:.1f} | {app * us:.1f} | {wall * us:.1f} | "
        f"{send * us:.1f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    args = ap.parse_args()
    print("| batch | fsync | encode µs | append µs CPU | append µs wall | read+_id+ack µs |")
    print("|---|---|---|---|---|---|")
    for batch in (50, 500):
        for fsync in (0.0, 1.0):
            print(run(args.events, batch, fsync))


if __name__ == "__main__":
    main()
