"""bench.live's comparison of worker counts (`--workers 1,2`), on made-up steps."""

from __future__ import annotations

import argparse

import pytest

from bench.live import Step, best, compare, worker_counts


def step(target: float, ok: bool, *, main_s: float, workers_s: float, sender_s: float) -> Step:
    s = Step(target, calls=10_000)  # 70,000 messages
    s.ok, s.offered, s.send_s = ok, target, 70_000 / target
    s.done_s = s.send_s + 0.1
    s.frames = 140_000  # one non-SIP frame per SIP message
    s.main_cpu_s, s.workers_cpu_s, s.sender_sys_s = main_s, workers_s, sender_s
    s.messages = 70_000
    return s


def test_worker_counts() -> None:
    assert worker_counts("2") == [2]
    assert worker_counts("1,2,3") == [1, 2, 3]
    for bad in ("0", "1,0", "two", "1,,2"):
        with pytest.raises(argparse.ArgumentTypeError):
            worker_counts(bad)


def test_the_top_step_is_the_fastest_that_kept_up() -> None:
    a = step(40_000, True, main_s=1, workers_s=0, sender_s=0.1)
    b = step(80_000, False, main_s=1, workers_s=0, sender_s=0.1)
    c = step(60_000, True, main_s=1, workers_s=0, sender_s=0.1)
    assert best([a, b, c]) is c
    assert best([b]) is None


def test_compare_prints_the_ratio_and_the_cap_the_sender_leaves(capsys) -> None:
    one = step(60_000, True, main_s=70_000 * 16.6e-6, workers_s=0, sender_s=140_000 * 2.2e-6)
    two = step(
        84_000, True, main_s=70_000 * 10e-6, workers_s=70_000 * 9.6e-6, sender_s=140_000 * 2.2e-6
    )
    compare([(1, [one]), (2, [two, step(99_000, False, main_s=1, workers_s=1, sender_s=1)])], 2)
    out = capsys.readouterr().out.splitlines()
    # sustained: 70,000 messages over the sending time plus 0.1 s
    assert out[1].split() == ["1", "55,263", "60,000", "16.6", "2.20", "2.00"]
    assert out[2].split() == ["2", "75,000", "84,000", "10.0", "+", "9.6", "2.20", "2.00"]
    # 75,000 / 55,263; C1 16.6 µs against 19.6; the sender's 2.2 x 2 µs per SIP message:
    # 2 x 16.6 / (16.6 + 4.4) = 1.58
    assert out[3] == (
        "workers 2 / 1: 1.36x sustained (1.40x by the offered rates); CPU per message 19.6 µs "
        "against 16.6 (+18%); the sender's 4.4 µs per SIP message on the same 2 cores caps "
        "the ratio at 1.58x even if sharding cost nothing"
    )
