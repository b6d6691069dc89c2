"""Bad input, limits, auth, TLS and back-pressure, over real gRPC and HTTP connections."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import ipaddress
import json
import ssl
import time

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf.json_format import MessageToDict
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collector.grpc_receiver import ReadDeadlines
from collector.writer import WriterConfig
from tests.support.collector_helpers import (
    count_spans,
    fresh_native_url,
    grpc_export,
    running_collector,
    span_ids,
    span_request,
)
from tests.support.polling import eventually
from tracestore.otlp_columns import Limits
from tracestore.store import open_store

TOKEN = "s3cret-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def store(clickhouse_server):
    store = open_store(fresh_native_url(clickhouse_server))
    return store


@pytest.fixture(scope="module")
def collector(store, tmp_path_factory):
    with running_collector(
        store,
        tmp_path_factory.mktemp("spool"),
        auth_token=TOKEN,
        max_message_bytes=256 * 1024,
        limits=Limits(max_attribute_length=16, timestamp_policy="reject"),
    ) as collector:
        yield collector


@pytest.fixture
def export(collector):
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc.port}") as channel:
        yield grpc_export(channel)


@pytest.fixture
def http(collector):
    with httpx.Client(base_url=f"http://127.0.0.1:{collector.config.http_port}") as client:
        yield client


def _arrived(store, ids: list[str]) -> bool:
    return count_spans(store, "span_id IN %(ids)s", {"ids": tuple(ids)}) == len(ids)


def test_malformed_protobuf_is_invalid_argument(export):
    with pytest.raises(grpc.RpcError) as info:
        export(b"\x0a\xff\xff\xff\xff\x0f", metadata=AUTH, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot decode" in info.value.details()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"\x0a\xff\xff\xff\xff\x0f", "application/x-protobuf"), (b"{nope", "application/json")],
)
def test_malformed_http_body_is_400_with_a_status(http, body, content_type):
    response = http.post(
        "/v1/traces", content=body, headers={**HEADERS, "Content-Type": content_type}
    )
    assert response.status_code == 400
    if content_type == "application/json":
        assert response.json()["message"]
    else:
        assert status_pb2.Status.FromString(response.content).message


def test_unsupported_content_type_is_415(http):
    response = http.post(
        "/v1/traces", content=b"x", headers={**HEADERS, "Content-Type": "text/plain"}
    )
    assert response.status_code == 415


def _with_bad_ids():
    request = span_request(3)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = b"\x00" * 16
    spans[1].span_id = b"\x01\x02"
    return request, [spans[2].span_id.hex()]


def test_grpc_partial_success_for_invalid_ids(export, store):
    request, good = _with_bad_ids()
    raw = export(request.SerializeToString(), metadata=AUTH, timeout=10)
    response = ExportTraceServiceResponse.FromString(raw)
    assert response.partial_success.rejected_spans == 2
    assert "invalid trace or span id" in response.partial_success.error_message
    eventually(lambda: _arrived(store, good))


def test_http_json_partial_success_for_invalid_ids(http, store):
    request, good = _with_bad_ids()
    body = MessageToDict(request)
    for span in body["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for key in ("traceId", "spanId"):  # protobuf JSON gives base64; OTLP/JSON wants hex
            span[key] = base64.b64decode(span[key]).hex()
    body["resourceSpans"][0]["scopeSpans"][0]["spans"][2]["spanId"] = good[0]
    response = http.post("/v1/traces", json=body, headers=HEADERS)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 2 and partial["errorMessage"]
    eventually(lambda: _arrived(store, good))


def test_http_protobuf_and_gzip_are_accepted(http, store):
    request = span_request(4)
    response = http.post(
        "/v1/traces",
        content=gzip.compress(request.SerializeToString()),
        headers={**HEADERS, **PROTOBUF, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert (
        ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans == 0
    )
    eventually(lambda: _arrived(store, span_ids(request)))


def test_grpc_gzip_is_accepted(collector, store):
    request = span_request(4)
    with grpc.insecure_channel(
        f"127.0.0.1:{collector.grpc.port}", compression=grpc.Compression.Gzip
    ) as channel:
        grpc_export(channel)(request.SerializeToString(), metadata=AUTH, timeout=10)
    eventually(lambda: _arrived(store, span_ids(request)))


def test_oversize_messages_are_refused(export, http):
    big = span_request(1, attributes={"blob": "x" * 300_000}).SerializeToString()
    with pytest.raises(grpc.RpcError) as info:
        export(big, metadata=AUTH, timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert http.post("/v1/traces", content=big, headers={**HEADERS, **PROTOBUF}).status_code == 413
    bomb = gzip.compress(big)  # small on the wire, over the limit once inflated
    response = http.post(
        "/v1/traces", content=bomb, headers={**HEADERS, **PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 413


def test_long_attribute_values_are_truncated(export, store):
    request = span_request(1, attributes={"long": "abcdefghij" * 10, "short": "ok"})
    export(request.SerializeToString(), metadata=AUTH, timeout=10)
    (span_id,) = span_ids(request)
    rows = eventually(
        lambda: store.query("SELECT attr_values FROM spans WHERE span_id = %(s)s", {"s": span_id})
    )
    assert list(rows[0][0]) == ["abcdefghij" * 1 + "abcdef", "ok"]


def test_far_timestamps_are_rejected_with_partial_success(export):
    request = span_request(2)
    request.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano = 10**18  # 2001
    raw = export(request.SerializeToString(), metadata=AUTH, timeout=10)
    partial = ExportTraceServiceResponse.FromString(raw).partial_success
    assert partial.rejected_spans == 1 and "window" in partial.error_message


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer wrong"),)])
def test_grpc_needs_the_bearer_token(export, metadata):
    with pytest.raises(grpc.RpcError) as info:
        export(span_request(1).SerializeToString(), metadata=metadata, timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_http_needs_the_bearer_token(http, headers):
    body = span_request(1).SerializeToString()
    response = http.post("/v1/traces", content=body, headers={**headers, **PROTOBUF})
    assert response.status_code == 401


def test_admin_endpoints_report_health_and_counters(collector, export):
    export(span_request(2).SerializeToString(), metadata=AUTH, timeout=10)
    base = f"http://127.0.0.1:{collector.config.admin_port}"
    assert httpx.get(f"{base}/healthz").status_code == 200
    assert httpx.get(f"{base}/readyz").status_code == 200
    text = eventually(
        lambda: (
            (t := httpx.get(f"{base}/metrics").text)
            and "sidetrace_collector_written_spans_total 0.0\n" not in t
            and t
        )
    )
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["sidetrace_collector_received_spans_total"] >= 2
    assert values["sidetrace_collector_written_spans_total"] >= 2
    assert values["sidetrace_collector_insert_duration_seconds_count"] >= 1
    assert "sidetrace_collector_spool_pending_bytes" in values
    assert "sidetrace_collector_insert_retries_total" in values
    assert values['sidetrace_collector_refused_requests_total{reason="unauthenticated"}'] >= 0


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_on_both_receivers(store, tmp_path):
    cert, key = _self_signed(tmp_path)
    with running_collector(
        store, tmp_path / "spool", tls_cert=str(cert), tls_key=str(key), admin_port=None
    ) as collector:
        request = span_request(2)
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(f"127.0.0.1:{collector.grpc.port}", credentials) as channel:
            grpc_export(channel)(request.SerializeToString(), timeout=10)
        http_request = span_request(2)
        url = f"https://127.0.0.1:{collector.config.http_port}/v1/traces"
        response = httpx.post(
            url,
            content=http_request.SerializeToString(),
            headers=PROTOBUF,
            verify=ssl.create_default_context(cafile=str(cert)),
        )
        assert response.status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.post(url.replace("https", "http"), content=b"", headers=PROTOBUF, timeout=5)
        eventually(lambda: _arrived(store, span_ids(request) + span_ids(http_request)))


def test_full_spool_answers_quickly_and_keeps_what_it_acknowledged(store, tmp_path):
    acknowledged: list[str] = []
    with running_collector(
        store,
        tmp_path / "spool",
        spool_max_bytes=200_000,
        writer=WriterConfig(batch_rows=10**9, batch_seconds=600),  # the writer holds off
    ) as collector:
        with grpc.insecure_channel(f"127.0.0.1:{collector.grpc.port}") as channel:
            export = grpc_export(channel)
            for _ in range(100):
                request = span_request(50, attributes={"pad": "p" * 200})
                began = time.monotonic()
                try:
                    export(request.SerializeToString(), timeout=10)
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    assert "spool is full" in exc.details()
                    assert time.monotonic() - began < 5
                    break
                acknowledged += span_ids(request)
            else:
                pytest.fail("the spool never filled")
        response = httpx.post(
            f"http://127.0.0.1:{collector.config.http_port}/v1/traces",
            content=span_request(50, attributes={"pad": "p" * 200}).SerializeToString(),
            headers=PROTOBUF,
            timeout=10,
        )
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        readyz = httpx.get(f"http://127.0.0.1:{collector.config.admin_port}/readyz")
        assert readyz.status_code == 503 and "spool full" in readyz.text
        assert acknowledged
    # stop() flushed the spool: everything acknowledged is in ClickHouse.
    assert _arrived(store, acknowledged)
    assert json.loads((tmp_path / "spool" / "state.json").read_text())["inflight"] is None


def test_read_deadlines_end_only_the_calls_still_waiting():
    """The gRPC receiver's watcher ends a call whose message has not come in time, with
    the reason, and leaves alone a call whose message came."""
    ended = []
    deadlines = ReadDeadlines(0.2, lambda context, reason: ended.append((context, reason)))
    try:
        waiting, answered = object(), object()
        deadlines.watch(waiting)
        deadlines.watch(answered)
        assert deadlines.arrived(answered)
        eventually(lambda: ended == [(waiting, "no request message within 0.2s")])
        assert not deadlines.arrived(waiting)  # its handler then refuses it as timed out
    finally:
        deadlines.stop()
