"""The builder's fast paths give the same text as the general ones."""

from __future__ import annotations

import ipaddress

import pytest

from sipcm.events import build
from sipcm.events.build import _ip_literal, rfc3339


@pytest.mark.parametrize(
    ("host", "ip"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("255.255.255.255", "255.255.255.255"),
        ("0.0.0.0", "0.0.0.0"),
        ("256.1.1.1", None),
        ("01.2.3.4", None),  # leading zero: ipaddress refuses it, so it is a host name
        ("1.2.3", None),
        ("1.2.3.4.5", None),
        ("[2001:DB8::1]", "2001:db8::1"),
        ("[192.0.2.1]", "192.0.2.1"),
        ("2001:db8:0:0::1", "2001:db8::1"),
        ("example.com", None),
        ("\u0661.2.3.4", None),  # an Arabic-Indic digit is not an address
    ],
)
def test_ip_literal(host: str, ip: str | None) -> None:
    assert _ip_literal(host) == ip


def test_ip_literal_dotted_quads_match_ipaddress() -> None:
    for a in (0, 1, 9, 10, 99, 100, 199, 200, 249, 250, 255, 256, 300):
        host = f"{a}.{a}.1.{255 - a % 256}"
        try:
            want: str | None = str(ipaddress.ip_address(host))
        except ValueError:
            want = None
        assert _ip_literal(host) == want


def test_rfc3339_prefix_cache_is_bounded_and_exact() -> None:
    s = 1_000_000_000
    for i in range(build._TS_PREFIXES + 5):
        assert rfc3339(i * 86_400 * s + 7).endswith("T00:00:00.000000007Z")
        assert len(build._ts_prefix) <= build._TS_PREFIXES
    assert rfc3339(1_700_000_000 * s) == "2023-11-14T22:13:20.000000000Z"
    assert rfc3339(-1) == "1969-12-31T23:59:59.999999999Z"
