"""A fake pipeline behind a WebState, holding known data, for the web tests."""

from __future__ import annotations

import copy
import threading
from collections import deque

from sipcm.config.schema import EVENT_NAMES
from sipcm.web.state import WebState

VALID_EVENTS = EVENT_NAMES

COUNTERS = {
    "capture": {"ring_batches": 7, "ring_records": 4321},
    "events": {"blacklisted_msg-probe": 3, "generated": 9, "published": 6},
    "interfaces": {"eth0/egress": 1200, "eth0/ingress": 3100, "lo/ingress": 21},
    "kernel": {"ring_full_lost": 2, "seen": 99001},
    "sip": {"messages": 4242, "parse_errors": 5},
    "track_active": {"calls": 1, "registrations": 2},
}


def _doc(ts: str, action: str, call_id: str | None, users: list[str], ips: list[str]) -> dict:
    doc: dict = {"@timestamp": ts, "event": {"action": action, "kind": "event"}}
    if call_id is not None:
        doc["sip"] = {
            "call_id": call_id,
            "method": "INVITE" if action.startswith("call") else "REGISTER",
            "from": {"uri": {"original": f"sip:{users[0]}@example.com"}} if users else {},
        }
    related: dict = {}
    if ips:
        related["ip"] = ips
        doc["source"] = {"ip": ips[0], "port": 5060}
        doc["destination"] = {"ip": ips[-1], "port": 5060}
    if users:
        related["user"] = users
    if related:
        doc["related"] = related
    return doc


# Oldest first, as the pipeline's deque holds them.
RECENT = [
    _doc(
        "2024-05-01T10:00:00.000000000Z", "reg-new", "reg-1@h", ["alice"], ["10.0.0.1", "10.0.0.9"]
    ),
    _doc(
        "2024-05-01T10:00:01.000000000Z",
        "call-start",
        "cid-A@h",
        ["alice", "bob"],
        ["10.0.0.1", "10.0.0.2"],
    ),
    _doc("2024-05-01T10:00:02.000000000Z", "parse-error", None, [], ["10.0.0.7", "10.0.0.2"]),
    _doc(
        "2024-05-01T10:00:03.000000000Z",
        "call-start",
        "cid-B@h",
        ["carol"],
        ["10.0.0.3", "10.0.0.2"],
    ),
    _doc(
        "2024-05-01T10:00:04.000000000Z",
        "call-end",
        "cid-A@h",
        ["alice", "bob"],
        ["10.0.0.1", "10.0.0.2"],
    ),
    _doc(
        "2024-05-01T10:00:05.000000000Z",
        "auth-failed",
        "cid-C@h",
        ["mallory"],
        ["192.0.2.66", "10.0.0.2"],
    ),
]

CLOCK_NS = 1714557610000000000  # 2024-05-01 10:00:10Z: the capture clock of the fake

CALLS = [
    {
        "call_id": "cid-B@h",
        "state": "inv_established",
        "state_text": "answered",
        "ended": False,
        "duration_ns": 5_500_000_000,  # answered 10:00:04.5, open at the clock
        "from": "sip:carol@example.com",
        "to": "sip:dave@example.com",
        "to_tag": "tt1",
        "client": ["10.0.0.3", 5060],
        "server": ["10.0.0.2", 5060],
        "invite_ns": 1714557603000000000,
        "answer_ns": 1714557604500000000,
        "last_ns": 1714557604500000000,
        "reconstructed_from": None,
    },
]

# A call in its BYE linger (the dashboard test adds it: other tests count one call).
ENDED_CALL = {
    "call_id": "cid-A@h",
    "state": "inv_bye_repl",
    "state_text": "ended: BYE by caller",
    "ended": True,
    "duration_ns": 3_000_000_000,
    "from": "sip:alice@example.com",
    "to": "sip:bob@example.com",
    "to_tag": "tt2",
    "client": ["10.0.0.1", 5060],
    "server": ["10.0.0.2", 5060],
    "invite_ns": 1714557600500000000,
    "answer_ns": 1714557601000000000,
    "last_ns": 1714557604000000000,
    "reconstructed_from": None,
}

# call_outcomes (tests that use it add it to the counters): 6 answered, 2 busy and 1
# cancelled (user side), 1 503 and 2 timeouts
OUTCOMES = {"answered": 6, "486": 2, "487": 1, "503": 1, "timeout": 2}

AUTH_SOURCES = {
    "total": 260,
    "sources": 2,
    "capacity": 10000,
    "untracked": 7,
    "top": [
        {"source_ip": "192.0.2.66", "failures": 251, "first_ns": 1714557598250000000,
         "last_ns": 1714557605000000000},
        {"source_ip": "198.51.100.7", "failures": 2, "first_ns": 1714557601000000000,
         "last_ns": 1714557602000000000},
    ],
}  # fmt: skip


def history_samples(n: int = 13, interval_s: int = 5) -> list[dict]:
    """`n` samples ending at the clock: 12 SIP messages and 2 call-start events a second."""
    out = []
    for i in range(n):
        t = CLOCK_NS - (n - 1 - i) * interval_s * 1_000_000_000
        k = i * interval_s
        out.append(
            {
                "t": t,
                "c": {
                    "sip.messages": 1000 + 12 * k,
                    "sip.parse_errors": 5,
                    "events.published": 2 * k,
                    "events_published.call-start": 2 * k,
                    "events_published.reg-new": k,
                    "interfaces.eth0/ingress": 3 * k,
                },
                "calls": {"attempted": 0, "asr": None, "ner": None},
            }
        )
    return out


REGISTRATIONS = [
    {
        "aor": "sip:alice@example.com",
        "contact": "sip:alice@10.0.0.1:5062",
        "expires": 3600,
        "created_ns": 1714557600000000000,
        "refreshed_ns": 1714557600000000000,
        "expires_at_ns": 1714561200000000000,
        "call_id": "reg-1@h",
        "client": ["10.0.0.1", 5062],
    },
    {
        "aor": "sip:bob@example.com",
        "contact": "sip:bob@10.0.0.5",
        "expires": 600,
        "created_ns": 1714557500000000000,
        "refreshed_ns": 1714557590000000000,
        "expires_at_ns": 1714558190000000000,
        "call_id": "reg-2@h",
        "client": ["10.0.0.5", 5060],
    },
]

RATES = [
    {
        "event": "auth-failed",
        "source_ip": "192.0.2.66",
        "rates": [
            {"window": 1, "limit": 20, "current": 31},
            {"window": 60, "limit": 240, "current": 250.5},
            {"window": 3600, "limit": 3600, "current": 251},
        ],
        "events": 251,
        "last_seen": "2024-05-01T10:00:05.000000000Z",
        "blacklisted": True,
        "exceeded": 140,
        "since": "2024-05-01T09:59:58.250000000Z",
    },
    {
        "event": "reg-new",
        "source_ip": "10.0.0.1",
        "rates": [  # a call record: counted, not limited (limit 0)
            {"window": 1, "limit": 0, "current": 1},
            {"window": 60, "limit": 0, "current": 1},
            {"window": 3600, "limit": 0, "current": 1},
        ],
        "events": 1,
        "last_seen": "2024-05-01T10:00:00.000000000Z",
        "blacklisted": False,
        "exceeded": 0,
        "since": None,
    },
]

CONFIG = {"http_addr": "127.0.0.1", "http_port": 8080, "access_token": "***"}


class FakePipeline:
    """Known data behind the same lock discipline as the real pipeline."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counters = copy.deepcopy(COUNTERS)
        self.recent: deque[dict] = deque(copy.deepcopy(RECENT), maxlen=1000)
        self.calls = copy.deepcopy(CALLS)
        self.regs = copy.deepcopy(REGISTRATIONS)
        self.blacklist = ["msg-probe"]
        self.history = history_samples()
        self.auth = copy.deepcopy(AUTH_SOURCES)
        self.clock = CLOCK_NS
        self.set_calls: list[list[str]] = []
        self.lock_held_in_callbacks = True

    def _check(self) -> None:
        # Every callable must run with the pipeline lock held by the server thread.
        if not self.lock.locked():
            self.lock_held_in_callbacks = False

    def state(self, **overrides: object) -> WebState:
        """A WebState wired to this fake."""

        def read(value):
            def fn():
                self._check()
                return value()

            return fn

        def set_blacklist(names: list[str]) -> None:
            self._check()
            self.set_calls.append(list(names))
            self.blacklist = list(names)

        kwargs: dict = dict(
            lock=self.lock,
            counters=read(lambda: copy.deepcopy(self.counters)),
            recent=read(lambda: list(self.recent)),
            active_calls=read(lambda: list(self.calls)),
            registrations=read(lambda: list(self.regs)),
            get_blacklist=read(lambda: list(self.blacklist)),
            set_blacklist=set_blacklist,
            valid_events=VALID_EVENTS,
            rate_table=read(lambda: list(RATES)),
            config=read(lambda: dict(CONFIG)),
            history=lambda after: read(lambda: self._history(after))(),
            auth_sources=lambda limit: read(lambda: self._auth(limit))(),
            clock=read(lambda: self.clock),
        )
        kwargs.update(overrides)
        return WebState(**kwargs)

    def _history(self, after: int | None) -> dict:
        picked = [h for h in self.history if after is None or h["t"] > after]
        return {"interval_s": 5.0, "capacity": 720, "window_s": 60.0, "samples": picked}

    def _auth(self, limit: int) -> dict:
        return {**self.auth, "top": self.auth["top"][:limit]}
