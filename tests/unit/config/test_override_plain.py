"""-E values read without PyYAML (integers, lists of them, true/false) mean what YAML says."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sipcm.config import load_config
from sipcm.config.loader import _NOT_PLAIN, _plain_value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("-0", 0),
        ("2", 2),
        ("-17", -17),
        ("123456789012345678901234567890", 123456789012345678901234567890),
        ("true", True),
        ("false", False),
        ("[]", []),
        ("[ ]", []),
        ("[0,0,0]", [0, 0, 0]),
        ("[ 1 , -2 ,3 ]", [1, -2, 3]),
    ],
)
def test_plain_values_are_what_yaml_reads(text, value):
    got = _plain_value(text)
    assert got == value
    assert type(got) is type(value)
    assert got == yaml.safe_load(text)


@pytest.mark.parametrize(
    "text",
    # YAML 1.1 reads these differently from Python (octal, underscores, signs, sexagesimal,
    # booleans, floats) or they are not lists of integers: PyYAML decides.
    ["010", "0x1f", "0o7", "0b1", "1_000", "+1", "1:30", "1.5", "1e3", "yes", "True", "on",
     "null", "~", "", "-", "[1,,2]", "[1,2,]", "[[1]]", "[true]", "[010]", "[a]", "1 2", "٣"],
)  # fmt: skip
def test_everything_else_goes_to_yaml(text):
    assert _plain_value(text) is _NOT_PLAIN


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="0123456789-+_[], .:xoeTtrufals", max_size=12))
def test_plain_value_never_disagrees_with_yaml(text):
    got = _plain_value(text)
    if got is not _NOT_PLAIN:
        assert got == yaml.safe_load(text)
        assert type(got) is type(yaml.safe_load(text))


def test_overrides_load_the_same_with_and_without_the_plain_reading():
    # Each override in both spellings: the plain one and a YAML form PyYAML reads the same way.
    plain = load_config(None, ["workers=2", "evr_limits=[0,0,0]", "outputs.console.pretty=true"])
    quoted = load_config(
        None, ["workers=0x2", "evr_limits=[0, 0, +0]", "outputs.console.pretty=True"]
    )
    assert plain == quoted
    assert plain.workers == 2
    assert plain.outputs.console.pretty is True


def test_a_replay_with_plain_overrides_does_not_import_yaml():
    code = (
        "import sys\n"
        "from sipcm.config import load_config\n"
        "load_config(None, ['workers=2', 'evr_limits=[0,0,0]'])\n"
        "import sipcm.run\n"
        "print(sorted(m for m in ('yaml', 'numpy', 'cryptography') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n"
