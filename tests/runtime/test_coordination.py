"""Coordinator URLs, table-driven (the elections themselves: test_leader_election.py)."""

from __future__ import annotations

import pytest

from runtime.coordination import (
    CoordinatorError,
    CoordinatorURL,
    SoleLeader,
    parse_coordinator_url,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("zk://zk:2181/sidetrace", CoordinatorURL("zk:2181", "/sidetrace")),
        ("zk://zk/sidetrace", CoordinatorURL("zk:2181", "/sidetrace")),
        ("zk://zk:2181", CoordinatorURL("zk:2181", "/sidetrace")),
        ("zk://a:1,b:2,c/x/y/", CoordinatorURL("a:1,b:2,c:2181", "/x/y")),
        ("zk://k:9181/st?session_timeout=4", CoordinatorURL("k:9181", "/st", 4.0)),
    ],
)
def test_parse(url: str, expected: CoordinatorURL) -> None:
    assert parse_coordinator_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://zk:2181/x", "expected zk://"),
        ("zk:///x", "expected zk://"),
        ("zk://zk:port/x", "bad host"),
        ("zk://zk:2181//x", "bad path"),
        ("zk://zk:2181/x?session_timeout=0.5", "1 to 600 seconds"),
        ("zk://zk:2181/x?session_timeout=soon", "1 to 600 seconds"),
    ],
)
def test_bad_urls_are_explained(url: str, message: str) -> None:
    with pytest.raises(CoordinatorError, match=message):
        parse_coordinator_url(url)


def test_without_a_coordinator_the_process_always_leads() -> None:
    leader = SoleLeader("retention")
    assert leader.check() and leader.check(confirm=True) and leader.term == 1
