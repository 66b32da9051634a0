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

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sipcm.decode.packet import Payload


@dataclass(slots=True)
class Uri:
    original: str
    scheme: str = ""
    user: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class NameAddr:
    uri: Uri
    display: str | None = None
    tag: str | None = None
    params: dict[str, str] = field(default_factory=dict)

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


@dataclass(slots=True)
class Via:
    transport: str
    host: str
    port: int | None = None
    branch: str | None = None
    params: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Credentials:
    scheme: str
    username: str | None
    realm: str | None
    proxy: bool = False
    # False when a Digest header carries an empty response: an IMS initial REGISTER sends
    # its private identity that way (3GPP TS 24.229 5.1.1.2) without answering a challenge.
    answered: bool = True


@dataclass(slots=True)
class SipMessage:
    """One parsed SIP request or response."""

    is_request: bool
    method: str | None  # request method (upper case) or None for a response
    uri: Uri | None  # request URI
    status: int | None  # response status code
    reason: str | None  # response reason phrase
    call_id: str
    from_: NameAddr
    to: NameAddr
    cseq: int
    cseq_method: str  # upper case
    vias: list[Via] = field(default_factory=list)
    contacts: list[NameAddr] = field(default_factory=list)
    contact_star: bool = False  # "Contact: *"
    expires: int | None = None  # Expires header
    user_agent: str | None = None
    server: str | None = None
    reason_hdr: str | None = None  # Reason header (RFC 3326), raw text
    pai: list[NameAddr] = field(default_factory=list)  # P-Asserted-Identity
    credentials: Credentials | None = None
    content_length: int | None = None
    body: bytes = b""
    headers: dict[str, list[str]] = field(default_factory=dict)  # other headers, lower-case names
    bad_headers: int = 0  # optional headers that were malformed and kept raw
    size: int = 0  # bytes of the whole message
    payload: Payload | None = None  # network context, set by the pipeline
    # No blank line ended the headers, or the body is shorter than Content-Length (e.g. the
    # first fragment of a datagram); what was there is parsed and kept.
    truncated: bool = False
    # The payload bytes while the second parsing step is pending (None once complete): never
    # in repr or comparisons, and never set on a message built by hand.
    _rest: bytes | None = field(default=None, init=False, repr=False, compare=False)

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

    def __getattr__(self, name: str) -> Any:
        # Reached only when a slot is unset: a deferred field of a message not completed yet.
        if name in DEFERRED and self._rest is not None:
            self.complete()
            return getattr(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


# The SipMessage fields filled by the second parsing step.
DEFERRED = frozenset(
    {
        "contacts", "contact_star", "expires", "user_agent", "server", "reason_hdr", "pai",
        "credentials", "content_length", "body", "headers", "bad_headers", "truncated",
    }
)  # fmt: skip


@dataclass(slots=True)
class ParseError:
    reason: str
    offset: int
    probe: bool = False
    payload: Payload | None = None
