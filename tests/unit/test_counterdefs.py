"""Every counter the code raises is declared in sipcm.counterdefs (source scan and replays)."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest

from sipcm import counterdefs
from sipcm.capture.program import COUNTER_NAMES
from sipcm.config import load_config
from sipcm.config.schema import EVENT_NAMES
from sipcm.counterdefs import COUNTERS, HISTOGRAMS, lookup, undeclared
from sipcm.events.build import ACTIONS
from sipcm.run import replay
from tests.conftest import CORPUS, REPO
from tests.replayutil import Collect
from tests.sipgen import MS, T0, Capture, Leg, basic_call

SRC = REPO / "sipcm"

# The counter groups each module raises counters in (the group its Counter was built for
# in sipcm.compose / sipcm.pipeline). A module that starts counting must be listed here.
GROUPS_BY_MODULE: dict[str, set[str]] = {
    "capture/live.py": {"capture"},
    "collector.py": {"events", "events_published"},
    "decode/decoder.py": {"decode"},
    "decode/frag.py": {"decode"},
    "decode/ip4.py": {"decode"},
    "decode/ip6.py": {"decode"},
    "decode/link.py": {"decode"},
    "decode/tcp.py": {"decode"},
    "decode/tunnels.py": {"decode"},
    "decode/udp.py": {"decode"},
    "decode/framing.py": {"tcp"},
    "decode/stream.py": {"tcp"},
    "events/anonymize.py": {"anon"},
    "events/rows.py": {"anon"},
    "events/filters.py": {"events"},
    "events/rates.py": {"rates", "rates_limited"},
    "flows.py": {"flows"},
    "outputs/console.py": {"output_console"},
    "outputs/file.py": {"output_file"},
    "outputs/elasticsearch.py": {"output_elasticsearch"},
    "outputs/spool.py": {"output_elasticsearch"},
    "outputs/deadletter.py": {"output_elasticsearch"},
    "pipeline.py": {"interfaces"},
    "run.py": {"track"},
    "shard.py": {"sip", "events", "call_outcomes"},
    "track/calls.py": {"track", "call_times"},
    "track/core.py": {"track"},
    "track/dedup.py": {"track"},
    "track/regs.py": {"track"},
    "track/tracker.py": {"track", "sip_requests", "sip_responses"},
    "track/trans.py": {"track"},
    "workers/pool.py": {"workers"},
}
# Subscript increments that are not counters: (module, receiver) -> why.
NOT_COUNTERS = {
    ("run.py", "kinds"): "record kinds of a state file, for a log line",
    ("outputs/elasticsearch.py", "self._logged"): "log rate limiting per kind",
    ("workers/pool.py", "self._missing"): "rows still expected per chunk",
    ("authsources.py", "row"): "auth failures and times of one source address",
}
# Keys computed at run time that no constant in the module shows: (module, key) -> the
# declaration (group, pattern) whose label the key fills.
COMPUTED_KEYS = {
    ("collector.py", "action"): ("events_published", "{action}"),
    ("collector.py", "doc['event']['action']"): ("events_published", "{action}"),
    ("collector.py", "str(doc.get('event', {}).get('action', 'stats'))"): (
        "events_published",
        "{action}",
    ),
    ("shard.py", "key"): ("call_outcomes", "{outcome}"),
    ("track/calls.py", "names[i]"): ("call_times", "pdd_b0"),
    ("track/calls.py", "names[-1]"): ("call_times", "pdd_sum_ms"),
    ("events/rates.py", "action"): ("rates_limited", "{action}"),
    ("track/tracker.py", "REQUEST_KEYS.get(method, OTHER)"): ("sip_requests", "{method}"),
    (
        "track/tracker.py",
        "RESPONSE_KEYS.get(method, RESPONSE_OTHER)[(msg.status or 0) // 100]",
    ): ("sip_responses", "{method}/{code_class}"),
    ("pipeline.py", "f\"{name}/{DIRECTION_NAMES.get(direction) or 'unknown'}\""): (
        "interfaces",
        "{interface}/{direction}",
    ),
}


def _key_forms(node: ast.expr, func: ast.FunctionDef | None, tree: ast.Module) -> list[str]:
    """The counter names (or `prefix{}` patterns) a subscript key can take."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _key_forms(node.body, func, tree) + _key_forms(node.orelse, func, tree)
    if isinstance(node, ast.JoinedStr):
        return ["".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _key_forms(node.left, func, tree)
        right = _key_forms(node.right, func, tree)
        return [a + b for a in left for b in right] or ["{}"]
    if isinstance(node, ast.Name) and func is not None:
        params = [a.arg for a in func.args.args]
        if node.id in params:  # a parameter: every constant the module's callers pass
            pos = params.index(node.id) - (1 if params and params[0] == "self" else 0)
            found = []
            for call in ast.walk(tree):
                if not isinstance(call, ast.Call):
                    continue
                name = getattr(call.func, "attr", getattr(call.func, "id", None))
                if name != func.name:
                    continue
                args = {k.arg: k.value for k in call.keywords}
                arg = call.args[pos] if pos < len(call.args) else args.get(node.id)
                if arg is not None:
                    found += _key_forms(arg, None, tree)
            return found or ["{}"]
    return ["{}"]


def _raised() -> list[tuple[str, int, str, str, list[str]]]:
    """(module, line, receiver, key source, key forms) of every counter raised in sipcm/."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        mod = path.relative_to(SRC).as_posix()
        tree = ast.parse(path.read_text())
        funcs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]

        def enclosing(node: ast.AST, funcs=funcs) -> ast.FunctionDef | None:
            best = None
            for f in funcs:
                inside = f.lineno <= node.lineno <= (f.end_lineno or f.lineno)
                if inside and (best is None or f.lineno > best.lineno):
                    best = f
            return best

        increments = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Subscript)
        ]
        receivers = {ast.unparse(n.target.value) for n in increments}  # type: ignore[union-attr]
        # Plain assignments to a counter group (gauges such as workers.workers).
        sets = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Assign)
            and len(n.targets) == 1
            and isinstance(n.targets[0], ast.Subscript)
            and ast.unparse(n.targets[0].value) in receivers
        ]
        for node in (*increments, *sets):
            target = node.target if isinstance(node, ast.AugAssign) else node.targets[0]
            assert isinstance(target, ast.Subscript)
            receiver = ast.unparse(target.value)
            if (mod, receiver) in NOT_COUNTERS:
                continue
            key = target.slice
            out.append(
                (
                    mod,
                    node.lineno,
                    receiver,
                    ast.unparse(key),
                    _key_forms(key, enclosing(node), tree),
                )
            )
    return out


def _declared_in(groups: set[str], form: str) -> bool:
    if "{}" not in form:
        return any(lookup(g, form) is not None for g in groups)
    # a pattern key: some declaration of those groups has the same shape
    shape = re.compile(re.escape(form).replace(r"\{\}", ".+") + r"\Z")
    return any(
        d.group in groups and d.labels and shape.match(re.sub(r"\{\w+\}", "x", d.name))
        for d in COUNTERS
    )


def test_the_scan_finds_the_counters_it_should() -> None:
    """The scanner itself: known raises of several shapes are found with their names."""
    found = {(m, k): forms for m, _, _, k, forms in _raised()}
    assert found[("decode/frag.py", "'frag_duplicate' if same else 'frag_overlap'")] == [
        "frag_duplicate",
        "frag_overlap",
    ]
    assert sorted(set(found[("decode/stream.py", "counter")])) == [
        "tcp_incomplete_at_close",
        "tcp_incomplete_at_expiry",
    ]
    assert found[("events/filters.py", "'blacklisted_' + name")] == ["blacklisted_{}"]
    assert found[("outputs/spool.py", "f'dropped_{kind}'")] == ["dropped_{}"]
    assert found[("workers/pool.py", "'workers'")] == ["workers"]
    assert ("shard.py", "'messages'") in found
    assert len(found) > 140


def test_every_counter_raised_in_the_source_is_declared() -> None:
    missing = []
    for mod, line, receiver, key, forms in _raised():
        groups = GROUPS_BY_MODULE.get(mod)
        if groups is None:
            missing.append(f"{mod}:{line}: {receiver}[{key}] in a module not in GROUPS_BY_MODULE")
            continue
        if (mod, key) in COMPUTED_KEYS:
            group, pattern = COMPUTED_KEYS[(mod, key)]
            assert group in groups
            assert any(d.group == group and d.name == pattern for d in COUNTERS), pattern
            continue
        for form in forms:
            if form == "{}" or not _declared_in(groups, form):
                missing.append(f"{mod}:{line}: {receiver}[{key}] -> {form!r} not declared")
    assert missing == [], "declare these in sipcm/counterdefs.py:\n" + "\n".join(missing)


def test_declarations_are_complete_and_unique() -> None:
    families = [d.family for d in COUNTERS if d.group not in counterdefs.HISTOGRAM_GROUPS]
    families += [h.metric for h in HISTOGRAMS]
    dup = [f for f, n in Counter(families).items() if n > 1]
    assert dup == []
    for d in COUNTERS:
        assert d.meaning.endswith("."), d
        words = set(re.findall(r"[a-z]+", d.meaning.lower()))
        assert not set(d.name.split("_")) >= words, f"{d.group}.{d.name}: meaning repeats the name"
        assert all(label in d.values or d.group == "interfaces" for label in d.labels), d
    # derived sets stay in step with their sources
    assert set(counterdefs.EVENT_ACTIONS) == set(ACTIONS) | {"stats"} == set(EVENT_NAMES)
    assert [d.name for d in COUNTERS if d.group == "kernel"] == list(COUNTER_NAMES)
    keys = {k.path for k in __import__("sipcm.config", fromlist=["key_docs"]).key_docs()}
    assert {d.limit for d in COUNTERS if d.limit} <= keys


# -- the snapshot of real runs -------------------------------------------------------------------


def _snapshot(files: list[Path], *overrides: str, workers: int = 1) -> dict:
    cfg = load_config(None, ["stats_interval=0", f"workers={workers}", *overrides])
    got: dict = {}
    replay(
        cfg,
        [str(f) for f in files],
        lambda _c: [Collect()],
        end="conclude",
        after=lambda pipe: got.update(pipe.snapshot()),
    )
    return got


def _scenario(tmp_path: Path) -> Path:
    """Two answered calls, a rejected one, a REGISTER with an unknown method and a junk packet."""
    cap = Capture()
    for i in range(2):
        basic_call(cap, Leg(f"ok-{i}@x", a_ip=f"10.0.0.{i + 1}", from_tag=f"f{i}"), T0 + i * MS)
    leg = Leg("busy@x", a_ip="10.0.0.9", from_tag="fb")
    inv = leg.req("INVITE")
    cap.a2b(leg, T0, inv.raw)
    cap.a2b(leg, T0 + 500 * MS, inv.raw)  # a retransmission: not in sip_requests
    leg.to_tag = "tb"
    cap.b2a(leg, T0 + 1200 * MS, leg.resp(inv, 486, "Busy Here"))
    other = leg.req("FOO")
    cap.a2b(leg, T0 + 2000 * MS, other.raw)
    cap.udp(T0 + 3000 * MS, ("10.0.0.9", 5060), ("10.0.0.2", 5060), b"not sip at all\r\n\r\n")
    return cap.write(tmp_path / "scenario.pcap")


def test_a_generated_scenario_raises_only_declared_counters(tmp_path: Path) -> None:
    snap = _snapshot([_scenario(tmp_path)], "event_types_blst=[msg-probe,other-timeout]")
    assert undeclared(snap) == []
    assert snap["sip_requests"] == {"ACK": 2, "BYE": 2, "INVITE": 3, "other": 1}
    assert snap["sip_responses"] == {
        "BYE/2xx": 2,
        "INVITE/1xx": 4,
        "INVITE/2xx": 2,
        "INVITE/4xx": 1,
    }
    assert snap["track"] == {"retransmissions": 1}  # the INVITE sent twice counts once above
    # PDD 200 ms (answered calls, bucket <= 0.25 s) and 1.2 s (the 486: <= 2 s); setup 2 s;
    # 10 s of talk
    assert snap["call_times"] == {
        "pdd_b1": 2,
        "pdd_b4": 1,
        "pdd_sum_ms": 1600,
        "setup_b4": 2,
        "setup_sum_ms": 4000,
        "duration_b2": 2,
        "duration_sum_ms": 20000,
    }
    assert snap["events_published"] == {
        "call-attempt": 1,
        "call-end": 2,
        "call-start": 2,
        "parse-error": 1,
    }
    assert sum(snap["events_published"].values()) == snap["events"]["published"]


@pytest.mark.needs_shared("corpus")
@pytest.mark.parametrize("workers", [1, 2])
def test_the_corpus_raises_only_declared_counters(workers: int) -> None:
    files = sorted(CORPUS.rglob("*.pcap")) + sorted(CORPUS.rglob("*.pcapng"))
    assert len(files) > 20
    # every capture with state carried over, so the state-file counters are the only groups
    # a replay cannot raise (they are covered by the source scan)
    key = "encryption_key='" + "ab" * 16 + "'"
    snap = _snapshot(files, "encrypt_ip_addresses=true", key, workers=workers)
    assert undeclared(snap) == []
    assert snap["sip"]["messages"] == 257  # the sum of tests/corpus/test_replay_counts.py
