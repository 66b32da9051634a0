"""Durations, sizes and the value kinds: parsing tables and refusals."""

from __future__ import annotations

import pytest

from sipcm.config import format_duration, format_size, parse_duration, parse_size
from sipcm.config import kinds as k


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (0, 0.0),
        (30, 30.0),
        (1.5, 1.5),
        ("30", 30.0),
        ("0.25", 0.25),
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("500us", 0.0005),
        (" 10 s ", 10.0),
        ("2H", 7200.0),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-12)


@pytest.mark.parametrize(
    "bad", ["", "s", "5x", "5 minutes", "-5s", "1h-30m", "ms5", True, None, [1], "inf", "nan"]
)
def test_parse_duration_refuses(bad):
    with pytest.raises(ValueError):  # noqa: PT011 - ValueError carries only the value
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (0, 0),
        (65535, 65535),
        (1024.0, 1024),
        ("1500", 1500),
        ("64KiB", 65536),
        ("16MiB", 16777216),
        ("1GiB", 1073741824),
        ("100MB", 100_000_000),
        ("4kB", 4000),
        ("1.5KiB", 1536),
        ("10 B", 10),
        ("2TiB", 2 * 1024**4),
        ("1mib", 1048576),
    ],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "KiB", "1.1B", "0.1KiB", "5XB", "-1", True, None, 1.5, "1e3"])
def test_parse_size_refuses(bad):
    with pytest.raises(ValueError):  # noqa: PT011
        parse_size(bad)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.005, "5ms"),
        (1, "1s"),
        (60, "1m"),
        (300, "5m"),
        (3600, "1h"),
        (86400, "1d"),
        (90, "90s"),
        (0.0005, "500us"),
        (1.0000001, "1.0000001s"),
        (1.25, "1250ms"),
        (0.1, "100ms"),
        (1e-7, "0.0000001s"),
        (1.5e-7, "0.00000015s"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("seconds", [0.001 * n for n in range(1, 2000, 7)] + [1 / 3, 2 / 3, 1e-9])
def test_format_duration_round_trips(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0"),
        (65535, "65535"),
        (65536, "64KiB"),
        (16 * 1024**2, "16MiB"),
        (1024**3, "1GiB"),
        (100 * 1024**2, "100MiB"),
        (1536, "1536"),
        (100 * 1000**2, "100MB"),
        (1000, "1kB"),
        (1024**4, "1TiB"),
        (1024 * 1000, "1024kB"),  # shorter than 1000KiB
    ],
)
def test_format_size(size, text):
    assert format_size(size) == text
    assert parse_size(text) == size


def test_duration_kind_bounds():
    kind = k.duration(0, 5, above=True)
    assert kind.convert("5s") == 5.0
    assert kind.convert("1ms") == 0.001
    for bad in (0, "0s", "6s", "x"):
        with pytest.raises(k.Invalid) as info:
            kind.convert(bad)
        assert info.value.expected.startswith("a duration greater than 0s and at most 5s")


def test_size_kind_power_of_two():
    kind = k.size(4096, 1024**3, power_of_two=True)
    assert kind.convert("4KiB") == 4096
    assert kind.convert("1GiB") == 1024**3
    for bad in (2048, 12288, "2GiB", "3MiB"):
        with pytest.raises(k.Invalid) as info:
            kind.convert(bad)
        assert info.value.expected.startswith("a power-of-two size from 4KiB to 1GiB in bytes")


def test_boolean_kind_only_yaml_booleans():
    kind = k.boolean()
    assert kind.convert(True) is True
    assert kind.convert(False) is False
    for bad in (0, 1, "true", None):
        with pytest.raises(k.Invalid) as info:
            kind.convert(bad)
        assert info.value.expected == "true or false"


def test_integer_kind_refuses_bool_and_float():
    kind = k.integer(1)
    assert kind.convert(7) == 7
    for bad in (True, 1.0, "7", 0):
        with pytest.raises(k.Invalid) as info:
            kind.convert(bad)
        assert info.value.expected == "an integer of at least 1"


def test_list_kind_locates_bad_item():
    kind = k.list_of(k.port())
    assert kind.convert([5060, 5080]) == (5060, 5080)
    with pytest.raises(k.Invalid) as info:
        kind.convert([5060, 70000])
    assert (info.value.sub, info.value.value) == ("[1]", 70000)
    assert info.value.expected == "a port number from 1 to 65535"


def test_map_kind_locates_bad_entry():
    kind = k.map_of(k.duration())
    assert kind.convert({"inv_1st": "30s"}) == {"inv_1st": 30.0}
    assert kind.convert(None) == {}
    with pytest.raises(k.Invalid) as info:
        kind.convert({"inv_1st": "30s", "inv_established": "forever"})
    assert (info.value.sub, info.value.value) == (".inv_established", "forever")


def test_choice_kind_suggests_and_lowers():
    kind = k.choice(("call-start", "msg-probe"))
    assert kind.convert("MSG-Probe") == "msg-probe"
    with pytest.raises(k.Invalid) as info:
        kind.convert("call-strat")
    assert info.value.expected == "one of call-start, msg-probe (did you mean 'call-start'?)"


@pytest.mark.parametrize(
    ("fn", "good", "bad"),
    [
        (
            k.is_hostname_or_ip,
            ["127.0.0.1", "::1", "0.0.0.0", "sensor-1.example.net"],
            ["-bad", "a b", "a..b", "x" * 64],
        ),
        (
            k.is_http_url,
            ["http://127.0.0.1:9200", "https://es.example/prefix"],
            ["localhost:9200", "ftp://x", "http://:9200", "http://h:99999"],
        ),
        (k.is_ifname, ["eth0", "veth-a.10", "x" * 15], ["", "x" * 16, "a/b", "eth0:1", "a b"]),
        (k.is_hex_key, ["00112233445566778899aabbccddeeff"], ["0011", "zz" * 16]),
        (k.is_fingerprint, ["ab" * 32, ":".join(["AB"] * 32)], ["ab" * 20, "zz" * 32]),
        (k.is_data_stream, ["logs-sipcm.sip-default"], ["Logs-x", "logs x", "_logs", "a:b"]),
    ],
)
def test_string_checks(fn, good, bad):
    assert [fn(v) for v in good] == [True] * len(good)
    assert [fn(v) for v in bad] == [False] * len(bad)
