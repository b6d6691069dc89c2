"""Pod injection as a pure rewrite: manifest in, manifest out, and back.

Every change to a pod template is a JSON Patch operation (RFC 6902) applied in
order; the inverse of each is recorded in the annotation ``sidetrace.io/injected``
so ``uninject`` restores the template exactly, and the admission webhook answers
the very same operations as its patch. The operations work on plain dicts and on
ruamel.yaml's round-trip maps alike, so comments and key order survive.

All annotations are read and checked before anything is written: an invalid one
raises ``InjectError`` naming the object and the annotation, and leaves the
object untouched.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from sidecar.config import PROXY_UID, SidecarConfig
from sidecar.export_target import GRPC, HTTP_PROTOBUF
from sidecar.iptables_rules import PortSpecError, parse_ports
from sidecar.resource import RESOURCE_ENV

PREFIX = "sidetrace.io/"
INJECT = PREFIX + "inject"
RECORD = PREFIX + "injected"
SKIP_REASON = PREFIX + "skip-reason"
# A label on injected pods: the collector's NetworkPolicy admits only them.
PROXY_LABEL = PREFIX + "proxy"
SERVICE_NAME = PREFIX + "service-name"
INBOUND_PORTS = PREFIX + "inbound-ports"
SKIP_INBOUND_PORTS = PREFIX + "skip-inbound-ports"
SKIP_OUTBOUND_PORTS = PREFIX + "skip-outbound-ports"
GRPC_PORTS = PREFIX + "grpc-ports"
OPAQUE_PORTS = PREFIX + "opaque-ports"
SAMPLING_RATIO = PREFIX + "sampling-ratio"
COLLECTOR = PREFIX + "collector"
# OTLP protocol of the export: http/protobuf (the sidecar's default) or grpc
COLLECTOR_PROTOCOL = PREFIX + "collector-protocol"
PROTOCOL_ENV = "OTEL_EXPORTER_OTLP_PROTOCOL"
# the collector's (and any OpenTelemetry Collector's) OTLP ports
OTLP_GRPC_PORT, OTLP_HTTP_PORT = 4317, 4318
# http.route templates, comma-separated ("/users/{id},/orders/{id}/items"): one --route each
ROUTES = PREFIX + "routes"
RESOURCE_ANNOTATIONS = {
    PREFIX + "proxy-cpu-request": ("requests", "cpu"),
    PREFIX + "proxy-cpu-limit": ("limits", "cpu"),
    PREFIX + "proxy-memory-request": ("requests", "memory"),
    PREFIX + "proxy-memory-limit": ("limits", "memory"),
}
USER_ANNOTATIONS = frozenset(
    {
        INJECT,
        SERVICE_NAME,
        INBOUND_PORTS,
        SKIP_INBOUND_PORTS,
        SKIP_OUTBOUND_PORTS,
        GRPC_PORTS,
        OPAQUE_PORTS,
        SAMPLING_RATIO,
        COLLECTOR,
        COLLECTOR_PROTOCOL,
        ROUTES,
        *RESOURCE_ANNOTATIONS,
    }
)
OWN_ANNOTATIONS = frozenset({RECORD, SKIP_REASON})

SIDECAR_NAME = "sidetrace-proxy"
INIT_NAME = "sidetrace-init"
INBOUND_PORT = SidecarConfig.inbound_port
OUTBOUND_PORT = SidecarConfig.outbound_port
ADMIN_PORT = SidecarConfig.admin_port
DEFAULT_APP_PORT = 8080  # for pods that declare no port and set no inbound-ports
DEFAULT_RESOURCES = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"cpu": "1", "memory": "256Mi"},
}
CLIENT_VOLUME = "sidetrace-collector-client"
CLIENT_DIR = "/var/run/sidetrace/collector"
RUNTIME_DEFAULT = {"type": "RuntimeDefault"}
SCRAPE_ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(ADMIN_PORT),
    "prometheus.io/path": "/metrics",
}

# Where each workload kind keeps its pod template, as JSON Pointer tokens.
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
_ROUTE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+;=:@%/{}-]{0,511}$")
_HOST_PORT = re.compile(r"^(?:https?://)?[A-Za-z0-9._-]+:(\d{1,5})$")


class InjectError(ValueError):
    """A manifest that cannot be injected; the message names object and annotation."""


@dataclass(frozen=True)
class InjectOptions:
    """Choices made by whoever injects (CLI flags or the webhook's configuration)."""

    image: str = "sidetrace-sidecar:0.1.0"  # the slim image (deploy/Dockerfile --target sidecar)
    # The collector's OTLP/HTTP port: the sidecar's default protocol (no grpcio loaded).
    collector: str = f"https://sidetrace-collector.sidetrace.svc:{OTLP_HTTP_PORT}"
    # The Secret (in the pod's namespace) with the collector's CA (ca.crt) and the
    # bearer token (token); mounted optional, so a pod starts without it and the
    # sidecar logs and counts the refused exports. "" mounts nothing.
    collector_secret: str = "sidetrace-collector-client"
    legacy: bool = False
    iptables: bool = True
    proxy_uid: int = PROXY_UID
    image_pull_policy: str = "IfNotPresent"


@dataclass(frozen=True)
class Defaults:
    """Annotations that apply where a pod sets none (a namespace's, via the webhook)."""

    annotations: dict[str, str] = field(default_factory=dict)
    source: str = ""

    @classmethod
    def from_namespace(cls, name: str, annotations: dict[str, Any]) -> Defaults:
        """The namespace's pod-level sidetrace annotations (``inject`` is its label's job)."""
        picked = {
            k: str(v) for k, v in annotations.items() if k in USER_ANNOTATIONS and k != INJECT
        }
        return cls(picked, f"namespace {name}")


@dataclass
class Outcome:
    """What happened to one pod template."""

    object_name: str
    injected: bool = False
    skip_reason: str = ""
    warnings: list[str] = field(default_factory=list)
    patch: list[dict[str, Any]] = field(default_factory=list)


# --- JSON Patch on dicts and ruamel maps, recording inverses -----------------


def _tokens(path: str) -> list[str]:
    if path == "":
        return []
    return [t.replace("~1", "/").replace("~0", "~") for t in path.split("/")[1:]]


def pointer(*tokens: str | int) -> str:
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


def _parent(doc: Any, path: str) -> tuple[Any, str]:
    tokens = _tokens(path)
    node = doc
    for token in tokens[:-1]:
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node, tokens[-1]


def apply_op(doc: Any, op: dict[str, Any]) -> dict[str, Any]:
    """Apply one add/remove/replace operation in place; return its inverse."""
    parent, key = _parent(doc, op["path"])
    kind = op["op"]
    if isinstance(parent, list):
        index = len(parent) if key == "-" else int(key)
        path = op["path"] if key != "-" else op["path"][:-1] + str(index)
        if kind == "add":
            parent.insert(index, copy.deepcopy(op["value"]))
            return {"op": "remove", "path": path}
        old = parent[index]
        if kind == "remove":
            del parent[index]
            return {"op": "add", "path": path, "value": _plain(old)}
        parent[index] = copy.deepcopy(op["value"])
        return {"op": "replace", "path": path, "value": _plain(old)}
    if kind == "add" and key not in parent:
        parent[key] = copy.deepcopy(op["value"])
        return {"op": "remove", "path": op["path"]}
    old = parent[key]
    if kind == "remove":
        del parent[key]
        return {"op": "add", "path": op["path"], "value": _plain(old)}
    parent[key] = copy.deepcopy(op["value"])
    return {"op": "replace", "path": op["path"], "value": _plain(old)}


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a value that may be a ruamel node."""
    return json.loads(json.dumps(value))


# --- reading the pod template --------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Everything the annotations decide, parsed and checked."""

    service_name: str
    app_port: int | None
    inbound_ports: tuple[str, ...]
    skip_inbound_ports: tuple[str, ...]
    skip_outbound_ports: tuple[str, ...]
    grpc_ports: tuple[str, ...]
    opaque_ports: tuple[str, ...]
    sampling_ratio: str | None
    collector: str
    service_version: str | None
    resources: dict[str, dict[str, str]]
    routes: tuple[str, ...] = ()
    collector_protocol: str | None = None  # None: the sidecar's default


def _named_ports(spec: Any) -> dict[str, int]:
    names = {}
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name"):
                names[str(port["name"])] = int(port["containerPort"])
    return names


def _first_port(spec: Any) -> int | None:
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            if str(port.get("protocol", "TCP")) == "TCP":
                return int(port["containerPort"])
    return None


def _ports(value: str, names: dict[str, int] | None) -> tuple[str, ...]:
    """Port items for iptables; container port names resolve when ``names`` is given."""
    items = []
    for raw in value.split(","):
        item = raw.strip()
        if names is not None and item in names:
            item = str(names[item])
        if item:
            items.append(item)
    return parse_ports(",".join(items))


def read_settings(
    template: Any,
    object_name: str,
    options: InjectOptions,
    fallback_name: str,
    defaults: Defaults | None = None,
) -> Settings:
    """Parse and check every ``sidetrace.io/`` annotation of a pod template.

    ``defaults`` (the namespace's annotations, from the webhook) apply where the
    pod sets nothing; errors in them name the namespace they came from.
    """
    metadata = template.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    spec = template.get("spec") or {}
    defaults = defaults or Defaults()

    def fail(key: str, problem: str) -> InjectError:
        source = "" if key in annotations else f" (default of {defaults.source})"
        return InjectError(f"{object_name}: annotation {key}{source}: {problem}")

    for key in annotations:
        if str(key).startswith(PREFIX) and key not in USER_ANNOTATIONS | OWN_ANNOTATIONS:
            raise fail(key, f"unknown annotation (known: {', '.join(sorted(USER_ANNOTATIONS))})")
    merged = {**defaults.annotations, **annotations}
    value = {k: str(v).strip() for k, v in merged.items() if k in USER_ANNOTATIONS}
    names = _named_ports(spec)

    def ports(key: str, allow_names: bool, allow_ranges: bool = True) -> tuple[str, ...]:
        if key not in value:
            return ()
        try:
            items = _ports(value[key], names if allow_names else None)
        except PortSpecError as exc:
            hint = " or a container port name" if allow_names else ""
            raise fail(key, f"{exc}{hint}") from None
        if not allow_ranges and any(":" in item for item in items):
            raise fail(key, f"{value[key]!r}: list single ports here, not ranges")
        return items

    version = labels.get("app.kubernetes.io/version")
    service = value.get(SERVICE_NAME) or str(
        labels.get("app.kubernetes.io/name") or labels.get("app") or fallback_name
    )
    if not _SERVICE.match(service):
        raise fail(SERVICE_NAME, f"{service!r} is not a valid service name")
    ratio = value.get(SAMPLING_RATIO)
    if ratio is not None:
        try:
            if not 0.0 <= float(ratio) <= 1.0:
                raise ValueError
        except ValueError:
            raise fail(SAMPLING_RATIO, f"{ratio!r} is not a number from 0 to 1") from None
    collector = value.get(COLLECTOR, options.collector)
    match = _HOST_PORT.match(collector)
    if not match or not 1 <= int(match.group(1)) <= 65535:
        raise fail(COLLECTOR, f"{collector!r} is not HOST:PORT")
    protocol = value.get(COLLECTOR_PROTOCOL)
    if protocol is not None and protocol not in (HTTP_PROTOBUF, GRPC):
        raise fail(COLLECTOR_PROTOCOL, f"{protocol!r} is not {HTTP_PROTOBUF} or {GRPC}")
    if protocol == GRPC and int(match.group(1)) == OTLP_HTTP_PORT:
        raise fail(
            COLLECTOR_PROTOCOL,
            f"{GRPC} to {collector!r}, the collector's OTLP/HTTP port: "
            f"set {COLLECTOR} to its gRPC port ({OTLP_GRPC_PORT}) too",
        )
    resources = copy.deepcopy(DEFAULT_RESOURCES)
    for key, (section, resource) in RESOURCE_ANNOTATIONS.items():
        if key in value:
            if not _QUANTITY.match(value[key]):
                raise fail(key, f"{value[key]!r} is not a Kubernetes quantity like 100m or 128Mi")
            resources[section][resource] = value[key]
    inbound = ports(INBOUND_PORTS, allow_names=True)
    app_port = int(inbound[0].split(":")[0]) if inbound else _first_port(spec)
    routes = tuple(r.strip() for r in value.get(ROUTES, "").split(",") if r.strip())
    for route in routes:
        if not _ROUTE.match(route):
            raise fail(ROUTES, f"{route!r} is not a path template like /users/{{id}}")
    return Settings(
        service_name=service,
        app_port=app_port,
        inbound_ports=inbound,
        skip_inbound_ports=ports(SKIP_INBOUND_PORTS, allow_names=True),
        skip_outbound_ports=ports(SKIP_OUTBOUND_PORTS, allow_names=False),
        grpc_ports=ports(GRPC_PORTS, allow_names=True, allow_ranges=False),
        opaque_ports=ports(OPAQUE_PORTS, allow_names=True, allow_ranges=False),
        sampling_ratio=ratio,
        collector=collector,
        service_version=str(version) if version else None,
        resources=resources,
        routes=routes,
        collector_protocol=protocol,
    )


def _inject_annotation(template: Any, object_name: str) -> str | None:
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    if INJECT not in annotations:
        return None
    value = str(annotations[INJECT]).strip()
    if value not in ("enabled", "disabled"):
        raise InjectError(
            f"{object_name}: annotation {INJECT}: {value!r} is not enabled or disabled"
        )
    return value


def skip_reason(template: Any, object_name: str) -> str:
    """Why this pod must not be injected, or '' if it may be."""
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    spec = template.get("spec") or {}
    names = [
        c.get("name") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
    ]
    if RECORD in annotations or SIDECAR_NAME in names:
        return "already injected"
    if _inject_annotation(template, object_name) == "disabled":
        return f"opted out by annotation {INJECT}=disabled"
    if str(((template.get("metadata") or {}).get("labels") or {}).get(INJECT)) == "disabled":
        return f"opted out by label {INJECT}=disabled"
    if spec.get("hostNetwork"):
        return "hostNetwork pods share the node's network; the redirect would capture node traffic"
    return ""


# --- what injection adds ---------------------------------------------------------


def _csv(items: tuple[str, ...]) -> str:
    return ",".join(i.replace(":", "-") for i in items)


def sidecar_container(settings: Settings, options: InjectOptions) -> dict[str, Any]:
    args = [
        f"--inbound-port={INBOUND_PORT}",
        f"--outbound-port={OUTBOUND_PORT}",
        f"--admin-port={ADMIN_PORT}",
        f"--collector={settings.collector}",
    ]
    if options.collector_secret:
        args.append(f"--collector-ca={CLIENT_DIR}/ca.crt")
        args.append(f"--collector-token-file={CLIENT_DIR}/token")
    args.append(f"--app-port={settings.app_port or DEFAULT_APP_PORT}")
    if settings.grpc_ports:
        args.append(f"--grpc-ports={_csv(settings.grpc_ports)}")
    if settings.opaque_ports:
        args.append(f"--opaque-ports={_csv(settings.opaque_ports)}")
    if settings.sampling_ratio is not None:
        args.append(f"--sampling-ratio={settings.sampling_ratio}")
    args.extend(f"--route={route}" for route in settings.routes)
    env: list[dict[str, Any]] = []
    for variable, field_path in RESOURCE_ENV.values():
        if field_path:
            env.append({"name": variable, "valueFrom": {"fieldRef": {"fieldPath": field_path}}})
        elif variable == "SIDETRACE_SERVICE_NAME":
            env.append({"name": variable, "value": settings.service_name})
        elif variable == "SIDETRACE_SERVICE_VERSION" and settings.service_version:
            env.append({"name": variable, "value": settings.service_version})
    if settings.collector_protocol:
        env.append({"name": PROTOCOL_ENV, "value": settings.collector_protocol})
    container: dict[str, Any] = {
        "name": SIDECAR_NAME,
        "image": options.image,
        "imagePullPolicy": options.image_pull_policy,
        "command": ["sidetrace", "sidecar"],
        "args": args,
        "env": env,
        "ports": [{"name": "sidetrace-admin", "containerPort": ADMIN_PORT, "protocol": "TCP"}],
        # /healthz, not /readyz: readiness waits for the app, which (native mode)
        # only starts once this startup probe has passed.
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": ADMIN_PORT},
            "periodSeconds": 1,
            "failureThreshold": 120,
        },
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": ADMIN_PORT}, "periodSeconds": 10},
        "resources": settings.resources,
        "securityContext": {
            "runAsUser": options.proxy_uid,
            "runAsGroup": options.proxy_uid,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": RUNTIME_DEFAULT,
        },
    }
    if options.collector_secret:
        mount = {"name": CLIENT_VOLUME, "mountPath": CLIENT_DIR, "readOnly": True}
        container["volumeMounts"] = [mount]
    if settings.app_port is not None:
        # Ready when the app's port answers; a pod serving no port is ready without it.
        probe = {"httpGet": {"path": "/readyz", "port": ADMIN_PORT}, "periodSeconds": 5}
        container["readinessProbe"] = probe
    if not options.legacy:
        container["restartPolicy"] = "Always"
    return container


def init_container(settings: Settings, options: InjectOptions) -> dict[str, Any]:
    args = [
        f"--proxy-uid={options.proxy_uid}",
        f"--inbound-port={INBOUND_PORT}",
        f"--outbound-port={OUTBOUND_PORT}",
        f"--admin-port={ADMIN_PORT}",
    ]
    for flag, items in (
        ("--inbound-ports", settings.inbound_ports),
        ("--skip-inbound-ports", settings.skip_inbound_ports),
        ("--skip-outbound-ports", settings.skip_outbound_ports),
    ):
        if items:
            args.append(f"{flag}={_csv(items)}")
    return {
        "name": INIT_NAME,
        "image": options.image,
        "imagePullPolicy": options.image_pull_policy,
        "command": ["sidetrace", "iptables-init"],
        "args": args,
        "resources": {
            "requests": {"cpu": "10m", "memory": "32Mi"},
            "limits": {"cpu": "100m", "memory": "64Mi"},
        },
        # The one container outside the Pod Security "restricted" profile (root and
        # NET_ADMIN/NET_RAW, for the pod's own network namespace only; it exits
        # before the app starts). `--no-iptables` injects without it.
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": False,
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": False,  # iptables takes its lock under /run
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "seccompProfile": RUNTIME_DEFAULT,
        },
    }


PROXY_ENV = {
    "HTTP_PROXY": f"http://127.0.0.1:{OUTBOUND_PORT}",
    "http_proxy": f"http://127.0.0.1:{OUTBOUND_PORT}",
    "NO_PROXY": "localhost,127.0.0.1",
    "no_proxy": "localhost,127.0.0.1",
}


def _remapped_name(name: str) -> str:
    """A different valid port name for the app once the sidecar takes ``name``."""
    stem = name[:10].rstrip("-")
    return f"{stem}-app"


def _proxy_mode_ops(
    spec: Any, settings: Settings, sidecar: dict[str, Any], warnings: list[str]
) -> list[dict[str, Any]]:
    """Without iptables: apps use the sidecar as HTTP proxy, the app port's name moves to it."""
    ops: list[dict[str, Any]] = []
    for index, container in enumerate(spec.get("containers") or []):
        env = container.get("env")
        present = {e.get("name") for e in env or []}
        extra = [{"name": k, "value": v} for k, v in PROXY_ENV.items() if k not in present]
        if env is None:
            ops.append(
                {"op": "add", "path": pointer("spec", "containers", index, "env"), "value": extra}
            )
        else:
            for offset, item in enumerate(extra):
                path = pointer("spec", "containers", index, "env", len(env) + offset)
                ops.append({"op": "add", "path": path, "value": item})
    inbound = {"containerPort": INBOUND_PORT, "protocol": "TCP"}
    named = None
    for c_index, container in enumerate(spec.get("containers") or []):
        for p_index, port in enumerate(container.get("ports") or []):
            if settings.app_port is not None and int(port["containerPort"]) == settings.app_port:
                named = (c_index, p_index, port.get("name"))
                break
        if named:
            break
    if named and named[2]:
        c_index, p_index, name = named
        inbound["name"] = str(name)
        path = pointer("spec", "containers", c_index, "ports", p_index, "name")
        ops.append({"op": "replace", "path": path, "value": _remapped_name(str(name))})
        container = spec["containers"][c_index]
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            for handler in ("httpGet", "tcpSocket"):
                target = (container.get(probe) or {}).get(handler) or {}
                if target.get("port") == name:
                    port_path = pointer("spec", "containers", c_index, probe, handler, "port")
                    ops.append({"op": "replace", "path": port_path, "value": settings.app_port})
    else:
        inbound["name"] = "sidetrace-in"
        warnings.append(
            f"no named container port for app port {settings.app_port}: Services must target "
            f"port {INBOUND_PORT} (name sidetrace-in) to pass through the sidecar"
        )
    sidecar["ports"].insert(0, inbound)
    return ops


def plan(template: Any, settings: Settings, options: InjectOptions, warnings: list[str]) -> list:
    """The JSON Patch (relative to the pod template) that injects this template."""
    spec = template.get("spec") or {}
    sidecar = sidecar_container(settings, options)
    ops: list[dict[str, Any]] = []
    if not options.iptables:
        ops += _proxy_mode_ops(spec, settings, sidecar, warnings)
    init_list = spec.get("initContainers")
    init_count = len(init_list or [])
    new_inits = []
    if options.iptables:
        new_inits.append(init_container(settings, options))
    if options.legacy:
        # The redirect goes last so the pod's own init containers run without it.
        first_init = init_count
        count = len(spec.get("containers") or [])
        ops.append({"op": "add", "path": pointer("spec", "containers", count), "value": sidecar})
    else:
        # Native sidecar: the redirect first, then the proxy, then the pod's own init containers.
        first_init = 0
        new_inits.append(sidecar)
    if new_inits and init_list is None:
        ops.append({"op": "add", "path": "/spec/initContainers", "value": []})
    for offset, container in enumerate(new_inits):
        path = pointer("spec", "initContainers", first_init + offset)
        ops.append({"op": "add", "path": path, "value": container})
    if options.collector_secret:
        ops += _client_volume_ops(spec, options.collector_secret)
    return ops


def _client_volume_ops(spec: Any, secret: str) -> list[dict[str, Any]]:
    """The collector client Secret as a volume (optional: pods start without it)."""
    volume = {"name": CLIENT_VOLUME, "secret": {"secretName": secret, "optional": True}}
    volumes = spec.get("volumes")
    if volumes is None:
        return [{"op": "add", "path": "/spec/volumes", "value": [volume]}]
    return [{"op": "add", "path": pointer("spec", "volumes", len(volumes)), "value": volume}]


# --- whole pod templates, objects and streams --------------------------------------


def metadata_ops(template: Any, section: str, key: str, value: str) -> list[dict[str, Any]]:
    """Operations setting ``metadata.<section>[key]`` (labels or annotations), creating maps."""
    ops = []
    metadata = template.get("metadata")
    if metadata is None:
        ops.append({"op": "add", "path": "/metadata", "value": {}})
    if metadata is None or metadata.get(section) is None:
        ops.append({"op": "add", "path": pointer("metadata", section), "value": {}})
    ops.append({"op": "add", "path": pointer("metadata", section, key), "value": value})
    return ops


def inject_template(
    template: MutableMapping[str, Any],
    object_name: str,
    options: InjectOptions,
    fallback_name: str,
    defaults: Defaults | None = None,
) -> Outcome:
    """Inject one pod template in place (or leave it and say why)."""
    outcome = Outcome(object_name)
    outcome.skip_reason = skip_reason(template, object_name)
    if outcome.skip_reason:
        return outcome
    settings = read_settings(template, object_name, options, fallback_name, defaults)
    if settings.app_port is None:
        outcome.warnings.append(
            f"no container port: the sidecar assumes app port {DEFAULT_APP_PORT} "
            f"(set {INBOUND_PORTS} if the app serves another)"
        )
    forward = plan(template, settings, options, outcome.warnings)
    undo = [apply_op(template, op) for op in forward]
    label_ops = metadata_ops(template, "labels", PROXY_LABEL, "enabled")
    undo += [apply_op(template, op) for op in label_ops]
    # Prometheus scrapes the sidecar's admin port, unless the pod names its own target.
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    if not any(key in annotations for key in SCRAPE_ANNOTATIONS):
        for key, value in SCRAPE_ANNOTATIONS.items():
            ops = metadata_ops(template, "annotations", key, value)
            undo += [apply_op(template, op) for op in ops]
            label_ops += ops
    mode = {"mode": "legacy" if options.legacy else "native", "iptables": options.iptables}
    record_ops = metadata_ops(template, "annotations", RECORD, "")
    undo += [apply_op(template, op) for op in record_ops]
    undo.reverse()
    record = json.dumps({**mode, "undo": undo}, separators=(",", ":"))
    template["metadata"]["annotations"][RECORD] = record
    record_ops[-1]["value"] = record
    outcome.injected = True
    outcome.patch = forward + label_ops + record_ops
    return outcome


def uninject_template(template: MutableMapping[str, Any], object_name: str) -> Outcome:
    """Undo an injection in place, from the record it left."""
    outcome = Outcome(object_name)
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    if RECORD not in annotations:
        outcome.skip_reason = "not injected"
        return outcome
    try:
        undo = json.loads(str(annotations[RECORD]))["undo"]
        checked = _plain(template)
        for op in undo:
            apply_op(checked, op)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise InjectError(
            f"{object_name}: annotation {RECORD}: unreadable record ({exc})"
        ) from None
    for op in undo:
        apply_op(template, op)
    outcome.injected = True
    return outcome


def fallback_service_name(obj: Any) -> str:
    """The service name for pods without a name label: the object's (generate) name."""
    metadata = obj.get("metadata") or {}
    name = str(metadata.get("name") or metadata.get("generateName") or "")
    return name.rstrip("-") or "unknown_service"


def object_name(obj: Any) -> str:
    metadata = obj.get("metadata") or {}
    name = metadata.get("name") or metadata.get("generateName") or "<unnamed>"
    namespace = metadata.get("namespace")
    where = f" in namespace {namespace}" if namespace else ""
    return f"{obj.get('kind', '<no kind>')}/{name}{where}"


def templates(obj: Any) -> Iterator[tuple[Any, str, str]]:
    """Each pod template in an object (Lists recurse): (template, object name, fallback)."""
    if not isinstance(obj, MutableMapping):
        return
    kind = str(obj.get("kind", ""))
    if kind.endswith("List") and isinstance(obj.get("items"), list):
        for item in obj["items"]:
            yield from templates(item)
        return
    path = TEMPLATE_PATHS.get(kind)
    if path is None:
        return
    node: object = obj
    for token in path:
        node = node.get(token) if isinstance(node, MutableMapping) else None
    if isinstance(node, MutableMapping):
        yield node, object_name(obj), fallback_service_name(obj)


Transform = Callable[[MutableMapping[str, Any], str, str], Outcome]


def transform_documents(documents: list[Any], transform: Transform) -> list[Outcome]:
    """Apply ``transform`` to every template of every document, all or nothing.

    Each template is first transformed on a plain copy so an error anywhere
    leaves every document as it was.
    """
    found = [found for doc in documents for found in templates(doc)]
    for template, name, fallback in found:
        transform(_plain(template), name, fallback)
    return [transform(template, name, fallback) for template, name, fallback in found]


def inject_documents(documents: list[Any], options: InjectOptions) -> list[Outcome]:
    return transform_documents(
        documents, lambda t, name, fallback: inject_template(t, name, options, fallback)
    )


def uninject_documents(documents: list[Any]) -> list[Outcome]:
    return transform_documents(documents, lambda t, name, _: uninject_template(t, name))
