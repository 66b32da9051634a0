"""Shared tracking state: entry classes, the bounded entry table, timers and outcome helpers.

Input: nothing by itself; `calls.py`, `trans.py` and `regs.py` keep their entries here and
append their Outcomes to `Core.out`. Entries (`CallSet` per Call-ID for INVITE dialogs, `Trans`
per Call-ID and method for other transactions) live in two insertion-ordered tables used as
LRUs, each with its own budget: `pending` holds what no server has confirmed yet (INVITEs not
answered 2xx, other transactions), `dialogs` the calls with an established dialog (a CallSet
moves there at its first call-start). Touching an entry moves it to the end of its table; when
a table is full its oldest entry is evicted without any event (counters `pending_evicted`,
`calls_evicted`), so a flood of unanswered requests can only push out other unanswered
requests, never an established call. It never reads a clock and never builds documents.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final

from sipcm.decode.packet import Payload
from sipcm.sip.message import SipMessage
from sipcm.sip.nameaddr import aor_of
from sipcm.track.dedup import MsgKey
from sipcm.track.outcome import Flow, new_flow
from sipcm.track.states import TIMER_OF, State
from sipcm.track.timers import Timed, TimerHeap

if TYPE_CHECKING:
    from sipcm.sip.message import Credentials
    from sipcm.track.outcome import Outcome

NS: Final = 1_000_000_000
CHALLENGED: Final = frozenset(
    {State.INV_CHALLENGED, State.INV_AUTH_FAILED}
    | {State.NON_INV_CHALLENGED, State.NON_INV_AUTH_FAILED}
)


class Leg(Timed):
    """One dialog (To-tag) of an INVITE, or the INVITE transaction before any To-tag."""

    __slots__ = (
        "answer_ts", "cs", "end_ts", "ended", "ended_by", "final", "last_ts", "pdd_ts",
        "reason", "ring_ts", "started", "state", "status", "to_tag",
    )  # fmt: skip

    def __init__(self, cs: CallSet, state: State, to_tag: str | None = None) -> None:
        super().__init__()
        self.cs = cs
        self.state = state
        self.to_tag = to_tag
        self.pdd_ts: int | None = None  # first 18x or final reply
        self.ring_ts: int | None = None  # first 18x
        self.answer_ts: int | None = None  # 2xx (or the in-dialog request that implied it)
        self.last_ts = 0
        self.status: int | None = None  # final status of the INVITE on this leg
        self.reason: str | None = None
        self.final: SipMessage | None = None  # that final response
        self.started = False
        self.ended = False
        self.end_ts: int | None = None  # the call-end's end (BYE or its reply)
        self.ended_by: str | None = None  # who sent the BYE: "caller", "callee" or None


class CallSet:
    """Every dialog of one Call-ID plus the INVITE that created them (forks share it)."""

    __slots__ = (
        "attempted", "auth_txn", "call_id", "caller_known", "caller_tag", "client", "creds",
        "inv_branches", "inv_cseq", "inv_ts", "invite", "legs", "recon", "retrans", "server",
        "started",
    )  # fmt: skip

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.legs: list[Leg] = []
        self.caller_tag: str | None = None  # From-tag of the caller
        self.caller_known = True  # False when rebuilt from a BYE: who called is unknown
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.invite: SipMessage | None = None  # INVITE of the current attempt
        self.inv_ts: int | None = None
        self.inv_cseq = -1
        self.inv_branches: tuple[str, ...] = ()  # Via branches of that INVITE (txn_branches)
        self.creds: Credentials | None = None
        self.recon: str | None = None  # what the set was rebuilt from (no INVITE seen)
        self.retrans = 0
        self.started = 0  # legs that produced call-start
        self.attempted = False  # call-attempt produced for the current attempt
        self.auth_txn: tuple[int, tuple[str, ...]] | None = None  # INVITE counted as auth-failed


class Trans(Timed):
    """A non-INVITE transaction outside a call (OPTIONS, MESSAGE, REGISTER, ...)."""

    __slots__ = (
        "auth_txn", "branches", "call_id", "client", "creds", "cseq", "key", "method", "reason",
        "req", "resp", "server", "state", "status",
    )  # fmt: skip

    def __init__(self, key: tuple[str, str], method: str) -> None:
        super().__init__()
        self.key = key
        self.call_id = key[0]
        self.method = method
        self.state = State.INIT
        self.req: SipMessage | None = None
        self.resp: SipMessage | None = None
        self.cseq = -1
        self.branches: tuple[str, ...] = ()  # Via branches of the request (txn_branches)
        self.creds: Credentials | None = None
        self.status: int | None = None
        self.reason: str | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.auth_txn: tuple[int, tuple[str, ...]] | None = None  # request counted as auth-failed


def txn_branches(msg: SipMessage) -> tuple[str, ...]:
    """The Via branches of a message, top first (RFC 3261 17.1.3: the top one names the
    transaction; a proxy's copy of a request keeps the sender's branch below its own)."""
    return tuple([v.branch for v in msg.vias if v.branch])


def same_txn(known: tuple[str, ...], msg: SipMessage, cseq: int) -> bool:
    """True when `msg` (a request with CSeq `cseq`) belongs to the transaction whose request
    had CSeq `cseq` and Via branches `known`: the same branch anywhere in both Via lists
    (a retransmission, or a proxy's copy the duplicate filter could not pair). A request
    without branches, or a transaction known without them, cannot be told apart by branch:
    the same CSeq is the same transaction (RFC 2543 clients)."""
    if msg.cseq != cseq:
        return False
    if not known:
        return True
    mine = txn_branches(msg)
    return not mine or any(b in known for b in mine)


def ends(msg: SipMessage) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    """(client, server) for a message: a request goes client -> server, a response back."""
    p = msg.payload
    if p is None:
        return None, None
    a, b = (p.src_ip, p.src_port), (p.dst_ip, p.dst_port)
    return (a, b) if msg.is_request else (b, a)


def flow_of(*msgs: SipMessage | None) -> Flow | None:
    """The request direction of the first message with a packet: a request's sender to its
    receiver; for a response, its receiver (who sent the request) to its sender."""
    for msg in msgs:
        p = msg.payload if msg is not None else None
        if p is None:
            continue
        if msg.is_request:  # type: ignore[union-attr]
            return new_flow(p.src_ip, p.src_port, p.dst_ip, p.dst_port, p.transport)
        return new_flow(p.dst_ip, p.dst_port, p.src_ip, p.src_port, p.transport)
    return None


def slim(msg: SipMessage, all_contacts: bool = False) -> SipMessage:
    """A copy to keep in a long-lived entry: without body, raw headers, Vias, payload bytes and
    contacts after the first (unless `all_contacts`: a REGISTER's are its bindings), which no
    event needs (memory per dialog, SPEC 13). The other parsed fields and the network context
    stay. Written field by field (native reads and constructors in the compiled build);
    tests/unit/track/test_slim.py checks it against a copy made from the declared fields."""
    p = msg.payload
    if p is not None and p.data:
        p = Payload(
            b"", p.ts_ns, p.src_ip, p.dst_ip, p.src_port, p.dst_port, p.transport, p.ip_version,
            p.on_sip_port, p.ifindex, p.direction, p.vlan, p.tunnel, p.reassembled, p.frame_no,
        )  # fmt: skip
    contacts = msg.contacts  # a deferred field: completes a keyed message first
    if not all_contacts and len(contacts) > 1:
        contacts = contacts[:1]
    return SipMessage(
        msg.is_request, msg.method, msg.uri, msg.status, msg.reason, msg.call_id, msg.from_,
        msg.to, msg.cseq, msg.cseq_method, _NO_VIAS, contacts, msg.contact_star, msg.expires,
        msg.user_agent, msg.server, msg.reason_hdr, msg.pai, msg.credentials,
        msg.content_length, b"", _NO_HEADERS, msg.bad_headers, msg.size, p, msg.truncated,
    )  # fmt: skip


# Every slim copy shares these (parsed messages are read-only, see sip/message.py): two fewer
# objects per stored message.
_NO_HEADERS: dict[str, list[str]] = {}
_NO_VIAS: list = []


def proof(msg: SipMessage) -> Credentials | None:
    """The request's credentials when they answer a challenge (not an IMS empty response)."""
    c = msg.credentials
    return c if c is not None and c.answered else None


class Core:
    """Entry tables (two LRUs, bounded), timer heap, timeouts, counters, and the message being
    processed: its outcome list and its key fields."""

    __slots__ = (
        "_touch_dialog", "_touch_pending", "c", "chal", "dialogs", "key", "max_dialogs",
        "max_pending", "now", "out", "pending", "timers", "tmo", "tmo_of",
    )  # fmt: skip

    def __init__(
        self, counters: Counter[str], tmo_ns: dict[str, int], max_pending: int, max_dialogs: int
    ) -> None:
        self.c = counters
        self.tmo = tmo_ns  # timer name -> ns
        self.tmo_of: dict[State, int] = {s: tmo_ns[name] for s, name in TIMER_OF.items()}
        self.max_pending = max_pending
        self.max_dialogs = max_dialogs
        self.pending: OrderedDict[object, CallSet | Trans] = OrderedDict()
        self.dialogs: OrderedDict[object, CallSet] = OrderedDict()
        # Bound once (the tables are never replaced): compiled, `table.move_to_end(key)`
        # looks the method up on the type at every call, two per message.
        self._touch_pending: Callable[[object], None] = self.pending.move_to_end
        self._touch_dialog: Callable[[object], None] = self.dialogs.move_to_end
        self.timers = TimerHeap()
        self.now = 0
        self.out: list[Outcome] = []
        self.key = MsgKey()  # the fields of the message being processed
        # retry identity -> key of a challenged entry (see retry_key); bounded like `pending`
        self.chal: OrderedDict[tuple, object] = OrderedDict()

    def timeout(self, state: State) -> int:
        """Timeout of `state` in ns."""
        return self.tmo_of[state]

    def __len__(self) -> int:
        return len(self.pending) + len(self.dialogs)

    def values(self) -> Iterator[CallSet | Trans]:
        """Every entry: established calls first, then pending ones, each least recent first."""
        yield from self.dialogs.values()
        yield from self.pending.values()

    def peek(self, key: object) -> CallSet | Trans | None:
        """The entry for `key` (either table), its recency unchanged."""
        e = self.pending.get(key)
        return e if e is not None else self.dialogs.get(key)

    def get(self, key: object) -> CallSet | Trans | None:
        """The entry for `key`, marked most recently used in its table."""
        e = self.pending.get(key)
        if e is not None:
            self._touch_pending(key)
            return e
        e = self.dialogs.get(key)
        if e is not None:
            self._touch_dialog(key)
        return e

    def add(self, key: object, entry: CallSet | Trans) -> None:
        """Insert a new (pending) entry, evicting the least recently used pending ones past
        `max_pending`."""
        pending = self.pending
        while len(pending) >= self.max_pending:
            _, old = pending.popitem(last=False)
            self._disarm(old)
            self.c["pending_evicted"] += 1
        pending[key] = entry

    def confirm(self, key: object) -> None:
        """Move a pending call to the established calls (its first dialog was answered),
        evicting the least recently used established ones past `max_dialogs`."""
        cs = self.pending.pop(key, None)
        if cs is None:
            return
        dialogs = self.dialogs
        while len(dialogs) >= self.max_dialogs:
            _, old = dialogs.popitem(last=False)
            self._disarm(old)
            self.c["calls_evicted"] += 1
        dialogs[key] = cs  # type: ignore[assignment]

    def pop(self, key: object) -> CallSet | Trans | None:
        """Remove an entry from its table, leaving its timers alone."""
        e = self.pending.pop(key, None)
        return e if e is not None else self.dialogs.pop(key, None)

    def drop(self, key: object) -> None:
        """Forget an entry and its timers (no event)."""
        e = self.pop(key)
        if e is not None:
            self._disarm(e)

    def _disarm(self, e: CallSet | Trans) -> None:
        if isinstance(e, CallSet):
            for leg in e.legs:
                self.timers.cancel(leg)
        else:
            self.timers.cancel(e)

    def set_state(self, obj: Leg | Trans, state: State, ts: int) -> None:
        """Enter `state`: a real transition re-arms the timer (force), staying extends it."""
        if state is obj.state:
            if state is not State.INIT:
                due = ts + self.tmo_of[state]
                t: Timed = obj  # compiled, stores through the union are generic setattrs
                old = t.due
                if old is None:
                    self.timers.arm(t, due)
                elif due > old:
                    t.due = due  # TimerHeap.extend, inline: most messages come here
            return
        if isinstance(obj, Leg):  # compiled, a store through the union is a generic setattr
            obj.state = state
        else:
            obj.state = state
        if state is State.INIT or state is State.DONE:
            self.timers.cancel(obj)
        else:
            self.timers.arm(obj, ts + self.tmo_of[state])

    # -- auth retries under a new Call-ID -------------------------------------------------------

    def note_challenge(self, req: SipMessage | None, key: object) -> None:
        """Remember that the entry `key` was challenged (or refused) for request `req`."""
        if req is None:
            return
        rk = retry_key(req)
        chal = self.chal
        chal.pop(rk, None)
        while len(chal) >= self.max_pending:
            chal.popitem(last=False)
        chal[rk] = key

    def take_retry(self, req: SipMessage) -> bool:
        """A credentialed request with a new Call-ID: if it retries a challenged entry, drop
        that entry silently (the attempt continues under the new Call-ID) and say so.

        When no challenged entry matches, `auth_retry_unmatched` counts it: credentials sent
        without a challenge this tracker saw (a phone reusing a cached nonce), or, with
        several workers, a retry whose challenge is held by another worker (a new Call-ID
        hashes elsewhere; REGISTER never does, it is keyed by address-of-record). Compare
        the counter between `workers: 1` and more to see how often the latter happens."""
        if not self._take_retry(req):
            self.c["auth_retry_unmatched"] += 1
            return False
        return True

    def _take_retry(self, req: SipMessage) -> bool:
        key = self.chal.pop(retry_key(req), None)
        if key is None:
            return False
        e = self.peek(key)
        if e is None:
            return False
        states = [leg.state for leg in e.legs] if isinstance(e, CallSet) else [e.state]
        if not any(s in CHALLENGED for s in states):
            return False
        self.drop(key)
        self.c["auth_retry_new_call_id"] += 1
        return True


def retry_key(req: SipMessage) -> tuple:
    """Identity of a request's sender and target, shared by a retry with a new Call-ID:
    method, From and To address-of-record, request-URI and source IP (RFC 3261 22.2: the
    retry is a new request with the same From, To and request-URI)."""
    p = req.payload
    return (
        req.method,
        aor_of(req.from_.uri),
        aor_of(req.to.uri),
        aor_of(req.uri) if req.uri is not None else None,
        p.src_ip if p is not None else None,
    )
