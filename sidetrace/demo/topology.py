"""The sample system: which services exist, how they behave, whom they call, on which ports.

frontend → catalog, orders; orders → payments (gRPC), inventory; inventory → a
PostgreSQL database seen only through the client spans inventory records.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from runtime.loopback_ports import free_port
from sidetrace.demo.behaviour import Behaviour, IncidentSchedule, Latency


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    protocol: str  # "http" (Starlette) or "grpc" (grpcio)
    calls: tuple[str, ...]
    median_ms: float
    sigma: float
    error_rate: float
    # The app's route templates, given to its sidecar as ``--route`` (http.route and
    # span names come only from configured routes, never guessed from paths).
    routes: tuple[str, ...] = ()


# Leaves first: a service starts after everything it calls.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("payments", "grpc", (), median_ms=25, sigma=0.45, error_rate=0.001),
    ServiceSpec(
        "inventory",
        "http",
        (),
        median_ms=3,
        sigma=0.5,
        error_rate=0.004,
        routes=("/reservations", "/stock/{sku}"),
    ),
    ServiceSpec(
        "catalog",
        "http",
        (),
        median_ms=8,
        sigma=0.7,
        error_rate=0.004,
        routes=("/items", "/items/{item}"),
    ),
    ServiceSpec(
        "orders",
        "http",
        ("payments", "inventory"),
        median_ms=4,
        sigma=0.5,
        error_rate=0.002,
        routes=("/orders", "/orders/{order}"),
    ),
    ServiceSpec(
        "frontend",
        "http",
        ("catalog", "orders"),
        median_ms=2,
        sigma=0.6,
        error_rate=0.002,
        routes=("/", "/products", "/products/{item}", "/checkout", "/orders/{order}"),
    ),
)
SERVICE_NAMES = tuple(s.name for s in SERVICES)
INCIDENT_SERVICE = "payments"
# The virtual node inventory's database client spans point at ("postgresql/inventory" on the map).
DATABASE = {"db.system": "postgresql", "db.name": "inventory", "server.port": 5432}


@dataclass(frozen=True)
class ServicePorts:
    """The app's own port and its sidecar's four ports, all on 127.0.0.1."""

    app: int
    inbound: int
    outbound: int
    admin: int

    @classmethod
    def allocate(cls) -> ServicePorts:
        return cls(free_port(), free_port(), free_port(), free_port())


@dataclass(frozen=True)
class AppConfig:
    """Everything one app process needs, handed over as JSON on its command line."""

    service: str
    port: int
    proxy_port: int  # its own sidecar's outbound listener
    upstreams: dict[str, int] = field(default_factory=dict)  # name -> that sidecar's inbound
    collector: str = ""  # host:port of OTLP/gRPC, for spans the app records itself
    median_ms: float = 5.0
    sigma: float = 0.5
    error_rate: float = 0.0
    incident: dict[str, float] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> AppConfig:
        return cls(**json.loads(text))

    def behaviour(self) -> Behaviour:
        incident = IncidentSchedule(**self.incident) if self.incident else None
        return Behaviour(Latency(self.median_ms, self.sigma), self.error_rate, incident)


def app_configs(
    ports: dict[str, ServicePorts], collector: str, incident: IncidentSchedule
) -> dict[str, AppConfig]:
    """The configuration of every app, wired to the sidecars' ports."""
    configs = {}
    for spec in SERVICES:
        mine = ports[spec.name]
        configs[spec.name] = AppConfig(
            service=spec.name,
            port=mine.app,
            proxy_port=mine.outbound,
            upstreams={name: ports[name].inbound for name in spec.calls},
            collector=collector,
            median_ms=spec.median_ms,
            sigma=spec.sigma,
            error_rate=spec.error_rate,
            incident=asdict(incident) if spec.name == INCIDENT_SERVICE else None,
        )
    return configs
