"""Hostile input against a real dashboard over real HTTP, on the real ClickHouse server.

Every route of the Starlette app (read from its route table, so new routes are
probed without editing this file) gets hostile values in every query parameter
the dashboard reads, in its path parameters and in its body; each answer must
be a clear 4xx (never a 500, never a storage error), and legitimate requests
still work afterwards. Cross-site writes get 403, JSON APIs refuse other media
types with 415, bodies are bounded (413 before a large body is read), and a
pathological silence regex neither freezes the process nor stops evaluation.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
from starlette.routing import Mount, Route

from dashboard.app import create_app
from dashboard.body_limit import MAX_BODY_BYTES
from dashboard.context import DashboardContext
from tests.support import ROOT
from tests.support.dashboard_client import dashboard_process
from tests.support.polling import eventually
from tests.support.slo_spans import SLO_FILE, insert_spans
from tracestore.migrate import migrate
from tracestore.store import open_store

USER, PASSWORD = "admin", "s3cret"
AUTH = (USER, PASSWORD)
BASIC_AUTH = ("--basic-auth", f"{USER}:{PASSWORD}")  # the dashboard's flag for AUTH
EVIL = "https://evil.example"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")

# ---- hostile values --------------------------------------------------------------------

HOSTILE_VALUES = {
    "superscript digits": "²⁰²⁴",
    "arabic-indic digits": "١٢٣",
    "400 digits": "1" * 400,
    "400 digits with a unit": "9" * 400 + "ms",
    "deep JSON array": "[" * 5000,
    "deep JSON object": '{"a":' * 800 + "1" + "}" * 800,
    "lone surrogate in JSON": '{"http.method":"\\ud800"}',
    "NaN": "NaN",
    "-Infinity": "-Infinity",
    "1e400": "1e400",
    "negative": "-1",
    "NUL": "\x00",
    "long string": "x" * 12_000,
    "ISO far future": "9999-12-31T23:59:59+14:00",
    "ISO before 1970": "1970-01-01T00:00:00+05:00",
    "format characters": "%s%n{0}${x}",
}
# The dashboard reads its parameters as qp.get("x"), qp["x"], qp.getlist("x") or
# request.query_params.get("x"); reading the names from each route's module (and the
# OpenAPI document) keeps the probe whole as routes and parameters are added.
_PARAM_READ = re.compile(
    r"""(?:qp|query_params|params)(?:\.get|\.getlist)?[\[(]\s*["']([A-Za-z_][A-Za-z0-9_.]*)["']"""
)
# Read by shared helpers (the time range, limits, Jaeger tags) on behalf of many routes.
COMMON_NAMES = ("start", "end", "lookback", "limit", "service", "operation", "tags", "step")


def parameter_names(module: str, path: str, document: dict) -> list[str]:
    """The query parameters a route may read: its module's, its documented ones, the common."""
    names = set(COMMON_NAMES)
    source = ROOT / (module.replace(".", "/") + ".py")
    if source.exists():
        names.update(_PARAM_READ.findall(source.read_text()))
    for operation in document["paths"].get(path, {}).values():
        names.update(p["name"] for p in operation.get("parameters", []) if p["in"] == "query")
    return sorted(names)


def http_routes(routes: list, prefix: str = "") -> Iterator[tuple[str, set[str], str]]:
    """(path template, methods, module of the endpoint) of every HTTP route, mounts included."""
    for route in routes:
        if isinstance(route, Route):
            yield prefix + route.path, set(route.methods or {"GET"}), route.endpoint.__module__
        elif isinstance(route, Mount):
            inner = list(http_routes(route.routes, prefix + route.path))
            yield from inner or [(prefix + route.path + "/{path}", {"GET"}, "")]


def fill(template: str, value: str) -> str:
    """The path with every ``{param}`` (any convertor) replaced by ``value``, URL-encoded."""
    return re.sub(r"\{[^}]+\}", quote(value, safe=""), template)


def legitimate_path(template: str) -> str:
    """A well-formed path for a template, so query parameters are what gets probed."""
    values = {"trace_id": TRACE_ID, "service": "payments", "id": str(uuid.uuid4())}
    return re.sub(
        r"\{([^}:]+)(?::[^}]*)?\}", lambda m: values.get(m.group(1), "base.css"), template
    )


def assert_clear_refusal(response: httpx.Response, what: str) -> None:
    """Not a server error, and a 4xx says why without internals."""
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    if 400 <= response.status_code < 500 and response.status_code not in (401, 404, 405):
        text = response.text
        assert text.strip(), f"{what}: {response.status_code} without a message"
        for leak in ("Traceback", "DB::Exception", "clickhouse", "chdb", "Code: "):
            assert leak.lower() not in text.lower(), f"{what}: leaks {leak!r}: {text[:300]}"


# ---- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def native_url(clickhouse_server) -> str:
    """A migrated database on the real server holding spans of service payments."""
    url = clickhouse_server.url(database=f"hostile_{uuid.uuid4().hex[:12]}")
    store = open_store(url)
    migrate(store)
    now = time.time()
    insert_spans(store, [(now - 30 + i, 50, 0, "GET /pay") for i in range(20)])
    return url


@pytest.fixture(scope="module")
def dashboard(native_url: str) -> Iterator[str]:
    with dashboard_process(native_url, *BASIC_AUTH) as base:
        yield base


@pytest.fixture(scope="module")
def client(dashboard: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dashboard, auth=AUTH, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def app_routes(native_url: str) -> list[tuple[str, set[str], str]]:
    """The route table of the app the dashboard process serves (same code, same modules)."""
    found = list(http_routes(create_app(DashboardContext(store=open_store(native_url))).routes))
    assert any(path == "/api/v1/silences" for path, _, _ in found)
    return found


# ---- 500-probes against every route ----------------------------------------------------


@pytest.mark.slow
def test_every_query_parameter_of_every_route_refuses_hostile_values(
    client: httpx.Client, app_routes: list[tuple[str, set[str], str]]
) -> None:
    document = client.get("/api/v1/openapi.json").json()
    probes = []
    for template, methods, module in app_routes:
        if "GET" not in methods:
            continue
        path = legitimate_path(template)
        for name in parameter_names(module, template, document):
            probes.extend((path, name, label) for label in HOSTILE_VALUES)
    jaeger = parameter_names("dashboard.jaeger_api", "/api/traces", document)
    assert {"minDuration", "tags", "lookback"} <= set(jaeger)

    def probe(item: tuple[str, str, str]) -> None:
        path, name, label = item
        response = client.get(path, params={name: HOSTILE_VALUES[label]})
        assert_clear_refusal(response, f"GET {path} {name}={label}")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(probe, probes))
    assert len(probes) > 1000
    _legitimate_requests_still_work(client)


def test_every_path_parameter_refuses_hostile_values(
    client: httpx.Client, app_routes: list[tuple[str, set[str], str]]
) -> None:
    for template, methods, _ in app_routes:
        if "{" not in template:
            continue
        for label, value in HOSTILE_VALUES.items():
            for method in methods - {"HEAD"}:
                response = client.request(
                    method, fill(template, value), headers={"Content-Type": "application/json"}
                )
                assert_clear_refusal(response, f"{method} {template} with {label}")
    _legitimate_requests_still_work(client)


HOSTILE_BODIES = {
    "[ x 100,000": "[" * 100_000,
    "deep object": '{"matchers":' * 5000 + "[]" + "}" * 5000,
    "startsAt 1e400": '{"matchers":"a=\\"b\\"","startsAt":1e400,"duration":"1h",'
    '"createdBy":"x","comment":"y"}',
    "endsAt 400 digits": '{"matchers":"a=\\"b\\"","endsAt":' + "9" * 400 + ","
    '"createdBy":"x","comment":"y"}',
    "endsAt NaN": '{"matchers":"a=\\"b\\"","endsAt":NaN,"createdBy":"x","comment":"y"}',
    "endsAt true": '{"matchers":"a=\\"b\\"","endsAt":true,"createdBy":"x","comment":"y"}',
    "lone surrogate comment": '{"matchers":"a=\\"b\\"","duration":"1h",'
    '"createdBy":"x","comment":"\\ud800"}',
    "lone surrogate matcher": '{"matchers":[{"name":"a","value":"\\udfff"}],"duration":"1h",'
    '"createdBy":"x","comment":"y"}',
    "duration 400 digits": '{"matchers":"a=\\"b\\"","duration":"' + "9" * 400 + 'h",'
    '"createdBy":"x","comment":"y"}',
    "superscript duration": '{"matchers":"a=\\"b\\"","duration":"²h",'
    '"createdBy":"x","comment":"y"}',
    "wrong types": '{"matchers":[5],"duration":7,"createdBy":{},"comment":[]}',
    "matcher with wrong types": '{"matchers":[{"name":[],"value":{},"isRegex":"yes"}],'
    '"duration":"1h","createdBy":"x","comment":"y"}',
    "invalid regex": '{"matchers":"a=~\\"(\\"","duration":"1h","createdBy":"x","comment":"y"}',
    "backreference": '{"matchers":[{"name":"a","value":"(a)\\\\1","isRegex":true}],'
    '"duration":"1h","createdBy":"x","comment":"y"}',
    "1,000 matchers": json.dumps(
        {
            "matchers": [{"name": "a", "value": "b"}] * 1000,
            "duration": "1h",
            "createdBy": "x",
            "comment": "y",
        }  # fmt: skip
    ),
    "not UTF-8": b"\xff\xfe{}",
    "empty": "",
    "JSON null": "null",
}


def test_every_write_route_refuses_hostile_bodies(
    client: httpx.Client, app_routes: list[tuple[str, set[str], str]]
) -> None:
    writes = [(t, m) for t, ms, _ in app_routes for m in ms if m in WRITE_METHODS]
    assert ("/api/v1/silences", "POST") in writes and ("/alerts/silences", "POST") in writes
    before = client.get("/api/v1/silences").json()["silences"]
    for template, method in writes:
        path = legitimate_path(template)
        for label, body in HOSTILE_BODIES.items():
            for content_type in ("application/json", "application/x-www-form-urlencoded"):
                response = client.request(
                    method, path, content=body, headers={"Content-Type": content_type}
                )
                assert_clear_refusal(response, f"{method} {path} {content_type} {label}")
        for label, value in HOSTILE_VALUES.items():
            form = {"matchers": value, "duration": value, "created_by": value, "comment": value}
            response = client.request(method, path, data=form)
            assert_clear_refusal(response, f"{method} {path} form of {label}")
    assert client.get("/api/v1/silences").json()["silences"] == before  # none was created
    _legitimate_requests_still_work(client)


def test_silence_body_regressions_are_400_with_a_message(client: httpx.Client) -> None:
    """The attack pass's bodies, one by one, with the message each deserves."""
    expected = {
        "[ x 100,000": "nested",
        "startsAt 1e400": "out of range",
        "endsAt 400 digits": "too long",
        "lone surrogate comment": "surrogate",
        "lone surrogate matcher": "surrogate",
        "superscript duration": "duration",
        "backreference": "invalid regular expression",
        "1,000 matchers": "at most",
    }
    for label, fragment in expected.items():
        response = client.post(
            "/api/v1/silences",
            content=HOSTILE_BODIES[label],
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 400, (label, response.status_code, response.text[:200])
        assert fragment in response.json()["error"], (label, response.json())


def test_jaeger_and_search_parameter_regressions_are_400(client: httpx.Client) -> None:
    cases = [
        ("/api/v1/search", {"start": "²⁰²⁴", "end": "1700000000000"}, "time"),
        ("/api/v1/search", {"lookback": "1" * 400}, "too long"),
        ("/api/v1/search", {"minDuration": "1" * 400}, "too long"),
        ("/api/v1/latency", {"service": "payments", "step": "1" * 400}, "too long"),
        ("/api/traces", {"service": "payments", "start": "¹²³"}, "microseconds"),
        ("/api/traces", {"service": "payments", "lookback": "9" * 400}, "too long"),
        ("/api/traces", {"service": "payments", "tags": "[" * 5000}, "nested"),
        ("/api/traces", {"service": "payments", "tags": '{"a":"\\ud800"}'}, "surrogate"),
        ("/api/traces", {"service": "payments", "tags": '{"a":1e400}'}, "out of range"),
    ]
    for path, params, fragment in cases:
        response = client.get(path, params=params)
        assert response.status_code == 400, (path, params, response.status_code, response.text)
        assert fragment in response.text, (path, params, response.text[:300])


# ---- cross-site writes -----------------------------------------------------------------


def test_cross_site_writes_to_every_state_changing_route_are_403(
    dashboard: str, client: httpx.Client, app_routes: list[tuple[str, set[str], str]]
) -> None:
    writes = [(t, m) for t, ms, _ in app_routes for m in ms if m in WRITE_METHODS]
    form = {"matchers": 'alertname=~".*"', "duration": "52w", "created_by": "x", "comment": "y"}
    hostile_headers = [
        {"Origin": EVIL},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://sub.evil.example"},
    ]
    before = client.get("/api/v1/silences").json()["silences"]
    for template, method in writes:
        path = legitimate_path(template)
        for headers in hostile_headers:
            # a browser form post (the body a page on another origin can send)
            response = client.request(method, path, data=form, headers=headers)
            assert response.status_code == 403, (method, path, headers, response.status_code)
            assert "cross" in response.json()["error"]
            body = json.dumps({"matchers": 'alertname=~".*"', "duration": "1h",
                               "createdBy": "x", "comment": "y"})  # fmt: skip
            response = client.request(
                method, path, content=body, headers={**headers, "Content-Type": "text/plain"}
            )
            assert response.status_code == 403, (method, path, headers, response.status_code)
    assert client.get("/api/v1/silences").json()["silences"] == before


def test_json_apis_take_only_application_json(
    dashboard: str, client: httpx.Client, app_routes: list[tuple[str, set[str], str]]
) -> None:
    body = json.dumps({"matchers": 'alertname="x"', "duration": "1h", "createdBy": "t",
                       "comment": "c"})  # fmt: skip
    before = client.get("/api/v1/silences").json()["silences"]
    for template, methods, _ in app_routes:
        for method in sorted(methods & {"POST", "PUT", "PATCH"}):
            if not template.startswith("/api/"):
                continue
            path = legitimate_path(template)
            for media_type in ("text/plain", "application/x-www-form-urlencoded",
                               "multipart/form-data; boundary=x", None):  # fmt: skip
                headers = {"Content-Type": media_type} if media_type else {}
                request = client.build_request(method, path, content=body)
                request.headers.pop("Content-Type", None)
                request.headers.update(headers)
                response = client.send(request)
                assert response.status_code == 415, (path, media_type, response.status_code)
                assert "application/json" in response.json()["error"]
    assert client.get("/api/v1/silences").json()["silences"] == before
    # the same body as JSON, from a same-origin page or a non-browser client, works
    host = urlsplit(dashboard).netloc
    for headers in ({}, {"Origin": f"http://{host}"}, {"Sec-Fetch-Site": "same-origin"}):
        created = client.post(
            "/api/v1/silences",
            content=body,
            headers={**headers, "Content-Type": "application/json; charset=utf-8"},
        )
        assert created.status_code == 201, created.text
        expired = client.delete(f"/api/v1/silences/{created.json()['silenceID']}", headers=headers)
        assert expired.status_code == 200
    form = client.post(
        "/alerts/silences",
        data={"matchers": 'alertname="x"', "duration": "1h", "created_by": "t", "comment": "c"},
        headers={"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"},
    )
    assert form.status_code == 303 and form.headers["location"] == "/alerts"


def test_pages_forbid_framing_and_carry_a_content_security_policy(client: httpx.Client) -> None:
    for path in ("/search", "/services", "/services/map", "/slos", "/alerts", "/api/v1/slos"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["X-Frame-Options"] == "DENY"
        policy = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        if path.startswith("/api/"):
            continue
        # the policy allows no inline script or style: the pages must not need them
        assert "<script>" not in response.text and "<style" not in response.text, path
        assert " style=" not in response.text and "javascript:" not in response.text, path


# ---- body and field limits -------------------------------------------------------------


def _raw_post(url: str, path: str, headers: dict[str, str], body_part: bytes) -> bytes:
    """POST a request head and only ``body_part`` of its body; return the answer's head.

    Sending less than promised shows the server answers without reading the rest
    (and the server never closes on bytes it left unread, which would reset the answer).
    """
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    lines = [f"POST {path} HTTP/1.1", "Host: x", f"Authorization: Basic {token}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body_part)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_a_300_mb_post_is_refused_before_it_is_read(dashboard: str, client: httpx.Client) -> None:
    before = client.get("/api/v1/silences").json()["silences"]
    form = "application/x-www-form-urlencoded"
    for path, media_type in (("/api/v1/silences", "application/json"), ("/alerts/silences", form)):
        headers = {"Content-Type": media_type, "Content-Length": str(300 * 1024 * 1024)}
        answer = _raw_post(dashboard, path, headers, b"{" + b" " * 1023)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        # a 20 MB silence comment is refused the same way
        headers["Content-Length"] = str(20 * 1024 * 1024)
        answer = _raw_post(dashboard, path, headers, b'{"comment": "' + b"x" * 1000)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert client.get("/api/v1/silences").json()["silences"] == before


def test_a_chunked_body_over_the_limit_is_413(dashboard: str) -> None:
    """No Content-Length: the body is counted as it arrives and cut off at the limit."""
    size = MAX_BODY_BYTES + 1
    body = b"%x\r\n" % size + b'{"comment":"' + b"x" * (size - 12) + b"\r\n"
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    answer = _raw_post(dashboard, "/api/v1/silences", headers, body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_silence_fields_are_bounded(client: httpx.Client) -> None:
    before = client.get("/api/v1/silences").json()["silences"]
    base = {"matchers": 'alertname="x"', "duration": "1h", "createdBy": "t", "comment": "c"}
    for field, size, fragment in (("comment", 5000, "comment"), ("createdBy", 300, "createdBy"),
                                  ("matchers", 20_000, "matchers")):  # fmt: skip
        response = client.post("/api/v1/silences", json={**base, field: "y" * size})
        assert response.status_code == 400, (field, response.status_code)
        assert fragment in response.json()["error"]
    long_value = client.post("/api/v1/silences", json={**base, "matchers": f'a="{"v" * 2000}"'})
    assert long_value.status_code == 400 and "at most" in long_value.json()["error"]
    # one matcher longer than any valid one is refused before a regex reads it (unquoted
    # values full of spaces made the matcher regex backtrack in quadratic time)
    spaced = client.post("/api/v1/silences", json={**base, "matchers": "a=x" + " " * 15000 + '"'})
    assert spaced.status_code == 400 and "longer than" in spaced.json()["error"]
    form = client.post(
        "/alerts/silences",
        data={
            "matchers": 'alertname="x"',
            "duration": "1h",
            "created_by": "t",
            "comment": "x" * 5000,
        },  # fmt: skip
    )
    assert form.status_code == 303 and "comment" in form.headers["location"]
    assert client.get("/api/v1/silences").json()["silences"] == before


def _legitimate_requests_still_work(client: httpx.Client) -> None:
    assert client.get("/healthz").status_code == 200
    found = client.get("/api/v1/search", params={"service": "payments", "lookback": "1h"})
    assert found.status_code == 200 and found.json()["traces"], found.text[:300]
    jaeger = client.get("/api/traces", params={"service": "payments", "tags": '{"a":"b"}'})
    assert jaeger.status_code == 200
    assert client.get("/search", params={"service": "payments"}).status_code == 200


# ---- the pathological silence regex ----------------------------------------------------


def _wait_for_evaluation_after(base: str, moment: float) -> dict:
    """The first /api/v1/slos evaluated after ``moment``; every request must be answered
    within 10 s (a regex holding the GIL freezes the whole process)."""

    def evaluated() -> dict | None:
        slos = httpx.get(base + "/api/v1/slos", auth=AUTH, timeout=10).json()
        return slos if (slos["evaluatedAt"] or 0) > moment else None

    what = "an evaluation after the silence was created"
    return eventually(evaluated, 60, what=what, ignoring=())


def test_pathological_silence_regex_neither_freezes_nor_stops_evaluation(
    clickhouse_server, tmp_path: Path
) -> None:
    """``sidetrace dashboard`` as its own process with an SLO file evaluated every 0.5 s."""
    url = clickhouse_server.url(database=f"regex_{uuid.uuid4().hex[:12]}")
    store = open_store(url)
    migrate(store)
    now = time.time()
    insert_spans(store, [(now - 20 + i * 0.1, 2000, 0, "GET /pay") for i in range(100)])
    slo_file = tmp_path / "slo.yaml"
    slo_file.write_text(SLO_FILE.format(url="http://127.0.0.1:1/unused"))
    flags = ("--slo", str(slo_file), "--slo-interval", "0.5")
    with dashboard_process(url, *BASIC_AUTH, *flags) as base:
        _wait_for_evaluation_after(base, 0)

        def silence(matchers: str) -> httpx.Response:
            body = {"matchers": matchers, "duration": "1h", "createdBy": "t", "comment": "c"}
            return httpx.post(base + "/api/v1/silences", json=body, auth=AUTH, timeout=10)

        # RE2 refuses what it cannot run in linear time, with a clear 400
        refused = silence('slo=~"(a)\\\\1"')
        assert refused.status_code == 400 and "invalid regular expression" in refused.text
        refused = silence('slo=~"(?=p)payments-latency"')
        assert refused.status_code == 400 and "invalid regular expression" in refused.text

        assert silence('slo=~"(.*.*.*.*)*z"').status_code == 201
        assert silence('slo=~"payments", severity="page"').status_code == 201  # anchored: a part
        assert silence('slo=~"payments-lat.*", severity=~"tick.t"').status_code == 201
        created = time.time()
        slos = _wait_for_evaluation_after(base, created)
        _wait_for_evaluation_after(base, slos["evaluatedAt"])  # and it keeps evaluating
        alerts = httpx.get(base + "/api/v1/alerts", auth=AUTH, timeout=10).json()["alerts"]
        silenced = {a["labels"]["severity"]: a["silenced"] for a in alerts if "slo" in a["labels"]}
        assert silenced == {"page": False, "ticket": True}
        assert httpx.get(base + "/alerts", auth=AUTH, timeout=10).status_code == 200


# ---- the pages under the policy, in a real browser ---------------------------------------


@pytest.mark.browser
def test_every_page_runs_under_the_policy_and_the_silence_form_works_in_a_browser(
    dashboard: str, app_routes: list[tuple[str, set[str], str]]
) -> None:
    """No page needs what the policy forbids; a same-origin form post is not cross-site."""
    from playwright.sync_api import sync_playwright

    from tests.support.browser import launch_chromium

    pages = [
        legitimate_path(t)
        for t, methods, _ in app_routes
        if "GET" in methods and not t.startswith(("/api/", "/static", "/healthz"))
    ]
    assert {"/search", "/alerts", "/slos", "/services/map"} <= set(pages)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context(http_credentials={"username": USER, "password": PASSWORD})
        page = context.new_page()
        page.set_default_timeout(30_000)
        violations: list[str] = []
        page.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
        )
        page.on("pageerror", lambda exc: violations.append(str(exc)))
        for path in pages:
            page.goto(dashboard + path, wait_until="networkidle")
            assert violations == [], (path, violations)
        page.goto(dashboard + "/alerts")
        page.fill("form.silence input[name=matchers]", 'alertname="browser-test"')
        page.fill("form.silence input[name=created_by]", "playwright")
        page.fill("form.silence input[name=comment]", "same-origin form")
        page.click("form.silence button[type=submit]")
        page.wait_for_url(dashboard + "/alerts")
        row = page.locator("tr", has_text="browser-test")
        assert row.count() == 1 and "active" in row.inner_text()
        row.locator("button", has_text="Expire").click()
        page.wait_for_url(dashboard + "/alerts")
        assert "expired" in page.locator("tr", has_text="browser-test").inner_text()
        assert violations == []
        browser.close()
