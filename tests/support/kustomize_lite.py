"""A small kustomize: the subset ``deploy/`` uses, for machines without kubectl.

Supported: ``resources`` (files and directories), ``patches`` given by ``path``
(strategic merge with the merge keys of the lists we patch), ``namespace`` and
``images``. Anything else in a kustomization is refused rather than ignored.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from tests.support import ROOT

DEPLOY = ROOT / "deploy"
SUPPORTED = {"apiVersion", "kind", "resources", "patches", "namespace", "images"}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
}
# Strategic-merge keys of the lists the patches touch (from the Kubernetes schemas).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}


class KustomizeError(ValueError):
    pass


def by_key(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Rendered objects by (kind, name)."""
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects a kustomization directory builds."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise KustomizeError(f"{directory}: unsupported fields {sorted(unknown)}")
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        if path.is_dir():
            objects += render(path)
        else:
            objects += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch_ref in kustomization.get("patches", []):
        if set(patch_ref) != {"path"}:
            raise KustomizeError(f"{directory}: only patches with a path are supported")
        patch = yaml.safe_load((directory / patch_ref["path"]).read_text())
        target = _find(objects, patch)
        merge(target, patch)
    namespace = kustomization.get("namespace")
    if namespace:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = namespace
    for image in kustomization.get("images", []):
        for container in _containers(objects):
            _set_image(container, image)
    return objects


def _find(objects: list[dict[str, Any]], patch: dict[str, Any]) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == patch["kind"] and obj["metadata"]["name"] == patch["metadata"]["name"]:
            return obj
    raise KustomizeError(f"patch target {patch['kind']}/{patch['metadata']['name']} not found")


def merge(base: dict[str, Any], patch: dict[str, Any]) -> None:
    """Strategic merge of ``patch`` into ``base``, in place."""
    for key, value in patch.items():
        current = base.get(key)
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(current, dict):
            merge(current, value)
        elif key in MERGE_KEYS and isinstance(value, list) and isinstance(current, list):
            # As kustomize does: items new to the list go first, in the patch's order.
            merge_key = MERGE_KEYS[key]
            added = []
            for item in value:
                match = next((c for c in current if c.get(merge_key) == item[merge_key]), None)
                if match is None:
                    added.append(copy.deepcopy(item))
                else:
                    merge(match, item)
            current[:0] = added
        else:
            base[key] = copy.deepcopy(value)


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    spec = obj.get("spec") or {}
    if obj["kind"] == "Pod":
        return spec
    if obj["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("spec")


def _containers(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for obj in objects:
        spec = _pod_spec(obj)
        if spec:
            found += spec.get("initContainers", []) + spec.get("containers", [])
    return found


def _set_image(container: dict[str, Any], image: dict[str, str]) -> None:
    name = container["image"].split("@")[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    if name != image["name"]:
        return
    container["image"] = image.get("newName", name) + (
        f"@{image['digest']}" if "digest" in image else f":{image['newTag']}"
    )
