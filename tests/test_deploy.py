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

from sidecar.inject import PROXY_LABEL
from sidecar.webhook import webhook_configuration
from sidetrace.cli import build_parser
from tests.kustomize_lite import render

REPO = Path(__file__).parent.parent
DEPLOY = REPO / "deploy"
KUSTOMIZATIONS = sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml"))
IDS = [str(k.relative_to(DEPLOY)) for k in KUSTOMIZATIONS]
SIDETRACE_IMAGE = re.compile(r"^sidetrace(:|$)")


def by_key(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return obj["spec"]["template"]["spec"]
    return None


@pytest.fixture(scope="module", params=KUSTOMIZATIONS, ids=IDS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=IDS)
def test_renders_and_validates(directory: Path) -> None:
    objects = render(directory)
    assert objects
    for obj in objects:
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
    bases = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(bases) == 2  # a build stage with a compiler, then the runtime image
    assert all(re.match(r"^python:\d+\.\d+\.\d+-slim-\w+$", base) for base in bases)
    assert re.search(r"^COPY pyproject\.toml setup\.py ", text, re.MULTILINE)
    [user] = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert not user.startswith(("0", "root"))
    assert 'ENTRYPOINT ["sidetrace"]' in text
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    for pattern in packages["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert re.search(rf"^COPY {package} \./{package}$", text, re.MULTILINE), package
