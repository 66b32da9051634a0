"""The facts the parser hands to `track/`: SipMessage, its parts, and ParseError.

Field list (documented once, here):
- `Uri`: `original` text (any `:password` cut out); `scheme` ("sip", "sips", "tel", ... lower
  case); `user` (user part or tel number, None if absent); `host` (lower case, IPv6 without
  brackets, "" for tel and other schemes); `port` (None if absent); `params` (URI parameters,
  names lower-cased, value "" for a flag).
- `NameAddr`: From, To, Contact and P-Asserted-Identity values: `display` (unquoted display
  name or None), `uri`, `tag` (From/To tag; not repeated in `params`), `params` (header
  parameters, lower-cased names, e.g. "expires", "q").
- `Via`: `transport` (upper case), `host`, `port`, `branch` (not repeated in `params`), `params`.
- `Credentials`: from Authorization / Proxy-Authorization: `scheme`, `username`, `realm`,
  `proxy` (True for Proxy-Authorization). Nonces and digest responses are never kept.
- `SipMessage`: start line, the mandatory headers (Call-ID, From, To, CSeq), the optional ones
  sipcm uses, the raw text of every other header, and counts of what could not be parsed.
  `headers` keys are canonical lower-case names (compact forms expanded); it also holds the
  raw text of extra copies of single headers and of values that did not parse. Route-like
  address lists are split one value per entry; challenges keep only scheme and realm;
  Authorization text is never kept. `body` is cut to Content-Length; `truncated` says the
  header block had no blank line or the body is shorter than Content-Length.
- Read-only after parsing: the parser shares one `Uri`/`NameAddr`/`Via` between the
  messages that repeat its header text (sip/nameaddr.py caches), so never mutate them.
- Parsed in two steps (sip/parser.py): `parse` fills the fields the tracker keys on (start
  line, Call-ID, From, To, CSeq, Vias, `size`) and leaves the others (`DEFERRED`) to a second
  step over the same bytes, run by `complete()` or on the first read of any of them. Every
  field then has exactly the value a one-step parse gives (`parser.parse_full`).
- `ParseError`: `reason` (stable snake_case, also used as the parse-error event reason),
  `offset` (byte offset in the payload where parsing stopped), `probe` (True when the payload
  is not SIP text at all: too short or not starting with a letter -> msg-probe).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sipcm.decode.packet import Payload


# The parts below are dataclasses (fields, equality, repr) with their constructor written out:
# a compiled dataclass keeps the interpreted `__init__` that `dataclasses` generates (about 5x
# the cost of a native one). tests/unit/sip/test_message_fields.py checks that each
# constructor takes exactly the declared fields with their defaults.


@dataclass(slots=True, init=False)
class Uri:
    original: str
    scheme: str = ""
    user: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str] = field(default_factory=dict)

    def __init__(
        self,
        original: str,
        scheme: str = "",
        user: str | None = None,
        host: str = "",
        port: int | None = None,
        params: dict[str, str] | None = None,
    ) -> None:
        self.original = original
        self.scheme = scheme
        self.user = user
        self.host = host
        self.port = port
        self.params = {} if params is None else params


@dataclass(slots=True, init=False)
class NameAddr:
    uri: Uri
    display: str | None = None
    tag: str | None = None
    params: dict[str, str] = field(default_factory=dict)

    def __init__(
        self,
        uri: Uri,
        display: str | None = None,
        tag: str | None = None,
        params: dict[str, str] | None = None,
    ) -> None:
        self.uri = uri
        self.display = display
        self.tag = tag
        self.params = {} if params is None else params

    @property
    def expires(self) -> int | None:
        """The Contact `expires` parameter as an int, None if absent or not a number."""
        v = self.params.get("expires")
        # isascii: str.isdigit() accepts "²", which int() rejects; length: int() limits digits.
        if v is not None and 0 < len(v) <= 10 and v.isascii() and v.isdigit():
            return int(v)
        return None

    @property
    def q(self) -> float | None:
        """The Contact `q` parameter (0 to 1, RFC 3261 20.10), None if absent or malformed."""
        v = self.params.get("q")
        if v is None or not 0 < len(v) <= 5 or not v.isascii():
            return None
        head, _, tail = v.partition(".")
        if head not in ("0", "1") or not (tail.isdigit() or tail == ""):
            return None
        value = float(v)
        return value if value <= 1.0 else None


@dataclass(slots=True, init=False)
class Via:
    transport: str
    host: str
    port: int | None = None
    branch: str | None = None
    params: dict[str, str] = field(default_factory=dict)

    def __init__(
        self,
        transport: str,
        host: str,
        port: int | None = None,
        branch: str | None = None,
        params: dict[str, str] | None = None,
    ) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.branch = branch
        self.params = {} if params is None else params


@dataclass(slots=True, init=False)
class Credentials:
    scheme: str
    username: str | None
    realm: str | None
    proxy: bool = False
    # False when a Digest header carries an empty response: an IMS initial REGISTER sends
    # its private identity that way (3GPP TS 24.229 5.1.1.2) without answering a challenge.
    answered: bool = True

    def __init__(
        self,
        scheme: str,
        username: str | None,
        realm: str | None,
        proxy: bool = False,
        answered: bool = True,
    ) -> None:
        self.scheme = scheme
        self.username = username
        self.realm = realm
        self.proxy = proxy
        self.answered = answered


class SipMessage:
    """One parsed SIP request or response.

    A plain class rather than a dataclass because the fields in `DEFERRED` are properties:
    reading one while the second parsing step is pending (`_rest` holds the bytes) runs it.
    `FIELDS` lists every field in constructor order; equality, repr, slim copies and state
    files read it."""

    __slots__ = (
        "_bad_headers",
        "_body",
        "_contact_star",
        "_contacts",
        "_content_length",
        "_credentials",
        "_expires",
        "_headers",
        "_pai",
        "_reason_hdr",
        "_rest",
        "_server",
        "_truncated",
        "_user_agent",
        "call_id",
        "cseq",
        "cseq_method",
        "from_",
        "is_request",
        "method",
        "payload",
        "reason",
        "size",
        "status",
        "to",
        "uri",
        "vias",
    )  # fmt: skip

    def __init__(
        self,
        is_request: bool,
        method: str | None,  # request method (upper case) or None for a response
        uri: Uri | None,  # request URI
        status: int | None,  # response status code
        reason: str | None,  # response reason phrase
        call_id: str,
        from_: NameAddr,
        to: NameAddr,
        cseq: int,
        cseq_method: str,  # upper case
        vias: list[Via] | None = None,
        contacts: list[NameAddr] | None = None,
        contact_star: bool = False,  # "Contact: *"
        expires: int | None = None,  # Expires header
        user_agent: str | None = None,
        server: str | None = None,
        reason_hdr: str | None = None,  # Reason header (RFC 3326), raw text
        pai: list[NameAddr] | None = None,  # P-Asserted-Identity
        credentials: Credentials | None = None,
        content_length: int | None = None,
        body: bytes = b"",
        headers: dict[str, list[str]] | None = None,  # other headers, lower-case names
        bad_headers: int = 0,  # optional headers that were malformed and kept raw
        size: int = 0,  # bytes of the whole message
        payload: Payload | None = None,  # network context, set by the pipeline
        # No blank line ended the headers, or the body is shorter than Content-Length (e.g.
        # the first fragment of a datagram); what was there is parsed and kept.
        truncated: bool = False,
    ) -> None:
        self.is_request = is_request
        self.method = method
        self.uri = uri
        self.status = status
        self.reason = reason
        self.call_id = call_id
        self.from_ = from_
        self.to = to
        self.cseq = cseq
        self.cseq_method = cseq_method
        self.vias: list[Via] = [] if vias is None else vias
        self._contacts: list[NameAddr] = [] if contacts is None else contacts
        self._contact_star = contact_star
        self._expires = expires
        self._user_agent = user_agent
        self._server = server
        self._reason_hdr = reason_hdr
        self._pai: list[NameAddr] = [] if pai is None else pai
        self._credentials = credentials
        self._content_length = content_length
        self._body = body
        self._headers: dict[str, list[str]] = {} if headers is None else headers
        self._bad_headers = bad_headers
        self.size = size
        self.payload = payload
        self._truncated = truncated
        # The payload bytes while the second parsing step is pending (None once complete):
        # never in repr or comparisons, and never set on a message built by hand.
        self._rest: bytes | None = None

    @property
    def branch(self) -> str | None:
        """Branch of the topmost Via, the transaction id in RFC 3261."""
        return self.vias[0].branch if self.vias else None

    def complete(self) -> SipMessage:
        """Run the pending second parsing step, if any (idempotent); returns the message."""
        if self._rest is not None:
            from sipcm.sip.parser import complete  # the parser imports this module

            complete(self)
        return self

    def replace(self, **changes: Any) -> SipMessage:
        """A copy with `changes` applied to its fields (as `dataclasses.replace`)."""
        values = dict(zip(FIELD_NAMES, _field_values(self), strict=True))
        values.update(changes)
        return SipMessage(**values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SipMessage):
            return NotImplemented
        return _field_values(self) == _field_values(other)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value (as a dataclass)

    def __repr__(self) -> str:
        values = _field_values(self)
        inner = ", ".join(f"{n}={v!r}" for n, v in zip(FIELD_NAMES, values, strict=True))
        return f"SipMessage({inner})"

    # -- the fields of the second parsing step (DEFERRED) ---------------------------------------

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact values (parsed name-addrs)."""
        if self._rest is not None:
            self.complete()
        return self._contacts

    @contacts.setter
    def contacts(self, value: list[NameAddr]) -> None:
        self._contacts = value

    @property
    def contact_star(self) -> bool:
        """`Contact: *` (a REGISTER removing every binding)."""
        if self._rest is not None:
            self.complete()
        return self._contact_star

    @contact_star.setter
    def contact_star(self, value: bool) -> None:
        self._contact_star = value

    @property
    def expires(self) -> int | None:
        """The Expires header."""
        if self._rest is not None:
            self.complete()
        return self._expires

    @expires.setter
    def expires(self, value: int | None) -> None:
        self._expires = value

    @property
    def user_agent(self) -> str | None:
        """The User-Agent header."""
        if self._rest is not None:
            self.complete()
        return self._user_agent

    @user_agent.setter
    def user_agent(self, value: str | None) -> None:
        self._user_agent = value

    @property
    def server(self) -> str | None:
        """The Server header."""
        if self._rest is not None:
            self.complete()
        return self._server

    @server.setter
    def server(self, value: str | None) -> None:
        self._server = value

    @property
    def reason_hdr(self) -> str | None:
        """The Reason header (RFC 3326), raw text."""
        if self._rest is not None:
            self.complete()
        return self._reason_hdr

    @reason_hdr.setter
    def reason_hdr(self, value: str | None) -> None:
        self._reason_hdr = value

    @property
    def pai(self) -> list[NameAddr]:
        """P-Asserted-Identity values."""
        if self._rest is not None:
            self.complete()
        return self._pai

    @pai.setter
    def pai(self, value: list[NameAddr]) -> None:
        self._pai = value

    @property
    def credentials(self) -> Credentials | None:
        """From Authorization / Proxy-Authorization."""
        if self._rest is not None:
            self.complete()
        return self._credentials

    @credentials.setter
    def credentials(self, value: Credentials | None) -> None:
        self._credentials = value

    @property
    def content_length(self) -> int | None:
        """The Content-Length header."""
        if self._rest is not None:
            self.complete()
        return self._content_length

    @content_length.setter
    def content_length(self, value: int | None) -> None:
        self._content_length = value

    @property
    def body(self) -> bytes:
        """The body, cut to Content-Length."""
        if self._rest is not None:
            self.complete()
        return self._body

    @body.setter
    def body(self, value: bytes) -> None:
        self._body = value

    @property
    def headers(self) -> dict[str, list[str]]:
        """Other headers by canonical lower-case name, raw text."""
        if self._rest is not None:
            self.complete()
        return self._headers

    @headers.setter
    def headers(self, value: dict[str, list[str]]) -> None:
        self._headers = value

    @property
    def bad_headers(self) -> int:
        """Optional headers that were malformed and kept raw."""
        if self._rest is not None:
            self.complete()
        return self._bad_headers

    @bad_headers.setter
    def bad_headers(self, value: int) -> None:
        self._bad_headers = value

    @property
    def truncated(self) -> bool:
        """No blank line ended the headers, or the body is shorter than Content-Length."""
        if self._rest is not None:
            self.complete()
        return self._truncated

    @truncated.setter
    def truncated(self, value: bool) -> None:
        self._truncated = value


# Every SipMessage field in constructor order: (name, annotation, default); `REQUIRED` marks
# the fields without one. Mutable defaults here are only compared with, never handed out.
REQUIRED: Any = object()
FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("is_request", "bool", REQUIRED),
    ("method", "str | None", REQUIRED),
    ("uri", "Uri | None", REQUIRED),
    ("status", "int | None", REQUIRED),
    ("reason", "str | None", REQUIRED),
    ("call_id", "str", REQUIRED),
    ("from_", "NameAddr", REQUIRED),
    ("to", "NameAddr", REQUIRED),
    ("cseq", "int", REQUIRED),
    ("cseq_method", "str", REQUIRED),
    ("vias", "list[Via]", []),
    ("contacts", "list[NameAddr]", []),
    ("contact_star", "bool", False),
    ("expires", "int | None", None),
    ("user_agent", "str | None", None),
    ("server", "str | None", None),
    ("reason_hdr", "str | None", None),
    ("pai", "list[NameAddr]", []),
    ("credentials", "Credentials | None", None),
    ("content_length", "int | None", None),
    ("body", "bytes", b""),
    ("headers", "dict[str, list[str]]", {}),
    ("bad_headers", "int", 0),
    ("size", "int", 0),
    ("payload", "Payload | None", None),
    ("truncated", "bool", False),
)
FIELD_NAMES: tuple[str, ...] = tuple(name for name, _ann, _default in FIELDS)
# Reads every field at once (completing a pending message): one C-level call.
_field_values = operator.attrgetter(*FIELD_NAMES)
# The SipMessage fields filled by the second parsing step (properties that run it).
DEFERRED = frozenset(
    {
        "contacts", "contact_star", "expires", "user_agent", "server", "reason_hdr", "pai",
        "credentials", "content_length", "body", "headers", "bad_headers", "truncated",
    }
)  # fmt: skip


@dataclass(slots=True, init=False)
class ParseError:
    reason: str
    offset: int
    probe: bool = False
    payload: Payload | None = None

    def __init__(
        self, reason: str, offset: int, probe: bool = False, payload: Payload | None = None
    ) -> None:
        self.reason = reason
        self.offset = offset
        self.probe = probe
        self.payload = payload
