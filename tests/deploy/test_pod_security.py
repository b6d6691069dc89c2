"""Every pod of ``deploy/`` and every injected proxy meets Pod Security ``restricted``.

The one exception is the iptables init container (root, NET_ADMIN and NET_RAW in
the pod's own network namespace), documented in deploy/README.md; ``--no-iptables``
injects without it, so its pods need nothing beyond ``restricted``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from sidecar.inject import INIT_NAME, SIDECAR_NAME, InjectOptions, inject_documents, templates
from sidecar.manifest_io import parse
from tests.support import ROOT
from tests.support.kustomize_lite import DEPLOY, render
from tests.support.pod_security import (
    container_findings,
    containers,
    hardening_findings,
    pod_findings,
)

MANIFESTS = ROOT / "tests" / "manifests"
KUSTOMIZATIONS = sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml"))
MODES = {
    "native": InjectOptions(),
    "legacy": InjectOptions(legacy=True),
    "no-iptables": InjectOptions(iptables=False),
}
INIT_EXCEPTION = {
    "capabilities add ['NET_ADMIN', 'NET_RAW']",
    "runAsNonRoot is not true",
    "runAsUser is 0",
}


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for obj in objects:
        for template, name, _ in templates(obj):
            found.append((name, template.get("spec") or {}))
    return found


@pytest.mark.parametrize(
    "directory", KUSTOMIZATIONS, ids=[str(k.relative_to(DEPLOY)) for k in KUSTOMIZATIONS]
)
def test_every_deployed_pod_is_restricted(directory: Path) -> None:
    specs = pod_specs(render(directory))
    assert specs
    findings = []
    for name, spec in specs:
        findings += [f"{name}: {f}" for f in pod_findings(spec)]
        for container in containers(spec):
            where = f"{name} {container['name']}"
            findings += [f"{where}: {f}" for f in container_findings(spec, container)]
            findings += [f"{where}: {f}" for f in hardening_findings(container)]
    assert findings == []


def _injected(mode: str) -> list[tuple[str, dict[str, Any]]]:
    injected = []
    for path in sorted(MANIFESTS.iterdir()):
        documents = json.loads(json.dumps(parse(path.read_text()).documents))
        inject_documents(documents, MODES[mode])
        for document in documents:
            for item in document.get("items", [document]):
                for version in ("1.29.0", "1.33.0"):
                    kubernetes_validate.validate(item, version, strict=True)
        injected += pod_specs(documents)
    return injected


@pytest.mark.parametrize("mode", MODES)
def test_injected_proxy_is_restricted_and_init_is_the_documented_exception(mode: str) -> None:
    checked = 0
    for name, spec in _injected(mode):
        for container in containers(spec):
            findings = container_findings(spec, container)
            if container["name"] == SIDECAR_NAME:
                assert findings + hardening_findings(container) == [], name
                checked += 1
            elif container["name"] == INIT_NAME:
                assert mode != "no-iptables"
                assert set(findings) == INIT_EXCEPTION, (name, findings)
                assert container["securityContext"]["privileged"] is False
    assert checked >= 4


def test_the_checker_finds_what_restricted_forbids() -> None:
    spec = {
        "hostNetwork": True,
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [{"name": "c", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}],
    }
    found = pod_findings(spec) + container_findings(spec, spec["containers"][0])
    assert found == [
        "hostNetwork",
        "volume h is ['hostPath']",
        "allowPrivilegeEscalation is not false",
        "capabilities do not drop ALL",
        "capabilities add ['SYS_ADMIN']",
        "runAsNonRoot is not true",
        "seccompProfile is None",
    ]
