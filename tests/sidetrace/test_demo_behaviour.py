"""The demo's traffic model: incident schedule, latency tail, error rate, route mix."""

from __future__ import annotations

import random
import statistics

import pytest

from sidetrace.demo.behaviour import Behaviour, IncidentSchedule, Latency
from sidetrace.demo.loadgen import ROUTES, pick_request
from sidetrace.demo.topology import SERVICE_NAMES, SERVICES, ServicePorts, app_configs

SCHEDULE = IncidentSchedule(epoch=1000.0, first_at_s=30, every_s=120, length_s=40)


@pytest.mark.parametrize(
    ("now", "active", "left"),
    [
        (1000.0, False, 30.0),  # before the first incident
        (1029.0, False, 1.0),
        (1030.0, True, 40.0),  # first incident starts
        (1069.0, True, 1.0),
        (1070.0, False, 80.0),  # over; next one at 1150
        (1150.0, True, 40.0),
        (1189.5, True, 0.5),
        (1190.0, False, 80.0),
    ],
)
def test_incident_schedule(now: float, active: bool, left: float) -> None:
    assert SCHEDULE.active(now) is active
    assert SCHEDULE.next_change(now) == (active, pytest.approx(left))


def test_no_incidents_when_period_is_zero() -> None:
    off = IncidentSchedule(epoch=0.0, every_s=0)
    assert not off.active(100.0)
    assert off.next_change(100.0)[0] is False


def test_latency_has_lognormal_median_and_long_tail() -> None:
    rng = random.Random(7)
    samples = sorted(Latency(median_ms=20, sigma=0.6).sample_ms(rng) for _ in range(20_000))
    median = statistics.median(samples)
    p99 = samples[int(len(samples) * 0.99)]
    assert 19 < median < 21
    assert p99 > 3.5 * median  # exp(2.326 * 0.6) ~ 4.0: a long tail, not a constant


def test_incident_slows_only_while_active() -> None:
    rng = random.Random(1)
    behaviour = Behaviour(Latency(10, 0.1), incident=SCHEDULE)
    calm = statistics.median(behaviour.delay_s(rng, 1010.0) for _ in range(500))
    slow = statistics.median(behaviour.delay_s(rng, 1040.0) for _ in range(500))
    assert calm < 0.015
    assert slow > 0.5


def test_error_rate_is_small_but_present() -> None:
    rng = random.Random(3)
    behaviour = Behaviour(Latency(1), error_rate=0.01)
    failures = sum(behaviour.fails(rng) for _ in range(50_000))
    assert 350 < failures < 650


def test_route_mix_reaches_every_route() -> None:
    rng = random.Random(5)
    seen = {pick_request(rng)[1].split("?")[0].rstrip("0123456789") for _ in range(2_000)}
    assert seen == {"/checkout", "/products", "/products/", "/orders/", "/"}
    assert sum(w for w, _, _ in ROUTES) == pytest.approx(1.0)


def test_app_configs_wire_each_service_to_its_upstreams_sidecars() -> None:
    ports = {
        name: ServicePorts(10 + i, 20 + i, 30 + i, 40 + i) for i, name in enumerate(SERVICE_NAMES)
    }
    configs = app_configs(ports, "127.0.0.1:4317", SCHEDULE)
    assert len(SERVICES) >= 5
    for spec in SERVICES:
        config = configs[spec.name]
        assert config.port == ports[spec.name].app
        assert config.proxy_port == ports[spec.name].outbound
        assert config.upstreams == {name: ports[name].inbound for name in spec.calls}
        assert (config.incident is not None) == (spec.name == "payments")
    assert set(configs["frontend"].upstreams) == {"catalog", "orders"}
    assert set(configs["orders"].upstreams) == {"payments", "inventory"}
