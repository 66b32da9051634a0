"""Every field sipcm emits, declared once: name, type, description.

This table is the single source for the Elasticsearch index template (`template.py`), the field
documentation (`python -m sipcm.events.schema --markdown`) and the test validator
(`tests/ecs.py`). Fields outside `sip.*` and `sipcm.*` are ECS fields and carry their ECS type;
`sip.*` follows Packetbeat's names (with numeric codes and ports mapped as `long`, not keyword,
so ranges and comparisons work); `sipcm.*` is the product's own namespace.

It never builds documents; `build.py` does.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

# ECS release the fields follow (the one tests/ecs_subset.yml was generated from).
ECS_VERSION = "9.5.0-dev"

# Value types a document may use; "object" with `leaf` set is a dynamic map of leaves of that type.
TYPES = frozenset(
    {
        "keyword",
        "constant_keyword",
        "wildcard",
        "match_only_text",
        "long",
        "float",
        "boolean",
        "ip",
        "date",
        "object",
    }
)


# What a field's value identifies, when it identifies a person or a host: the anonymization
# switch that encrypts it and how follow from this (`anonymize.KINDS`). Every surface that
# shows a field's value (events, web API rows, dashboard) goes through that transformation.
SENSITIVE: dict[str, str] = {
    "ip": "an IP address (encrypt_ip_addresses)",
    "uri_ip": "an IP address, possibly from a URI host (encrypt_ip_addresses or encrypt_uris)",
    "uri": "a SIP or tel URI (encrypt_uris)",
    "user": "a user part or user name (encrypt_uris)",
    "host": "a host name or realm (encrypt_uris)",
    "display": "a display name (encrypt_uris)",
    "call_id": "a Call-ID (encrypt_call_ids)",
    "ua": "a User-Agent or Server string (encrypt_ua)",
}


@dataclass(frozen=True, slots=True)
class Field:
    """One emitted field. `array`: the value is a list; `text`: add a `.text` multi-field;
    `leaf`: for an `object`, the type of every value under it (dynamic names); `sensitive`:
    a key of SENSITIVE when the value identifies someone (every `ip` field must say which)."""

    name: str
    type: str
    description: str
    array: bool = False
    text: bool = False
    leaf: str | None = None
    sensitive: str | None = None


def _uri(prefix: str, what: str) -> list[Field]:
    return [
        Field(f"{prefix}.uri.original", "keyword", f"{what}: the URI as written.", text=True,
              sensitive="uri"),
        Field(f"{prefix}.uri.scheme", "keyword", f"{what}: URI scheme (sip, sips, tel)."),
        Field(f"{prefix}.uri.username", "keyword", f"{what}: user part or tel number.",
              sensitive="user"),
        Field(f"{prefix}.uri.host", "keyword", f"{what}: host part.", sensitive="host"),
        Field(f"{prefix}.uri.port", "long", f"{what}: port, when the URI has one."),
    ]  # fmt: skip


def _name_addr(prefix: str, what: str, tag: bool) -> list[Field]:
    fields = [
        Field(f"{prefix}.display_info", "keyword", f"{what}: display name.", sensitive="display")
    ]
    if tag:
        fields.append(Field(f"{prefix}.tag", "keyword", f"{what}: tag parameter."))
    return fields + _uri(prefix, what)


FIELDS: tuple[Field, ...] = (
    Field("@timestamp", "date", "Capture time of the message or timer that produced the event."),
    Field("ecs.version", "keyword", "ECS version the document follows."),
    Field("data_stream.type", "constant_keyword", "Data stream type (logs); set by the template."),
    Field("data_stream.dataset", "constant_keyword", "Data stream dataset (sipcm.sip)."),
    Field("data_stream.namespace", "constant_keyword", "Data stream namespace."),
    Field("event.action", "keyword", "Event name: call-start, call-end, reg-new, ..., stats."),
    Field("event.kind", "keyword", "ECS kind: event, or metric for stats."),
    Field("event.category", "keyword", "ECS categories (network, session, ...).", array=True),
    Field("event.type", "keyword", "ECS types (start, end, info, ...).", array=True),
    Field("event.outcome", "keyword", "success, failure or unknown."),
    Field("event.dataset", "keyword", "Always sipcm.sip."),
    Field("event.module", "keyword", "Always sipcm."),
    Field("event.reason", "keyword", "Final reply reason phrase, timer or parse error reason."),
    Field("event.duration", "long", "Call duration (call-end) or binding lifetime (reg-*), ns."),
    Field("event.start", "date", "Start of the dialog, transaction or binding."),
    Field("event.end", "date", "End of the dialog, transaction or binding."),
    Field(
        "source.ip",
        "ip",
        "Who acted: sender of the request the event reports on, on its leg (credentials for "
        "auth-failed, INVITE for call-start/attempt, BYE for call-end, REGISTER for reg-*; the "
        "packet for parse-error/msg-probe); inner address if tunnelled.",
        sensitive="ip",
    ),
    Field("source.port", "long", "Port of that sender."),
    Field(
        "destination.ip",
        "ip",
        "Receiver of that request on the same leg (inner address).",
        sensitive="ip",
    ),
    Field("destination.port", "long", "Port of that receiver."),
    Field("client.ip", "ip", "Caller side (sender of the initial request).", sensitive="ip"),
    Field("client.port", "long", "Caller side port."),
    Field("server.ip", "ip", "Callee side (receiver of the initial request).", sensitive="ip"),
    Field("server.port", "long", "Callee side port."),
    Field("network.transport", "keyword", "udp or tcp."),
    Field(
        "network.community_id",
        "keyword",
        "Community ID v1 (seed 0) of the source/destination 5-tuple: pivots to flow logs.",
    ),
    Field("network.type", "keyword", "ipv4 or ipv6 (inner packet)."),
    Field("network.protocol", "keyword", "Always sip."),
    Field(
        "network.direction",
        "keyword",
        "ingress or egress of the triggering message on the observer's interface.",
    ),
    Field("network.vlan.id", "keyword", "Outermost VLAN id."),
    Field("observer.hostname", "keyword", "Host running the sensor."),
    Field("observer.product", "keyword", "Always sipcm."),
    Field("observer.vendor", "keyword", "Always sipcm."),
    Field("observer.version", "keyword", "sipcm version."),
    Field("observer.type", "keyword", "Always sensor."),
    Field("observer.ingress.interface.name", "keyword", "Interface the message arrived on."),
    Field("observer.ingress.interface.id", "keyword", "ifindex of that interface."),
    Field("observer.egress.interface.name", "keyword", "Interface the message left by."),
    Field("observer.egress.interface.id", "keyword", "ifindex of that interface."),
    Field("url.original", "wildcard", "Request URI of the initial request.", text=True,
          sensitive="uri"),
    Field("user_agent.original", "keyword", "User-Agent of the caller side.", text=True,
          sensitive="ua"),
    Field("user.name", "keyword", "Digest user name of the request's credentials.", text=True,
          sensitive="user"),
    Field("error.code", "keyword", "parse-error/msg-probe reason (snake_case)."),
    Field("error.message", "match_only_text", "Parse failure, with the byte offset."),
    Field("related.ip", "ip", "Every address in the event (inner, outer, URI hosts).", array=True,
          sensitive="uri_ip"),
    Field("related.user", "keyword", "User parts of From, To, Contact, request URI.", array=True,
          sensitive="user"),
    Field("related.hosts", "keyword", "Host names in From, To, Contact, request URI.", array=True,
          sensitive="host"),
    Field("sip.call_id", "keyword", "Call-ID.", sensitive="call_id"),
    Field("sip.method", "keyword", "Method of the dialog or transaction (INVITE, REGISTER, ...)."),
    Field("sip.code", "long", "Final status code (408 for a timeout)."),
    Field("sip.status", "keyword", "Final reason phrase."),
    *_uri("sip", "Request URI"),
    *_name_addr("sip.from", "From", tag=True),
    *_name_addr("sip.to", "To", tag=True),
    *_name_addr("sip.contact", "Contact (binding for reg-*, caller contact otherwise)", tag=False),
    Field("sip.contact.expires", "long", "Contact expires parameter, seconds."),
    Field("sip.cseq.code", "long", "CSeq number of the initial request."),
    Field("sip.cseq.method", "keyword", "CSeq method of the initial request."),
    Field("sip.user_agent.original", "keyword", "Server/User-Agent of the callee side.", text=True,
          sensitive="ua"),
    Field("sip.pai", "keyword", "P-Asserted-Identity URIs.", array=True, sensitive="uri"),
    Field("sip.auth.scheme", "keyword", "Authorization scheme (Digest)."),
    Field("sip.auth.realm", "keyword", "Authorization realm.", sensitive="host"),
    Field("sip.call.pdd", "float", "Post-dial delay: INVITE to first 18x or final reply, ms."),
    Field("sip.call.ring_time", "float", "First 18x to answer, ms."),
    Field("sip.call.setup_time", "float", "INVITE to 2xx, ms."),
    Field("sip.call.originator", "keyword", "Who ended the call: caller, callee, timeout."),
    Field("sip.call.reconstructed", "boolean", "Dialog seen without its INVITE or its 2xx."),
    Field("sip.call.reconstructed_from", "keyword", "What it was rebuilt from (bye, 2xx, ...)."),
    Field("sip.call.retransmissions", "long", "Retransmitted messages seen in the dialog."),
    Field("sip.reg.aor", "keyword", "Address-of-record (To URI without parameters).",
          sensitive="uri"),
    Field("sip.reg.expires", "long", "Seconds granted to the binding."),
    Field("sip.reg.lifetime", "long", "Seconds the binding existed (reg-del, reg-expired)."),
    Field("sipcm.tunnel.type", "keyword", "Encapsulation: vxlan, ipip, gre, gtp."),
    Field("sipcm.tunnel.vni", "long", "VXLAN network identifier (GTP TEID for gtp)."),
    Field(
        "sipcm.tunnel.source.ip",
        "ip",
        "Outer source address of the triggering packet.",
        sensitive="ip",
    ),
    Field("sipcm.tunnel.source.port", "long", "Outer source port (UDP encapsulations)."),
    Field("sipcm.tunnel.destination.ip", "ip", "Outer destination address.", sensitive="ip"),
    Field("sipcm.tunnel.destination.port", "long", "Outer destination port."),
    Field("sipcm.frame", "long", "Replay: 1-based frame number of the triggering packet."),
    Field("sipcm.reassembled", "boolean", "Message rebuilt from IP fragments or TCP segments."),
    Field("sipcm.parse.offset", "long", "Byte offset where parsing stopped."),
    Field("sipcm.payload.size", "long", "Bytes of the unparsable payload."),
    Field("sipcm.counters", "object", "stats: counters by stage group.", leaf="long"),
    Field("sipcm.rate.exceeded", "long", "Events over the limit since blacklisting (sec. 10)."),
    Field("sipcm.rate.current", "float", "Current rate of the (event, source IP) key."),
    Field("sipcm.rate.limit", "float", "Limit of the window that was exceeded."),
    Field("sipcm.rate.window", "float", "Length of that window, seconds."),
    Field("sipcm.rate.since", "date", "When the key went over the limit."),
    Field("sipcm.anon.fields", "keyword", "Fields anonymized in this event.", array=True),
    Field("sipcm.anon.key_check", "keyword", "Short check value of the anonymization key."),
    Field("sipcm.anon.ipv4", "keyword", "How IPv4 addresses were encrypted: prefix or ipcipher."),
)  # fmt: skip

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}


def check_sensitivity() -> list[str]:
    """Problems with the `sensitive` declarations: unknown kinds, addresses left undeclared."""
    errors = []
    for f in FIELDS:
        if f.sensitive is not None and f.sensitive not in SENSITIVE:
            errors.append(f"{f.name}: unknown sensitivity {f.sensitive!r}")
        if f.type == "ip" and f.sensitive is None:
            errors.append(f"{f.name}: an address field must declare its sensitivity")
    return errors


def check_ecs(ecs_flat: dict[str, dict]) -> list[str]:
    """Problems with FIELDS against ECS definitions (`ecs_flat.yml` loaded as a dict), and with
    their sensitivity declarations."""
    errors = check_sensitivity()
    for f in FIELDS:
        if f.type not in TYPES:
            errors.append(f"{f.name}: unknown type {f.type}")
        if f.name.startswith(("sip.", "sipcm.")):
            if f.name in ecs_flat:
                errors.append(f"{f.name}: product field shadows an ECS field")
            continue
        ecs = ecs_flat.get(f.name)
        if ecs is None:
            errors.append(f"{f.name}: not an ECS field")
        elif ecs["type"] != f.type:
            errors.append(f"{f.name}: type {f.type}, ECS says {ecs['type']}")
        elif f.array != ("array" in ecs.get("normalize", ())):
            errors.append(f"{f.name}: array={f.array} disagrees with ECS normalize")
    return errors


def markdown() -> str:
    """The field reference as a Markdown table."""
    rows = ["| field | type | description | sensitive |", "|---|---|---|---|"]
    for f in FIELDS:
        kind = f"{f.type}[]" if f.array else f.type
        if f.leaf:
            kind += f" of {f.leaf}"
        sensitive = SENSITIVE[f.sensitive] if f.sensitive else ""
        rows.append(f"| `{f.name}` | {kind} | {f.description} | {sensitive} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m sipcm.events.schema`: check against ECS, or export docs / index template."""
    import argparse  # here: every event builder imports this module, only this CLI needs it

    ap = argparse.ArgumentParser(prog="python -m sipcm.events.schema", description=__doc__)
    ap.add_argument("--check", metavar="ECS_FLAT_YML", help="compare with ecs_flat.yml")
    ap.add_argument("--markdown", action="store_true", help="print the field table")
    ap.add_argument("--template", action="store_true", help="print the index template JSON")
    args = ap.parse_args(argv)
    if args.check:
        import yaml

        with Path(args.check).open("rb") as fh:
            errors = check_ecs(yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
        for e in errors:
            print(e, file=sys.stderr)
        print(f"{len(FIELDS)} fields, {len(errors)} problems")
        if errors:
            return 1
    if args.markdown:
        sys.stdout.write(markdown())
    if args.template:
        from sipcm.events.template import index_template

        json.dump(index_template(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
