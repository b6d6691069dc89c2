"""The alert state machine: pending, firing, resolved with for and keep_firing_for."""

from __future__ import annotations

import pytest

from dashboard.alert_rules import (
    FIRING,
    INACTIVE,
    PENDING,
    RESOLVED,
    Alert,
    AlertBook,
    AlertState,
    fingerprint,
    step,
)


def run(conditions: list[bool], for_s: float, keep_s: float) -> list[str]:
    """States after each evaluation, one per second starting at t=0."""
    state, out = AlertState(), []
    for t, condition in enumerate(conditions):
        state = step(state, condition, float(t), for_s, keep_s)
        out.append(state.state)
    return out


@pytest.mark.parametrize(
    ("conditions", "for_s", "keep_s", "expected"),
    [
        # for 0: firing at once, resolved at once
        ([True, True, False], 0, 0, [FIRING, FIRING, RESOLVED]),
        # for 2: pending until the condition has held 2 s
        ([True, True, True, True], 2, 0, [PENDING, PENDING, FIRING, FIRING]),
        # a blip shorter than for never fires and sends nothing
        ([True, False, True, False], 2, 0, [PENDING, INACTIVE, PENDING, INACTIVE]),
        # keep_firing_for 2: still firing 1 s after recovery, resolved at 2 s
        ([True, False, False, False], 0, 2, [FIRING, FIRING, RESOLVED, RESOLVED]),
        # flapping inside keep_firing_for stays one firing episode
        ([True, False, True, False, False, False], 0, 2,
         [FIRING, FIRING, FIRING, FIRING, RESOLVED, RESOLVED]),
        # resolved, then true again: a new episode starts pending
        ([True, False, True, True], 1, 0, [PENDING, INACTIVE, PENDING, FIRING]),
        ([True, True, False, True, True], 1, 0, [PENDING, FIRING, RESOLVED, PENDING, FIRING]),
        ([False, False], 0, 0, [INACTIVE, INACTIVE]),
    ],
)  # fmt: skip
def test_state_table(
    conditions: list[bool], for_s: float, keep_s: float, expected: list[str]
) -> None:
    assert run(conditions, for_s, keep_s) == expected


def test_starts_at_is_when_the_condition_became_true() -> None:
    state = step(AlertState(), True, 10.0, 5, 0)
    state = step(state, True, 15.0, 5, 0)
    assert state == AlertState(FIRING, 10.0, 15.0, None, fired_at=15.0)  # fired_at: startsAt
    assert step(state, True, 25.0, 5, 0).fired_at == 15.0  # kept while it fires
    state = step(state, False, 20.0, 5, 0)
    assert state == AlertState(RESOLVED, 10.0, 15.0, 20.0, fired_at=15.0)
    restored = AlertState(FIRING, 10.0, 15.0)  # from history, which keeps only activeAt
    assert step(restored, True, 40.0, 5, 0).fired_at == 15.0  # active_at + for
    state = step(state, True, 30.0, 5, 0)
    assert state == AlertState(PENDING, 30.0, 30.0, None)


def test_fingerprint_is_alertmanagers() -> None:
    # prometheus/common model.LabelSet.Fingerprint (FNV-1a 64, 0xff separators)
    assert int(fingerprint({"testing": "tester"}), 16) == 5407378286431217024
    assert fingerprint({}) == f"{14695981039346656037:016x}"
    assert fingerprint({"a": "b", "c": "d"}) == fingerprint({"c": "d", "a": "b"})


def alert(name: str, for_s: float = 0) -> Alert:
    return Alert({"alertname": name, "severity": "page"}, {}, for_s, 0, (), "slo")


def test_book_reports_transitions_and_resolves_removed_rules() -> None:
    book = AlertBook()
    a, b = alert("a"), alert("b", for_s=10)
    changes = book.update([(a, True, "1"), (b, True, "2")], 0.0)
    assert [(c.alert.name, c.before, c.after.state) for c in changes] == [
        ("a", INACTIVE, FIRING),
        ("b", INACTIVE, PENDING),
    ]
    assert book.update([(a, True, "1"), (b, True, "2")], 1.0) == []  # no change, no record
    changes = book.update([(b, True, "2")], 2.0)  # a's rule was removed while firing
    assert [(c.alert.name, c.before, c.after.state) for c in changes] == [("a", FIRING, RESOLVED)]
    assert [x.name for x, _, _ in book.current()] == ["b"]
