"""``eventually()``, the one polling helper the tests share."""

from __future__ import annotations

import time

import pytest

from tests.support.polling import Gone, NotYet, eventually


def test_eventually_returns_the_first_truthy_value() -> None:
    values = iter([0, None, [], "ready"])
    assert eventually(lambda: next(values), 10, 0.01) == "ready"


def test_eventually_names_what_and_the_last_value_when_time_runs_out() -> None:
    with pytest.raises(AssertionError, match=r"the queue drained did not hold .*last value 0"):
        eventually(lambda: 0, 0.2, 0.05, what="the queue drained")


def test_eventually_reports_the_last_exception_it_waited_through() -> None:
    def missing() -> bool:
        raise NotYet("2 of 3 spans")

    with pytest.raises(AssertionError, match=r"last exception NotYet: 2 of 3 spans"):
        eventually(missing, 0.2, 0.05)


def test_gone_and_unexpected_exceptions_stop_the_wait_at_once() -> None:
    def exited() -> bool:
        raise Gone("the collector exited with 1")

    started = time.monotonic()
    with pytest.raises(Gone):
        eventually(exited, 60)
    with pytest.raises(KeyError):
        eventually(lambda: {}["x"], 60, ignoring=(OSError,))
    assert time.monotonic() - started < 30  # neither waited out its 60 s
