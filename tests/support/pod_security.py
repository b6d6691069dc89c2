"""The Pod Security Standards' ``restricted`` profile as a function: a pod spec in, findings out.

Follows the profile's checks (Kubernetes 1.29+, baseline included): host
namespaces, privileged, capabilities, hostPath and other volume types, host
ports, seccomp, privilege escalation, non-root. sidetrace's own containers are
held to two more rules of ``deploy/``: a read-only root filesystem and resource
requests and limits.
"""

from __future__ import annotations

from typing import Any

ALLOWED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip
SECCOMP_OK = {"RuntimeDefault", "Localhost"}


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def container_findings(spec: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """What keeps one container of ``spec`` from the restricted profile."""
    pod_sc = spec.get("securityContext") or {}
    sc = container.get("securityContext") or {}
    found = []
    if sc.get("privileged"):
        found.append("privileged")
    if sc.get("allowPrivilegeEscalation") is not False:
        found.append("allowPrivilegeEscalation is not false")
    capabilities = sc.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        found.append("capabilities do not drop ALL")
    added = set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}
    if added:
        found.append(f"capabilities add {sorted(added)}")
    run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    if run_as_non_root is not True:
        found.append("runAsNonRoot is not true")
    if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
        found.append("runAsUser is 0")
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    if seccomp not in SECCOMP_OK:
        found.append(f"seccompProfile is {seccomp!r}")
    if any(p.get("hostPort") for p in container.get("ports") or []):
        found.append("hostPort")
    return found


def pod_findings(spec: dict[str, Any]) -> list[str]:
    """Pod-level findings (host namespaces, volume types, sysctls)."""
    found = [f"{key}" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            found.append(f"volume {volume['name']} is {sorted(kinds)}")
    pod_sc = spec.get("securityContext") or {}
    if (pod_sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append("pod seccompProfile Unconfined")
    return found


def hardening_findings(container: dict[str, Any]) -> list[str]:
    """deploy/'s own rules beyond the profile: read-only root, requests and limits."""
    found = []
    if (container.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True:
        found.append("root filesystem is writable")
    resources = container.get("resources") or {}
    if not resources.get("requests") or not (resources.get("limits") or {}).get("memory"):
        found.append("no resource requests or memory limit")
    return found
