"""Call outcomes, ASR and NER: how each decided call ended, and the ratios derived from them.

A shard counts one outcome per decided call in the counter group `call_outcomes` (summed over
workers like every counter): `answered` for a call-start (each answered dialog: two dialogs of
a forked call are two calls, as they are two call-start events), the final status code of a
failed INVITE for a call-attempt (`"486"`, `"487"` for a cancelled call, ...) or for an
auth-failed INVITE (a credentialed INVITE refused 401/403/407), and `timeout` for a
call-attempt ended by its timer with no final reply. Keys are bounded: `answered`, `timeout`
and the status codes 300-699. A challenge answered with credentials continues the same call
(counted once, by how it ends); credentials refused are an outcome of their own, so a caller
who then retries with the right password counts twice, as the events report it twice.

- ASR (answer-seizure ratio, ITU-T E.411): answered / attempted.
- NER (network effectiveness ratio, ITU-T E.411): (answered + outcomes where the network did
  its job and the user decided: busy, no answer, rejected) / attempted. In SIP terms
  (RFC 6076's SEER takes the same view): 486 Busy Here, 600 Busy Everywhere (user busy), 480
  Temporarily Unavailable, 487 Request Terminated (ring no answer / caller abandoned), 603
  Decline (terminal rejection). Everything else (4xx other than those, 5xx, timeouts) counts
  against the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sipcm.track.outcome import Outcome

GROUP = "call_outcomes"
ANSWERED = "answered"
TIMEOUT = "timeout"
# Final replies that E.411 counts as effective: the user, not the network, decided.
NER_USER_CODES = frozenset({480, 486, 487, 600, 603})
_TIMER_REASON = "timeout "  # the tracker's reason for an event its timer decided (outcome.py)
# Reason phrases of the final codes (RFC 3261 21, RFC 3265, 3329, 4412, 5079, 6665, 8599...),
# for the failures table; a code not listed shows its class.
REASONS: dict[int, str] = {
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    428: "Use Identity Header", 429: "Provide Referrer Identity", 433: "Anonymity Disallowed",
    436: "Bad Identity-Info", 437: "Unsupported Certificate", 438: "Invalid Identity Header",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable", 607: "Unwanted", 608: "Rejected",
}  # fmt: skip
_CLASSES = {3: "redirection", 4: "client error", 5: "server error", 6: "global failure"}


def meaning(key: str) -> str:
    """What an outcome key means, e.g. "Busy Here" for "486", "no final reply" for timeout."""
    if key == ANSWERED:
        return "answered"
    if key == TIMEOUT:
        return "no final reply (timeout)"
    code = int(key)
    return REASONS.get(code) or _CLASSES.get(code // 100, "unknown")


# The actions that can decide a call: outcome_key is None for every other one (it checks this
# set first, so callers may skip it for the rest).
DECIDING_ACTIONS = frozenset({"call-start", "call-attempt", "auth-failed"})


def outcome_key(o: Outcome) -> str | None:
    """The `call_outcomes` key of one tracker outcome, None when it decides no call."""
    action = o.action
    if action not in DECIDING_ACTIONS:
        return None
    if action == "call-start":
        return ANSWERED
    if action == "call-attempt":
        if o.msg is None and o.status == 408 and (o.reason or "").startswith(_TIMER_REASON):
            return TIMEOUT
    elif o.method != "INVITE":  # auth-failed decides only an INVITE attempt
        return None
    status = o.status
    return str(status) if status is not None and 300 <= status <= 699 else TIMEOUT


def is_effective(key: str) -> bool:
    """True for outcomes E.411 counts in NER's numerator."""
    return key == ANSWERED or (key.isdigit() and int(key) in NER_USER_CODES)


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def summary(outcomes: Mapping[str, int]) -> dict[str, Any]:
    """Attempted, answered and effective calls, ASR and NER (None without calls), and the
    failed outcomes by count (most first, then by key), each with its share of the attempts."""
    attempted = sum(outcomes.values())
    answered = outcomes.get(ANSWERED, 0)
    effective = sum(n for k, n in outcomes.items() if is_effective(k))
    failures = sorted(
        ((k, n) for k, n in outcomes.items() if k != ANSWERED and n), key=lambda kn: (-kn[1], kn[0])
    )
    return {
        "attempted": attempted,
        "answered": answered,
        "effective": effective,
        "asr": _ratio(answered, attempted),
        "ner": _ratio(effective, attempted),
        "ner_user_codes": sorted(NER_USER_CODES),
        "failures": [
            {
                "outcome": k,
                "meaning": meaning(k),
                "calls": n,
                "share": _ratio(n, attempted),
                "user_side": is_effective(k),
            }
            for k, n in failures
        ],
    }
