"""Every manifest under deploy/ renders, validates against Kubernetes 1.29+, and agrees
with the code it deploys (CLI flags, webhook configuration, labels, cluster layout)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from sidecar.inject import PROXY_LABEL, InjectOptions
from sidecar.webhook import webhook_configuration
from sidetrace.cli import build_parser
from tests.support import ROOT
from tests.support.kustomize_lite import DEPLOY, by_key, render

REPO = ROOT
KUSTOMIZATIONS = sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml"))
IDS = [str(k.relative_to(DEPLOY)) for k in KUSTOMIZATIONS]
SIDETRACE_IMAGE = re.compile(r"^sidetrace(:|$)")


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return obj["spec"]["template"]["spec"]
    return None


def check_cert_manager(obj: dict[str, Any]) -> None:
    """What cert-manager's v1 schema requires of the kinds deploy/ uses."""
    assert obj["apiVersion"] == "cert-manager.io/v1"
    assert obj["kind"] in ("Issuer", "Certificate"), obj["kind"]
    spec = obj["spec"]
    if obj["kind"] == "Issuer":
        assert len(set(spec) & {"selfSigned", "ca"}) == 1
        return
    assert spec["secretName"] and spec["issuerRef"]["kind"] == "Issuer"
    assert spec.get("dnsNames") or spec.get("commonName")
    assert set(spec) <= {
        "isCA", "commonName", "secretName", "duration", "renewBefore", "privateKey",
        "issuerRef", "usages", "dnsNames",
    }  # fmt: skip


def test_cert_manager_overlay_issues_what_the_pods_mount() -> None:
    objects = by_key(render(DEPLOY / "overlays" / "cert-manager"))
    configuration = objects[("MutatingWebhookConfiguration", "sidetrace-injector")]
    source = configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    webhook_cert = objects[("Certificate", source.split("/")[1])]
    mounted = set()
    for name in ("sidetrace-webhook", "sidetrace-collector"):
        spec = objects[("Deployment", name)]["spec"]["template"]["spec"]
        mounted |= {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    issued = {o["spec"]["secretName"] for (kind, _), o in objects.items() if kind == "Certificate"}
    assert {"sidetrace-webhook-tls", "sidetrace-collector-tls"} <= mounted & issued
    assert webhook_cert["spec"]["secretName"] == "sidetrace-webhook-tls"
    assert "sidetrace-webhook.sidetrace.svc" in webhook_cert["spec"]["dnsNames"]
    assert objects[("CronJob", "sidetrace-webhook-renew")]["spec"]["suspend"] is True


def test_self_signed_path_renews_the_webhook_secret() -> None:
    objects = by_key(render(DEPLOY / "base"))
    cronjob = objects[("CronJob", "sidetrace-webhook-renew")]
    assert not cronjob["spec"].get("suspend")
    [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    assert (args.webhook_command, args.secret_name) == ("renew", "sidetrace-webhook-tls")
    role = objects[("Role", "sidetrace-webhook-renew")]
    assert role["rules"][0]["resourceNames"] == [args.secret_name]


@pytest.fixture(scope="module", params=KUSTOMIZATIONS, ids=IDS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=IDS)
def test_renders_and_validates(directory: Path) -> None:
    objects = render(directory)
    assert objects
    for obj in objects:
        if obj["apiVersion"].startswith("cert-manager.io/"):
            check_cert_manager(obj)  # a CRD: kubernetes-validate has no schema for it
            continue
        for version in ("1.29.0", "1.33.0"):
            kubernetes_validate.validate(obj, version, strict=True)
    if shutil.which("kubectl"):  # the real kustomize agrees with ours
        out = subprocess.run(
            ["kubectl", "kustomize", str(directory)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        assert by_key([o for o in yaml.safe_load_all(out) if o]) == by_key(objects)


def test_every_manifest_is_part_of_a_kustomization() -> None:
    used: set[Path] = set()
    for directory in KUSTOMIZATIONS:
        kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
        used |= {(directory / r).resolve() for r in kustomization.get("resources", [])}
        used |= {(directory / p["path"]).resolve() for p in kustomization.get("patches", [])}
    manifests = {p.resolve() for p in DEPLOY.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert manifests - used == set()


def test_sidetrace_commands_parse_with_the_real_cli(rendered: list[dict[str, Any]]) -> None:
    parser = build_parser()
    checked = 0
    for obj in rendered:
        spec = pod_spec(obj)
        for container in (spec or {}).get("initContainers", []) + (spec or {}).get(
            "containers", []
        ):
            if SIDETRACE_IMAGE.match(container["image"]):
                args = parser.parse_args(container["args"])
                assert args.command == container["args"][0]
                checked += 1
    assert checked >= 3


def test_long_running_containers_have_probes_and_resources(rendered: list[dict[str, Any]]) -> None:
    for obj in rendered:
        spec = pod_spec(obj)
        if obj["kind"] not in ("Deployment", "StatefulSet") or spec is None:
            continue
        for container in spec["containers"]:
            where = f"{obj['kind']}/{obj['metadata']['name']} {container['name']}"
            assert "readinessProbe" in container and "livenessProbe" in container, where
            assert container["resources"]["requests"], where
            assert container["resources"]["limits"]["memory"], where
        selector = obj["spec"]["selector"]["matchLabels"]
        labels = obj["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()


def test_images_are_pinned(rendered: list[dict[str, Any]]) -> None:
    for obj in rendered:
        for container in (pod_spec(obj) or {}).get("containers", []):
            assert re.search(r":\d+(\.\d+)+$", container["image"]), container["image"]


def test_webhook_configuration_matches_the_code() -> None:
    objects = by_key(render(DEPLOY / "base"))
    configuration = objects[("MutatingWebhookConfiguration", "sidetrace-injector")]
    assert configuration == webhook_configuration("", "sidetrace-webhook", "sidetrace")
    assert {w["failurePolicy"] for w in configuration["webhooks"]} == {"Ignore"}
    service = objects[("Service", "sidetrace-webhook")]
    assert service["spec"]["ports"][0]["port"] == 443
    deployment = objects[("Deployment", "sidetrace-webhook")]
    [volume] = deployment["spec"]["template"]["spec"]["volumes"]
    assert volume["secret"]["secretName"] == "sidetrace-webhook-tls"  # `webhook certs` default
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert f"--collector={InjectOptions.collector}" in container["args"]


def test_collector_service_scaling_and_policies() -> None:
    objects = by_key(render(DEPLOY / "base"))
    service = objects[("Service", "sidetrace-collector")]
    assert {p["port"] for p in service["spec"]["ports"]} >= {4317, 4318}
    hpa = objects[("HorizontalPodAutoscaler", "sidetrace-collector")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "sidetrace-collector"
    pdb = objects[("PodDisruptionBudget", "sidetrace-collector")]
    labels = objects[("Deployment", "sidetrace-collector")]["spec"]["template"]["metadata"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels["labels"].items()

    collector_policy = objects[("NetworkPolicy", "collector-from-sidecars")]
    otlp_rule = collector_policy["spec"]["ingress"][0]
    assert {p["port"] for p in otlp_rule["ports"]} == {4317, 4318}
    [source] = otlp_rule["from"]
    assert source["podSelector"]["matchLabels"] == {PROXY_LABEL: "enabled"}
    clickhouse_policy = objects[("NetworkPolicy", "clickhouse-from-dashboard-and-collector")]
    [rule] = clickhouse_policy["spec"]["ingress"]
    sources = {s["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for s in rule["from"]}
    assert sources == {"sidetrace-dashboard", "sidetrace-collector"}


def test_cluster_layout_is_consistent() -> None:
    objects = by_key(render(DEPLOY / "overlays" / "cluster"))
    config = objects[("ConfigMap", "clickhouse-cluster")]["data"]["cluster.xml"]
    root = ET.fromstring(config)
    [cluster] = list(root.find("remote_servers"))
    pods = set()
    for name in ("clickhouse", "clickhouse-shard2"):
        statefulset = objects[("StatefulSet", name)]
        service = statefulset["spec"]["serviceName"]
        pods |= {
            f"{name}-{i}.{service}.sidetrace.svc.cluster.local"
            for i in range(statefulset["spec"]["replicas"])
        }
        env = {
            e["name"]: e.get("value")
            for e in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["CLICKHOUSE_SHARD"] in ("01", "02")
    shards = cluster.findall("shard")
    assert len(shards) == 2
    assert {h.text for h in cluster.iter("host")} == pods
    keeper = objects[("StatefulSet", "clickhouse-keeper")]
    keeper_hosts = {h.text for h in root.find("zookeeper").iter("host")}
    assert len(keeper_hosts) == keeper["spec"]["replicas"] == 3
    collector = objects[("Deployment", "sidetrace-collector")]["spec"]["template"]["spec"]
    [migrate] = collector["initContainers"]
    assert migrate["args"] == ["migrate", f"--cluster={cluster.tag}"]


def test_dockerfile_is_pinned_non_root_and_ships_every_package() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = {stage: base for base, stage in re.findall(r"^FROM (\S+) AS (\S+)", text, re.M)}
    # A build stage with a compiler; a runtime both role images start from.
    assert {stages["build"], stages["runtime"]} == {"python:3.11.7-slim-bookworm"}
    assert re.match(r"^python:\d+\.\d+\.\d+-slim-\w+$", stages["build"])
    assert stages["sidecar"] == stages["full"] == "runtime"
    assert list(stages)[-1] == "full"  # a plain `docker build` makes the full image
    assert re.search(r"^COPY pyproject\.toml setup\.py ", text, re.MULTILINE)
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert len(users) == 2 and not any(u.startswith(("0", "root")) for u in users)
    # Both install from the lock; only the full image has the embedded engine.
    assert text.count("-c /tmp/req/requirements.lock") == 2
    assert "-r /tmp/req/sidecar-requirements.in" in text
    assert "--no-deps /wheels/*.whl" in text
    assert "sidetrace[embedded,webhook]" in text
    assert 'ENTRYPOINT ["sidetrace"]' in text
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    for pattern in packages["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert re.search(rf"^COPY {package} \./{package}$", text, re.MULTILINE), package
