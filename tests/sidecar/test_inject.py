"""Injection over real manifests: schema-valid output, idempotence, exact reversal."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import kubernetes_validate
import pytest

from sidecar.command import config_from_args
from sidecar.inject import (
    INIT_NAME,
    PROXY_LABEL,
    RECORD,
    SIDECAR_NAME,
    InjectError,
    InjectOptions,
    inject_documents,
    templates,
    uninject_documents,
)
from sidecar.manifest_io import parse, render
from sidetrace.cli import build_parser
from tests.support import ROOT

MANIFESTS = ROOT / "tests" / "manifests"
FILES = sorted(p.name for p in MANIFESTS.iterdir() if p.suffix in (".yaml", ".json"))
MODES = {
    "native": InjectOptions(),
    "legacy": InjectOptions(legacy=True),
    "no-iptables": InjectOptions(iptables=False),
    "legacy-no-iptables": InjectOptions(legacy=True, iptables=False),
}
K8S_VERSIONS = ("1.29.0", "1.33.0")


def inject_text(text: str, options: InjectOptions) -> str:
    manifest = parse(text)
    inject_documents(manifest.documents, options)
    return render(manifest)


def uninject_text(text: str) -> str:
    manifest = parse(text)
    uninject_documents(manifest.documents)
    return render(manifest)


def plain_documents(text: str) -> list:
    return json.loads(json.dumps(parse(text).documents))


def objects(documents: list) -> list[dict]:
    """Flatten Lists: kubernetes-validate checks the items."""
    out = []
    for doc in documents:
        if doc.get("kind") == "List":
            out += objects(doc["items"])
        else:
            out.append(doc)
    return out


def pod_specs(text: str) -> list[tuple[str, dict]]:
    return [(name, t["spec"]) for d in plain_documents(text) for t, name, _ in templates(d)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", FILES)
def test_inject_is_valid_idempotent_and_reversible(name: str, mode: str) -> None:
    original = (MANIFESTS / name).read_text()
    injected = inject_text(original, MODES[mode])
    for obj in objects(plain_documents(injected)):
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
    assert inject_text(injected, MODES[mode]) == injected
    restored = uninject_text(injected)
    assert plain_documents(restored) == plain_documents(original)
    assert restored == render(parse(original))  # the same text, comments included
    assert uninject_text(restored) == restored


@pytest.mark.parametrize("mode", MODES)
def test_what_is_added(mode: str) -> None:
    options = MODES[mode]
    original = (MANIFESTS / "deployment-multi.yaml").read_text()
    injected = inject_text(original, options)
    assert "# runs before the app" in injected
    [(_, spec)] = pod_specs(injected)
    [(_, before)] = pod_specs(original)
    inits = [c["name"] for c in spec["initContainers"]]
    containers = [c["name"] for c in spec["containers"]]
    if options.legacy:
        assert containers == ["web", "log-shipper", SIDECAR_NAME]
        assert inits == ["migrate"] + ([INIT_NAME] if options.iptables else [])
        sidecar = spec["containers"][-1]
        assert "restartPolicy" not in sidecar
    else:
        assert containers == ["web", "log-shipper"]
        assert inits == ([INIT_NAME] if options.iptables else []) + [SIDECAR_NAME, "migrate"]
        sidecar = next(c for c in spec["initContainers"] if c["name"] == SIDECAR_NAME)
        assert sidecar["restartPolicy"] == "Always"
    assert sidecar["command"] == ["sidetrace", "sidecar"]
    # The flags agree with the real commands (a renamed flag would fail here).
    parser = build_parser()
    sidecar_args = parser.parse_args([*sidecar["command"][1:], *sidecar["args"]])
    assert sidecar_args.app_port == 8080 and sidecar_args.grpc_ports == {9090}
    assert "--grpc-ports=9090" in sidecar["args"]
    assert "--sampling-ratio=0.25" in sidecar["args"]
    assert "--app-port=8080" in sidecar["args"]
    assert sidecar["startupProbe"]["httpGet"] == {"path": "/healthz", "port": 15020}
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 15020}
    env = {e["name"]: e for e in sidecar["env"]}
    assert env["SIDETRACE_SERVICE_NAME"]["value"] == "storefront"
    assert env["SIDETRACE_SERVICE_VERSION"]["value"] == "1.4.2"
    for variable, field in (
        ("SIDETRACE_POD_NAME", "metadata.name"),
        ("SIDETRACE_POD_NAMESPACE", "metadata.namespace"),
        ("SIDETRACE_NODE_NAME", "spec.nodeName"),
    ):
        assert env[variable]["valueFrom"]["fieldRef"]["fieldPath"] == field
    assert sidecar["securityContext"]["runAsUser"] == 1337
    # Secure export: TLS to the collector's OTLP/HTTP port (the sidecar's default protocol)
    # with the CA and token of the client Secret.
    assert sidecar_args.collector == "https://sidetrace-collector.sidetrace.svc:4318"
    assert sidecar_args.collector_ca == "/var/run/sidetrace/collector/ca.crt"
    assert sidecar_args.collector_token_file == "/var/run/sidetrace/collector/token"
    [mount] = sidecar["volumeMounts"]
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"] == {"secretName": "sidetrace-collector-client", "optional": True}
    assert mount["mountPath"] == "/var/run/sidetrace/collector" and mount["readOnly"]
    template_meta = plain_documents(injected)[0]["spec"]["template"]["metadata"]
    assert "prometheus.io/port" not in template_meta["annotations"]  # the app's own scrape wins
    pod = plain_documents(inject_text((MANIFESTS / "pod.yaml").read_text(), options))[0]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "15020"
    labels = plain_documents(injected)[0]["spec"]["template"]["metadata"]["labels"]
    assert labels[PROXY_LABEL] == "enabled"  # what the collector's NetworkPolicy admits
    if options.iptables:
        init = next(c for c in spec["initContainers"] if c["name"] == INIT_NAME)
        assert init["command"] == ["sidetrace", "iptables-init"]
        init_args = parser.parse_args([*init["command"][1:], *init["args"]])
        assert init_args.skip_outbound_ports == "5432,6379"
        assert init["securityContext"]["capabilities"] == {
            "add": ["NET_ADMIN", "NET_RAW"],
            "drop": ["ALL"],
        }
        assert "--skip-outbound-ports=5432,6379" in init["args"]
        assert spec["containers"][0] == before["containers"][0]  # the app is untouched
    else:
        web = spec["containers"][0]
        web_env = {e["name"]: e.get("value") for e in web["env"]}
        assert web_env["HTTP_PROXY"] == "http://127.0.0.1:15001"
        assert web_env["LOG_LEVEL"] == "info"
        # The Service's named targetPort "http" now lands on the sidecar's inbound port.
        assert {"name": "http", "containerPort": 15006, "protocol": "TCP"} in sidecar["ports"]
        assert web["ports"][0] == {"name": "http-app", "containerPort": 8080}
        assert web["readinessProbe"]["httpGet"]["port"] == 8080
        assert web["livenessProbe"]["tcpSocket"]["port"] == 8080


def test_job_app_untouched_in_legacy_mode_and_skips_reported() -> None:
    original = (MANIFESTS / "stream.yaml").read_text()
    manifest = parse(original)
    outcomes = inject_documents(manifest.documents, InjectOptions(legacy=True))
    by_name = {o.object_name: o for o in outcomes}
    assert by_name["Pod/node-debug in namespace shop"].skip_reason.startswith("hostNetwork")
    assert "opted out" in by_name["Pod/legacy-batch in namespace shop"].skip_reason
    assert by_name["Job/reindex in namespace shop"].injected
    specs = dict(pod_specs(render(manifest)))
    job = specs["Job/reindex in namespace shop"]
    assert job["containers"][0] == {"name": "reindex", "image": "search:5"}
    assert [c["name"] for c in job["containers"]] == ["reindex", SIDECAR_NAME]
    replica = specs["ReplicaSet/checkout in namespace shop"]
    proxy = replica["containers"][-1]
    assert "--collector=collector.observability:4318" in proxy["args"]
    assert proxy["resources"]["requests"]["memory"] == "96Mi"
    assert proxy["resources"]["limits"]["memory"] == "192Mi"


def test_already_injected_is_skipped() -> None:
    manifest = parse((MANIFESTS / "pod.yaml").read_text())
    [first] = inject_documents(manifest.documents, InjectOptions())
    [second] = inject_documents(manifest.documents, InjectOptions(legacy=True))
    assert first.injected and not second.injected
    assert second.skip_reason == "already injected"


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "shop", "namespace": "prod", "annotations": {}},
    "spec": {"containers": [{"name": "a", "image": "a:1", "ports": [{"containerPort": 80}]}]},
}

BAD_ANNOTATIONS = [
    ("sidetrace.io/inject", "yes", "is not enabled or disabled"),
    ("sidetrace.io/sampling-ratio", "1.5", "is not a number from 0 to 1"),
    ("sidetrace.io/sampling-ratio", "half", "is not a number from 0 to 1"),
    ("sidetrace.io/inbound-ports", "http", "is not a port"),
    ("sidetrace.io/skip-outbound-ports", "70000", "outside 1-65535"),
    ("sidetrace.io/skip-inbound-ports", "90-80", "reversed range"),
    ("sidetrace.io/grpc-ports", "9090;9091", "is not a port"),
    ("sidetrace.io/opaque-ports", "5000-5010", "not ranges"),
    ("sidetrace.io/collector", "collector", "is not HOST:PORT"),
    ("sidetrace.io/collector-protocol", "http/json", "is not http/protobuf or grpc"),
    ("sidetrace.io/collector-protocol", "", "is not http/protobuf or grpc"),
    ("sidetrace.io/collector-protocol", "grpc", "the collector's OTLP/HTTP port"),  # default :4318
    ("sidetrace.io/proxy-cpu-limit", "lots", "is not a Kubernetes quantity"),
    ("sidetrace.io/proxy-memory-request", "1 GB", "is not a Kubernetes quantity"),
    ("sidetrace.io/service-name", "no spaces please", "is not a valid service name"),
    ("sidetrace.io/sampling", "0.5", "unknown annotation"),
    ("sidetrace.io/routes", "/users/{id},users", "is not a path template"),
    ("sidetrace.io/routes", "/a b", "is not a path template"),
]


def test_routes_annotation_becomes_route_flags() -> None:
    """``http.route`` templates come from configuration only: the pod annotation."""
    pod = copy.deepcopy(POD)
    pod["metadata"]["annotations"]["sidetrace.io/routes"] = " /users/{uid} , /orders/{oid}/items"
    inject_documents([pod], InjectOptions(legacy=True))
    sidecar = next(c for c in pod["spec"]["containers"] if c["name"] == SIDECAR_NAME)
    parsed = build_parser().parse_args([*sidecar["command"][1:], *sidecar["args"]])
    assert parsed.route == ["/users/{uid}", "/orders/{oid}/items"]


@pytest.mark.parametrize(
    ("annotations", "variable", "protocol"),
    [
        ({}, None, "http/protobuf"),  # no variable: the sidecar's own default
        ({"sidetrace.io/collector-protocol": "http/protobuf"}, "http/protobuf", "http/protobuf"),
        (
            {
                "sidetrace.io/collector-protocol": "grpc",
                "sidetrace.io/collector": "https://collector.observability:4317",
            },
            "grpc",
            "grpc",
        ),
    ],
    ids=["absent", "http-protobuf", "grpc"],
)
def test_collector_protocol_annotation_becomes_the_otlp_variable(
    annotations: dict, variable: str | None, protocol: str
) -> None:
    pod = copy.deepcopy(POD)
    pod["metadata"]["annotations"].update(annotations)
    inject_documents([pod], InjectOptions(legacy=True))
    sidecar = next(c for c in pod["spec"]["containers"] if c["name"] == SIDECAR_NAME)
    env = {e["name"]: e["value"] for e in sidecar["env"] if "value" in e}
    assert env.get("OTEL_EXPORTER_OTLP_PROTOCOL") == variable
    # the sidecar's own parsing of its args and env exports with that protocol
    parsed = build_parser().parse_args([*sidecar["command"][1:], *sidecar["args"]])
    config = config_from_args(parsed, env)
    assert config.export is not None and config.export.protocol == protocol


@pytest.mark.parametrize(("key", "value", "problem"), BAD_ANNOTATIONS)
def test_bad_annotations_name_object_and_annotation(key: str, value: str, problem: str) -> None:
    good = copy.deepcopy(POD)
    bad = copy.deepcopy(POD)
    bad["metadata"]["annotations"][key] = value
    documents = [good, bad]
    before = copy.deepcopy(documents)
    with pytest.raises(InjectError) as caught:
        inject_documents(documents, InjectOptions())
    message = str(caught.value)
    assert message.startswith(f"Pod/shop in namespace prod: annotation {key}: ")
    assert problem in message
    assert documents == before  # nothing half-written, not even the good pod


def test_corrupt_record_is_an_error() -> None:
    pod = copy.deepcopy(POD)
    pod["metadata"]["annotations"][RECORD] = "{not json"
    with pytest.raises(InjectError, match=f"annotation {RECORD}: unreadable record"):
        uninject_documents([pod])


def run_cli(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidetrace", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_stdin_files_and_round_trip() -> None:
    stream = (MANIFESTS / "stream.yaml").read_text()
    result = run_cli("inject", "-f", "-", "--no-iptables", stdin=stream)
    assert result.returncode == 0, result.stderr
    assert "skipped Pod/node-debug in namespace shop: hostNetwork" in result.stderr
    assert "skipped Pod/legacy-batch in namespace shop: opted out" in result.stderr
    assert "port 15006" in result.stderr  # the unnamed app port warning
    assert result.stdout == inject_text(stream, InjectOptions(iptables=False))
    both = run_cli(
        "inject",
        "-f",
        str(MANIFESTS / "list.json"),
        "-f",
        str(MANIFESTS / "cronjob.yaml"),
        stdin="",
    )
    assert both.returncode == 0, both.stderr
    docs = plain_documents(both.stdout)
    assert [d["kind"] for d in docs] == ["List", "CronJob"]
    back = run_cli("uninject", "-f", "-", stdin=both.stdout)
    assert back.returncode == 0, back.stderr
    assert plain_documents(back.stdout) == [
        json.loads((MANIFESTS / "list.json").read_text()),
        *plain_documents((MANIFESTS / "cronjob.yaml").read_text()),
    ]


def test_cli_error_writes_nothing() -> None:
    bad = json.dumps({**POD, "metadata": {"name": "x", "annotations": {"sidetrace.io/x": "1"}}})
    result = run_cli("inject", "-f", "-", stdin=bad)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Pod/x: annotation sidetrace.io/x: unknown annotation" in result.stderr
