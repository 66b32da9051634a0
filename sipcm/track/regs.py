"""Registration binding cache: reg-new, reg-del and reg-expired.

Input: each 2xx to REGISTER with its request (None when the request was not seen) and binding
expiries from the timer heap; output: reg-* Outcomes appended to `Core.out`. A binding is an
address-of-record (To URI reduced to scheme:user@host:port) plus a contact URI compared as
scheme, user, lower-cased host and port (parameters ignored, as a registrar does, RFC 3261
10.3 step 6 / 19.1.4). It never reads a clock.

Rules for a 2xx (RFC 3261 10.2/10.3: the 2xx lists the bindings now held, with their expires):
- request `Contact: *` (un-register all): reg-del for every cached binding of the AOR, or one
  reg-del without contact when none was cached;
- each request contact: granted expires = its `expires` in the 2xx's Contact list, else the
  2xx's Expires header, else what the request asked, else 3600 (RFC 3261 10.2.1.1). If the 2xx
  has no Contact at all, the request's contacts and expires stand in for it.
  expires 0 -> reg-del; a new binding -> reg-new; a known one -> refresh (nothing). A request
  contact missing from a non-empty 2xx list is gone: reg-del if cached (or asked with expires 0);
- no request contact (binding fetch) -> nothing; request not seen -> every 2xx contact with
  expires > 0 is a binding (reg-new when new).
A binding not refreshed by its expiry plus `grace_ns` gives reg-expired. The cache holds at most
`max_regs` bindings, least recently refreshed evicted first (counter `regs_evicted`, no event).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Final

from sipcm.track.core import NS, Core, aor_of, ends, flow_of
from sipcm.track.outcome import Flow, Outcome, RegInfo
from sipcm.track.timers import Timed

if TYPE_CHECKING:
    from sipcm.sip.message import NameAddr, SipMessage, Uri

DEFAULT_EXPIRES: Final = 3600
CKey = tuple[str, str | None, str, int | None]


def contact_key(uri: Uri) -> CKey:
    """Contact identity: scheme, user, lower-cased host, port."""
    return (uri.scheme, uri.user, uri.host.lower(), uri.port)


class Binding(Timed):
    """One (AOR, contact) binding."""

    __slots__ = (
        "aor", "call_id", "ckey", "client", "contact", "created", "expires", "refreshed",
        "server", "transport",
    )  # fmt: skip

    def __init__(self, aor: str, ckey: CKey, contact: NameAddr, ts: int) -> None:
        super().__init__()
        self.aor = aor
        self.ckey = ckey
        self.contact = contact
        self.created = self.refreshed = ts
        self.expires = 0
        self.call_id = ""
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.transport = ""  # of the REGISTER that last refreshed it


class Registrar:
    """The binding cache (see module docstring)."""

    __slots__ = ("by_aor", "core", "grace_ns", "max_regs", "table")

    def __init__(self, core: Core, grace_ns: int, max_regs: int) -> None:
        self.core = core
        self.grace_ns = grace_ns
        self.max_regs = max_regs
        self.table: OrderedDict[tuple[str, CKey], Binding] = OrderedDict()
        self.by_aor: dict[str, dict[CKey, Binding]] = {}

    def __len__(self) -> int:
        return len(self.table)

    def on_2xx(self, req: SipMessage | None, resp: SipMessage, ts: int) -> None:
        """Apply one 2xx to REGISTER (see module docstring)."""
        aor = aor_of(resp.to.uri)
        if req is not None and req.contact_star:
            gone = list(self.by_aor.get(aor, {}).values())
            for b in gone:
                self._delete(b, req, resp, ts)
            if not gone:
                self._emit("reg-del", ts, req, resp, aor, None, 0)
            return
        listed = {contact_key(c.uri): c for c in resp.contacts}
        if req is None:
            for k, c in listed.items():
                exp = _first(c.expires, resp.expires, DEFAULT_EXPIRES)
                if exp:
                    self._bind(aor, k, c, exp, None, resp, ts)
            return
        for c in req.contacts:
            k = contact_key(c.uri)
            asked = _first(c.expires, req.expires)
            got = listed.get(k)
            if got is not None:
                exp = _first(got.expires, resp.expires, asked)
            elif not listed:
                exp = asked
            else:
                exp = 0
            if exp is None:
                exp = DEFAULT_EXPIRES
            if exp > 0:
                self._bind(aor, k, got or c, exp, req, resp, ts)
                continue
            old = self.by_aor.get(aor, {}).get(k)
            if old is not None:
                self._delete(old, req, resp, ts)
            elif asked == 0:
                self._emit("reg-del", ts, req, resp, aor, c, 0)
            else:
                self.core.c["reg_contact_not_in_reply"] += 1

    def _bind(
        self,
        aor: str,
        k: CKey,
        contact: NameAddr,
        exp: int,
        req: SipMessage | None,
        resp: SipMessage,
        ts: int,
    ) -> None:
        key = (aor, k)
        b = self.table.get(key)
        if b is None:
            table = self.table
            while len(table) >= self.max_regs:
                _, old = table.popitem(last=False)
                self._unlink(old)
                self.core.c["regs_evicted"] += 1
            b = Binding(aor, k, contact, ts)
            table[key] = b
            self.by_aor.setdefault(aor, {})[k] = b
            self._emit("reg-new", ts, req, resp, aor, contact, exp, start=ts)
        else:
            self.table.move_to_end(key)
            self.core.c["reg_refreshes"] += 1
        b.contact, b.expires, b.refreshed = contact, exp, ts
        b.call_id = resp.call_id
        b.client, b.server = ends(req if req is not None else resp)
        p = resp.payload
        b.transport = p.transport if p is not None else ""
        self.core.timers.arm(b, ts + exp * NS + self.grace_ns)

    def _unlink(self, b: Binding) -> None:
        self.core.timers.cancel(b)
        self.table.pop((b.aor, b.ckey), None)
        per = self.by_aor.get(b.aor)
        if per is not None:
            per.pop(b.ckey, None)
            if not per:
                del self.by_aor[b.aor]

    def _delete(self, b: Binding, req: SipMessage | None, resp: SipMessage, ts: int) -> None:
        self._unlink(b)
        self._emit(
            "reg-del", ts, req, resp, b.aor, b.contact, 0, life=ts - b.created, start=b.created
        )

    def timeout(self, b: Binding, due: int, why: str = "timeout registration") -> None:
        """The binding was not refreshed in time (or the replay ends with expire-all)."""
        self._unlink(b)
        end = min(due, b.refreshed + b.expires * NS)
        flow = None
        if b.client is not None and b.server is not None and b.transport:
            flow = Flow(*b.client, *b.server, b.transport)
        o = Outcome(
            "reg-expired",
            due,
            call_id=b.call_id,
            method="REGISTER",
            status=408,
            reason=why,
            client=b.client,
            server=b.server,
            start_ns=b.created,
            end_ns=end,
            reg=RegInfo(b.aor, b.contact, b.expires, max(0, end - b.created)),
            flow=flow,
        )
        self.core.out.append(o)

    def _emit(
        self,
        action: str,
        ts: int,
        req: SipMessage | None,
        resp: SipMessage,
        aor: str,
        contact: NameAddr | None,
        exp: int,
        life: int | None = None,
        start: int | None = None,
    ) -> None:
        client, server = ends(req if req is not None else resp)
        self.core.out.append(
            Outcome(
                action,
                ts,
                msg=resp,
                request=req,
                response=resp,
                call_id=resp.call_id,
                method="REGISTER",
                status=resp.status,
                reason=resp.reason,
                client=client,
                server=server,
                start_ns=start,
                end_ns=ts if action == "reg-del" else None,
                reg=RegInfo(aor, contact, exp, life),
                flow=flow_of(req, resp),
            )
        )

    def summaries(self) -> list[dict]:
        """Small JSON-able views of the cached bindings, oldest refresh first."""
        return [
            {
                "aor": b.aor,
                "contact": b.contact.uri.original,
                "expires": b.expires,
                "created_ns": b.created,
                "refreshed_ns": b.refreshed,
                "expires_at_ns": b.refreshed + b.expires * NS,
                "call_id": b.call_id,
                "client": list(b.client) if b.client else None,
            }
            for b in self.table.values()
        ]


def _first(*values: int | None) -> int | None:
    """The first value that is not None."""
    for v in values:
        if v is not None:
            return v
    return None
