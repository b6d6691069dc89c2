"""Alignment of two traces (dashboard/trace_compare.py), table-driven, no store."""

from __future__ import annotations

import pytest

from dashboard.trace_compare import compare
from tests.support import trace_generator as gen
from tests.support.compare_traffic import CHECKOUT, T0, build, edit

MS = 1_000_000


def label(row) -> str:
    return f"{'  ' * row.depth}{row.service}:{row.name}#{row.position}"


def spans(tree: tuple, seed: int) -> list:
    return gen.to_spans(build(tree, seed))


CASES = [
    pytest.param(CHECKOUT, [], [], id="identical"),
    pytest.param(
        edit(CHECKOUT, (0,), add=("db", "SELECT", 18, 2, [])),
        [],
        ["    db:SELECT#2"],
        id="extra-repeated-call-in-b",
    ),
    pytest.param(
        edit(CHECKOUT, (1,), drop=True),
        ["  payments:Charge#0", "    db:SELECT#0"],
        [],
        id="missing-subtree-in-b",
    ),
    pytest.param(
        edit(CHECKOUT, (), add=("shipping", "Quote", 92, 5, [])),
        [],
        ["  shipping:Quote#0"],
        id="new-downstream-call",
    ),
]


@pytest.mark.parametrize(("b_tree", "only_a", "only_b"), CASES)
def test_presence(b_tree, only_a, only_b):
    result = compare(spans(CHECKOUT, 1), spans(b_tree, 2))
    assert [label(r) for r in result.only_a] == only_a
    assert [label(r) for r in result.only_b] == only_b
    matched = [r for r in result.rows if r.presence == "both"]
    assert len(matched) + len(only_a) == 6


def test_rows_are_the_merged_tree_in_start_order():
    b = edit(CHECKOUT, (0,), add=("db", "SELECT", 18, 2, []))
    result = compare(spans(CHECKOUT, 1), spans(b, 2))
    assert [label(r) for r in result.rows] == [
        "frontend:GET /#0",
        "  cart:GetCart#0",
        "    db:SELECT#0",
        "    db:SELECT#1",
        "    db:SELECT#2",
        "  payments:Charge#0",
        "    db:SELECT#0",
    ]


@pytest.mark.parametrize(
    ("path", "new_ms", "slowest"),
    [
        ((1, 0), 50, "    db:SELECT#0"),  # the payments query
        ((0, 1), 13, "    db:SELECT#1"),  # the second cart query, not the first
        ((1,), 90, "  payments:Charge#0"),  # its own time, children unchanged
    ],
)
def test_slower_node_ranked_first(path, new_ms, slowest):
    b_tree = edit(CHECKOUT, path, dur=new_ms)
    if path == (1,):
        b_tree = edit(b_tree, (), dur=130)
    result = compare(spans(CHECKOUT, 1), spans(b_tree, 2))
    first = result.slower()[0]
    assert label(first) == slowest
    assert first.delta_ns == first.b.duration_ns - first.a.duration_ns > 0
    assert first.delta_self_ns > 0
    if path == (1, 0):
        assert first.delta_ns == 40 * MS
        parent = next(r for r in result.rows if r.name == "Charge")
        assert parent.delta_ns == 0  # same duration, less self time
        assert parent.delta_self_ns == -40 * MS


def test_self_time_and_durations():
    result = compare(spans(CHECKOUT, 1), spans(CHECKOUT, 2))
    root = result.rows[0]
    assert root.a.duration_ns == 100 * MS
    assert root.a.self_ns == (100 - 20 - 60) * MS
    assert root.delta_ns == 0 and root.delta_self_ns == 0
    assert result.duration_a_ns == result.duration_b_ns == 100 * MS
    assert result.slower() == []


def test_critical_path_of_each_side():
    # In B the cart call ends after payments: the critical path moves to it.
    b_tree = edit(edit(CHECKOUT, (0,), dur=95), (), dur=100)
    result = compare(spans(CHECKOUT, 1), spans(b_tree, 2))
    path_a = [label(r).strip() for r in result.critical_path("a")]
    path_b = [label(r).strip() for r in result.critical_path("b")]
    # A runs cart then payments one after the other: both are on its path.
    assert path_a == [label(r).strip() for r in result.rows]
    assert path_b[:2] == ["frontend:GET /#0", "cart:GetCart#0"]
    assert "payments:Charge#0" not in path_b


def test_orphans_align_under_the_root():
    a = build(CHECKOUT, 1)
    b = build(CHECKOUT, 2)
    for trace in (a, b):
        charge = next(s for s in trace if s.name == "Charge")
        charge.parent_span_id = "00000000000000ff"  # parent never arrived
    result = compare(gen.to_spans(a), gen.to_spans(b))
    assert result.only_a == result.only_b == []
    assert any(r.name == "Charge" and r.depth == 1 for r in result.rows)


def test_empty_and_one_sided():
    result = compare([], spans(CHECKOUT, 2))
    assert len(result.only_b) == 6 and result.only_a == []
    assert compare([], []).rows == []


def test_deep_chain_does_not_recurse():
    a = gen.to_spans(gen.deep(gen.Ids(3), 5000, start_ns=T0))
    b = gen.to_spans(gen.deep(gen.Ids(4), 4000, start_ns=T0))
    result = compare(a, b)
    assert len(result.rows) == 5000
    assert len(result.only_a) == 1000
    assert result.rows[-1].depth == 4999


@pytest.mark.parametrize(
    ("a_ms", "b_ms", "notable"),
    [(10, 10, False), (10, 12, False), (10, 13, True), (10, 7, True), (0.1, 0.5, False)],
)
def test_notable_changes(a_ms, b_ms, notable):
    leaf = ("db", "SELECT", 1, a_ms, [])
    a = gen.to_spans(build(("api", "GET", 0, 50, [leaf]), 1))
    b = gen.to_spans(build(("api", "GET", 0, 50, [(*leaf[:3], b_ms, [])]), 2))
    result = compare(a, b)
    assert result.rows[1].notable() is notable
    one_sided = compare(a, gen.to_spans(build(("api", "GET", 0, 50, []), 2)))
    assert one_sided.rows[1].notable()
