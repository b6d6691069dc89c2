"""Sidecar parts without sockets: resource, routes, RED metrics, the telemetry queue."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sidecar.prometheus_metrics import SidecarCollector, exposition, registry_for
from sidecar.red_metrics import ProxyCounters, RedMetrics, status_class
from sidecar.resource import RESOURCE_ENV, resource_attributes
from sidecar.routes import RouteMatcher
from sidecar.telemetry import Telemetry
from sidecar.telemetry_record import HTTP, SERVER, Record


def test_resource_from_downward_api_environment_and_flags() -> None:
    environ = {
        "SIDETRACE_SERVICE_NAME": "checkout",
        "SIDETRACE_POD_NAME": "checkout-7d9f-abcde",
        "SIDETRACE_POD_NAMESPACE": "shop",
        "SIDETRACE_NODE_NAME": "node-3",
    }
    attrs = resource_attributes({"service.version": "1.4.2"}, environ)
    assert attrs["service.name"] == "checkout"
    assert attrs["service.version"] == "1.4.2"
    assert attrs["k8s.pod.name"] == "checkout-7d9f-abcde"
    assert attrs["k8s.namespace.name"] == "shop"
    assert attrs["k8s.node.name"] == "node-3"
    assert resource_attributes({"service.name": "flag"}, environ)["service.name"] == "flag"
    assert resource_attributes({}, {})["service.name"] == "unknown_service"


@pytest.mark.parametrize(
    ("overrides", "environ", "expected"),
    [
        ({}, {"OTEL_SERVICE_NAME": "otel-svc"}, {"service.name": "otel-svc"}),
        # OTEL_SERVICE_NAME beats service.name in OTEL_RESOURCE_ATTRIBUTES
        ({}, {"OTEL_SERVICE_NAME": "a", "OTEL_RESOURCE_ATTRIBUTES": "service.name=b"},
         {"service.name": "a"}),
        ({}, {"OTEL_RESOURCE_ATTRIBUTES": "service.name=b,deployment.environment=prod%20eu"},
         {"service.name": "b", "deployment.environment": "prod eu"}),
        # the sidecar's own flags and variables beat the SDK variables
        ({"service.name": "flag"}, {"OTEL_SERVICE_NAME": "a"}, {"service.name": "flag"}),
        ({}, {"SIDETRACE_SERVICE_NAME": "env", "OTEL_SERVICE_NAME": "a"}, {"service.name": "env"}),
        ({}, {"SIDETRACE_POD_NAME": "p", "OTEL_RESOURCE_ATTRIBUTES": "k8s.pod.name=q,x=1"},
         {"k8s.pod.name": "p", "x": "1"}),
        # a malformed pair (or bad percent-encoding) discards the whole variable
        ({}, {"OTEL_RESOURCE_ATTRIBUTES": "x=1,broken"}, {"service.name": "unknown_service"}),
        ({}, {"OTEL_RESOURCE_ATTRIBUTES": "x=%ff"}, {"service.name": "unknown_service"}),
        ({}, {"OTEL_RESOURCE_ATTRIBUTES": "x=1,,y=2"}, {"x": "1", "y": "2"}),
    ],
)  # fmt: skip
def test_resource_honours_the_opentelemetry_variables(
    overrides: dict, environ: dict, expected: dict
) -> None:
    attrs = resource_attributes(overrides, environ)
    assert {k: attrs.get(k) for k in expected} == expected
    if "x=1,broken" in environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        assert "x" not in attrs
    assert (attrs["telemetry.sdk.name"], attrs["telemetry.sdk.language"]) == ("sidetrace", "python")
    assert attrs["telemetry.sdk.version"]


def test_resource_env_table_names_the_downward_api_fields() -> None:
    fields = {key: field for key, (_env, field) in RESOURCE_ENV.items()}
    assert fields["k8s.pod.name"] == "metadata.name"
    assert fields["k8s.namespace.name"] == "metadata.namespace"
    assert fields["k8s.node.name"] == "spec.nodeName"
    assert all(env.startswith("SIDETRACE_") for env, _ in RESOURCE_ENV.values())


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/users/42", "/users/{uid}"),  # a configured template
        ("/users/42/orders/7", "/users/{uid}/orders/{oid}"),
        ("/users/", ""),  # a template variable needs a segment
        # No template matches: no http.route at all, nothing guessed from the path
        ("/orders/123/items", ""),
        ("/orders/3fa85f64-5717-4562-b3fc-2c963f66afa6", ""),
        ("/health", ""),
        ("/", ""),
    ],
)
def test_route_matcher_uses_configured_templates_only(path: str, expected: str) -> None:
    matcher = RouteMatcher(["/users/{uid}", "/users/{uid}/orders/{oid}"])
    assert matcher.route(path) == expected
    assert matcher.route(path) == expected  # and from its cache


def test_route_matcher_without_templates_gives_no_route() -> None:
    assert RouteMatcher().route("/orders/123") == ""


@pytest.mark.parametrize(
    ("status", "klass"), [(200, "2xx"), (404, "4xx"), (503, "5xx"), (0, "error")]
)
def test_status_class(status: int, klass: str) -> None:
    assert status_class(status) == klass


def test_red_metrics_prometheus_histogram_is_cumulative() -> None:
    red = RedMetrics()
    key = ("inbound", "GET", "/a", "2xx", 'pe"er')
    red.observe([(key, 0.0004), (key, 0.003), (key, 20.0)])
    text = exposition(registry_for(SidecarCollector(red, ProxyCounters(), dict)))
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    labels = {"direction": "inbound", "method": "GET", "route": "/a", "status_class": "2xx"}
    labels["peer"] = 'pe"er'

    def value(name: str, **extra: str) -> float:
        return samples[(name, frozenset({**labels, **extra}.items()))]

    assert value("sidetrace_requests_total") == 3
    for le, count in (("0.0005", 1), ("0.005", 2), ("10.0", 2), ("+Inf", 3)):
        assert value("sidetrace_request_duration_seconds_bucket", le=le) == count
    assert value("sidetrace_request_duration_seconds_count") == 3
    semconv = {
        "http_request_method": "GET",
        "http_route": "/a",
        "http_response_status_class": "2xx",
        "network_peer_address": 'pe"er',
    }
    key = ("http_server_request_duration_seconds_count", frozenset(semconv.items()))
    assert samples[key] == 3


def test_full_queue_drops_and_counts_only_sampled_spans() -> None:
    counters = ProxyCounters()
    telemetry = Telemetry({"service.name": "t"}, counters, RouteMatcher(), max_queue=1)
    rec = Record(HTTP, SERVER, "a" * 32, "b" * 16, "", False, 1, 2, "GET", "/", 200,
                 "h", 80, "", 0, "1.1", "", "", "", 0, 0)  # fmt: skip
    telemetry.submit(rec)  # queued, never blocks
    telemetry.submit(rec)  # queue full: a sampled span is lost
    telemetry.submit(rec._replace(trace_id=""))  # unsampled: a record, not a span
    telemetry.submit((lambda: rec,), sampled=False)
    assert counters.records_dropped_total == 3
    assert counters.spans_dropped_total == 1
