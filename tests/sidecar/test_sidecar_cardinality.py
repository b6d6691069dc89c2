"""Every label a request can influence is bounded: unit rules, then a real sidecar under
100,000 distinct paths, methods and forged peer headers."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from runtime.loopback_ports import free_port
from sidecar.cardinality import (
    MAX_PEERS,
    OTHER,
    LabelLimiter,
    PeerHints,
    mesh_key,
    peer_header_value,
    peer_limiters,
    peer_tag,
)
from sidecar.otlp_encode import encode_red_metrics
from sidecar.red_metrics import MAX_SERIES, OVERFLOW_KEY, RedMetrics
from tests.support.polling import eventually
from tests.support.sidecar_harness import CannedHttpServer, OtlpSink, build_app
from tests.support.sidecar_process import SidecarProcess
from tests.support.threaded_server import ThreadedUvicorn


def test_red_metrics_fold_new_keys_into_one_overflow_series() -> None:
    red = RedMetrics(max_series=3)
    keys = [("inbound", "GET", "", "2xx", f"p{i}") for i in range(10)]
    red.observe([(k, 0.001) for k in keys] + [(keys[0], 0.002)])
    snapshot = red.snapshot()
    assert set(snapshot) == {*keys[:3], OVERFLOW_KEY}
    assert snapshot[OVERFLOW_KEY][0] == 7 and red.overflowed == 7
    assert snapshot[keys[0]][0] == 2  # known series keep counting
    request = ExportMetricsServiceRequest.FromString(
        encode_red_metrics({"service.name": "s"}, snapshot, 1, 2)
    )
    points = request.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points
    overflow = [p for p in points if any(a.key == "otel.metric.overflow" for a in p.attributes)]
    assert len(overflow) == 1 and overflow[0].as_int == 7
    assert [(a.key, a.value.bool_value) for a in overflow[0].attributes] == [
        ("otel.metric.overflow", True)
    ]


@pytest.mark.parametrize(
    ("values", "expected", "overflowed"),
    [
        (["svc-a", "svc-b", "svc-a"], ["svc-a", "svc-b", "svc-a"], 0),
        (["a", "b", "c", "a", "d"], ["a", "b", OTHER, "a", OTHER], 2),  # past the limit
        (["bad name", "x" * 300, "-lead", "ok"], [OTHER, OTHER, OTHER, "ok"], 3),  # malformed
        (["", ""], ["", ""], 0),  # no peer header: no peer
    ],
)
def test_label_limiter(values: list[str], expected: list[str], overflowed: int) -> None:
    limiter = LabelLimiter(limit=2)
    assert [limiter(v) for v in values] == expected
    assert limiter.overflowed == overflowed


def test_outbound_peer_limiter_takes_addresses() -> None:
    _inbound, outbound = peer_limiters(limit=2)
    assert outbound("10.96.0.12:8080") == "10.96.0.12:8080"
    assert outbound("[fd00::1]:80") == "[fd00::1]:80"
    assert outbound("10.0.0.1:1") == OTHER


KEY = b"Bearer mesh-token"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (KEY, f"svc-a;{peer_tag(KEY, 'svc-a')}", "svc-a"),  # tagged by a sidecar of the mesh
        (KEY, "svc-a", OTHER),  # a bare name: any client could have sent it
        (KEY, f"svc-b;{peer_tag(KEY, 'svc-a')}", OTHER),  # another name's tag
        (KEY, f"svc-a;{peer_tag(b'other', 'svc-a')}", OTHER),  # another mesh's key
        (KEY, "", ""),
        (None, "svc-a", "svc-a"),  # no key: an unverified hint, still bounded
        (None, f"svc-a;{peer_tag(KEY, 'svc-a')}", "svc-a"),
        (None, "bad name", OTHER),
    ],
)
def test_peer_hints(key: bytes | None, value: str, expected: str) -> None:
    assert PeerHints(key)(value) == expected


def test_peer_header_value_and_mesh_key() -> None:
    assert peer_header_value("svc-a", None) == "svc-a"
    assert PeerHints(KEY)(peer_header_value("svc-a", KEY)) == "svc-a"
    assert mesh_key([("x-other", "1"), ("Authorization", "Bearer t")]) == b"Bearer t"
    assert mesh_key([]) is None


def _peer_counts(sidecar: SidecarProcess) -> dict[str, float]:
    status, text = sidecar.get("/metrics")
    assert status == 200
    counts: dict[str, float] = {}
    for peer, value in re.findall(
        r'^sidetrace_requests_total\{direction="inbound"[^}]*peer="([^"]*)"[^}]*\} (\S+)$',
        text,
        re.M,
    ):
        counts[peer] = counts.get(peer, 0) + float(value)
    return counts


def test_only_sidecars_of_the_mesh_name_the_peer(tmp_path: Path) -> None:
    """Sidecars holding the same collector token tag their peer header; a client forging
    the header, bare or with a wrong tag, is counted as _OTHER."""
    import http.client

    token = tmp_path / "token"
    token.write_text("mesh-token\n")
    sink = OtlpSink().start()
    common = ("--collector", f"127.0.0.1:{sink.port}", "--collector-token-file", str(token))
    port_a, port_b = free_port(), free_port()
    sidecar_a = SidecarProcess(port_a, "--service-name", "svc-a", *common)
    sidecar_b = SidecarProcess(port_b, "--service-name", "svc-b", *common)
    app_a = ThreadedUvicorn(build_app(f"http://127.0.0.1:{sidecar_a.outbound}"), port=port_a)
    app_b = ThreadedUvicorn(build_app(), port=port_b)
    started = [app_a.start(), app_b.start(), sidecar_a.start(), sidecar_b.start()]
    try:
        conn = http.client.HTTPConnection("127.0.0.1", sidecar_a.inbound, timeout=20)
        conn.request("GET", f"/call?target=http://127.0.0.1:{sidecar_b.inbound}/")
        assert conn.getresponse().read() and True
        forged = ["svc-a", f"svc-a;{peer_tag(b'guess', 'svc-a')}"]
        for value in forged:
            direct = http.client.HTTPConnection("127.0.0.1", sidecar_b.inbound, timeout=20)
            direct.request("GET", "/", headers={"x-sidetrace-peer": value})
            assert direct.getresponse().status == 200
            direct.close()
        eventually(lambda: sum(_peer_counts(sidecar_b).values()) >= 3, 60, what="three requests")
        assert _peer_counts(sidecar_b) == {"svc-a": 1, OTHER: 2}
    finally:
        for part in reversed(started):
            part.stop()
        sink.stop()


WRK_SCRIPT = """
local methods = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PURGE", "PROPFIND",
                 "MKCOL", "LOCK", "UNLOCK", "COPY", "MOVE", "SEARCH", "REPORT", "MKCALENDAR"}
local run, counter = "0", 0
function init(args) run = args[1] .. "-" .. tostring(math.random(1, 1000000000)) end
function request()
  counter = counter + 1
  local path = "/scan/" .. run .. "/" .. counter .. "?q=" .. counter
  local headers = {["x-sidetrace-peer"] = "forged-" .. run .. "-" .. counter}
  return wrk.format(methods[counter % #methods + 1], path, headers)
end
"""


def _series(sidecar: SidecarProcess) -> int:
    status, text = sidecar.get("/metrics")
    assert status == 200
    return len(re.findall(r"^sidetrace_requests_total\{", text, re.M))


def _requests(sidecar: SidecarProcess) -> float:
    status, text = sidecar.get("/metrics")
    return sum(float(v) for v in re.findall(r"^sidetrace_requests_total\{.*\} (\S+)$", text, re.M))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk (scripts/test.sh installs it)")
def test_distinct_paths_methods_and_peers_keep_memory_and_series_bounded(tmp_path: Path) -> None:
    upstream = CannedHttpServer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    sink = OtlpSink().start()
    script = tmp_path / "scan.lua"
    script.write_text(WRK_SCRIPT)
    # Spans are encoded (a collector is set) but none sampled: the test is about labels.
    sidecar = SidecarProcess(
        upstream.port, "--collector", f"127.0.0.1:{sink.port}", "--sampling-ratio", "0"
    ).start()
    rss: dict[int, float] = {}
    try:
        runs = 0
        deadline = time.monotonic() + 600
        while (sent := _requests(sidecar)) < 100_000:
            assert time.monotonic() < deadline, f"only {sent} requests counted"
            if sent >= 30_000 and 30_000 not in rss:
                rss[30_000] = sidecar.rss_mb()
            runs += 1
            subprocess.run(
                ["wrk", "-t1", "-c8", "-d4s", "-s", str(script),
                 f"http://127.0.0.1:{sidecar.inbound}/", "--", str(runs)],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
        time.sleep(1)  # the last records through the telemetry thread
        rss[100_000] = sidecar.rss_mb()
        series = _series(sidecar)
        status, text = sidecar.get("/metrics")
    finally:
        sidecar.stop()
        sink.stop()
        upstream.stop()

    def counter(name: str) -> float:
        return float(re.search(rf"^sidetrace_sidecar_{name} (\S+)$", text, re.M).group(1))

    # Methods: the standard ones by name, the rest as _OTHER; no path became a label;
    # forged peers past the first MAX_PEERS folded into _OTHER.
    methods = set(re.findall(r'^sidetrace_requests_total\{[^}]*method="([^"]*)"', text, re.M))
    assert methods <= {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "_OTHER"}
    assert "/scan/" not in text
    assert counter("peer_label_overflow_total") > 0
    peers = set(re.findall(r'^sidetrace_requests_total\{[^}]*peer="([^"]*)"', text, re.M))
    assert len(peers) <= MAX_PEERS + 1 and OTHER in peers
    assert series <= len(methods) * (MAX_PEERS + 1) <= MAX_SERIES
    # Memory stops growing once caches are full: the last 70,000 requests add little.
    assert rss[100_000] - rss.get(30_000, rss[100_000]) < 16, rss
    print(f"series={series} rss_mb={rss}")
