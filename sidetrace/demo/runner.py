"""``sidetrace demo`` from start to clean stop.

Order matters on the way down: the load stops first, then the apps and their
sidecars (which flush their last spans to the collector), then the collector
(which flushes into the store), the dashboard, and the store.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from dashboard import SLO_INTERVAL_S
from sidetrace.all_in_one import DataLayout, EmbeddedStack, StackPorts, check_ports_free
from sidetrace.demo.alert_watch import AlertWatch
from sidetrace.demo.behaviour import IncidentSchedule
from sidetrace.demo.loadgen import LoadGenerator
from sidetrace.demo.progress import (
    Progress,
    example_trace,
    format_line,
    incident_state,
    safe_count,
)
from sidetrace.demo.supervisor import Supervisor, log_tail
from sidetrace.demo.system import SampleSystem
from sidetrace.demo.topology import SERVICES
from tracestore.store import StoreError


@dataclass
class DemoOptions:
    data: Path
    ports: StackPorts
    duration: float | None = None
    reset: bool = False
    rate: float = 10.0
    incident_start: float = 30.0
    incident_every: float = 180.0
    incident_length: float = 45.0
    slo_files: list[str] = field(default_factory=list)
    slo_time_scale: float = 20.0


class Stop(Exception):
    """SIGTERM asks the demo to stop, exactly like Ctrl-C."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop


def run_demo(options: DemoOptions, progress: Progress | None = None) -> int:
    progress = progress or Progress()
    check_ports_free(options.ports)  # PortTaken names the port; nothing started yet
    layout = DataLayout(options.data)
    stack = EmbeddedStack(
        layout,
        options.ports,
        options.slo_files,
        slo_interval=slo_interval(options.slo_time_scale),
        slo_time_scale=options.slo_time_scale,
    )
    stack.take_data_folder(reset=options.reset)  # DataInUse if another process has it
    if options.reset:
        progress.say(f"--reset: emptied {layout.root}")
    signal.signal(signal.SIGTERM, _raise_stop)
    # Explicitly: a shell without job control starts background commands with SIGINT
    # ignored, and Python then leaves it ignored; Ctrl-C (kill -INT) must still stop us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    supervisor = Supervisor(layout.logs)
    load: LoadGenerator | None = None
    code = 0
    try:
        progress.say(f"sidetrace demo: data in {layout.root}")
        stack.start()
        _announce_stack(progress, stack, options)
        incident = IncidentSchedule(
            epoch=time.time(),
            first_at_s=options.incident_start,
            every_s=options.incident_every,
            length_s=options.incident_length,
        )
        system = SampleSystem(supervisor, stack.otlp_grpc, stack.otlp_http, incident)
        system.start()
        _announce_system(progress, system)
        load = LoadGenerator(system.entry_url, options.rate)
        load.start()
        progress.say(f"load: {options.rate:g} requests/s on the frontend; Ctrl-C stops the demo")
        code = _watch(options, stack, supervisor, load, incident, progress)
    except (KeyboardInterrupt, Stop):
        progress.say("stopping ...")
    finally:
        # Every child must be stopped: a second Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if load is not None:
            load.stop()
        killed = supervisor.stop()
        if killed:
            progress.say(f"killed after the grace period: {', '.join(killed)}")
        stack.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    progress.say(
        f"stopped every process. The data lives in {layout.root.resolve()}; browse it again "
        f"with: sidetrace all-in-one --data {layout.root}"
    )
    return code


def slo_interval(scale: float) -> float:
    """Evaluate SLOs often enough for windows compressed ``scale`` times (1 s at least)."""
    return max(1.0, min(SLO_INTERVAL_S, 60.0 / scale))


def _announce_stack(progress: Progress, stack: EmbeddedStack, options: DemoOptions) -> None:
    p = stack.ports
    progress.say(f"  store      embedded ClickHouse (chDB) in {stack.data.clickhouse}")
    progress.say(
        f"  collector  OTLP/gRPC 127.0.0.1:{p.grpc}  OTLP/HTTP 127.0.0.1:{p.http}  "
        f"admin http://127.0.0.1:{p.admin}/metrics"
    )
    progress.say(f"  dashboard  {stack.dashboard_url}")
    progress.say(
        f"             {stack.dashboard_url}/services/map  {stack.dashboard_url}/slos  "
        f"{stack.dashboard_url}/alerts"
    )
    for slo in options.slo_files:
        progress.say(f"  SLOs       {slo}")
    if options.slo_files and options.slo_time_scale != 1:
        progress.say(
            f"             windows compressed {options.slo_time_scale:g}x so alerts play out "
            f"in minutes (1h -> {3600 / options.slo_time_scale / 60:g} min)"
        )


def _announce_system(progress: Progress, system: SampleSystem) -> None:
    progress.say("  sample system (each app behind its own sidecar on 127.0.0.1):")
    for spec in SERVICES:
        p = system.ports[spec.name]
        calls = f" -> {', '.join(spec.calls)}" if spec.calls else ""
        if spec.name == "inventory":
            calls = " -> postgresql (virtual)"
        progress.say(
            f"    {spec.name:<10} {spec.protocol:<4} app :{p.app:<5} sidecar in :{p.inbound:<5} "
            f"out :{p.outbound:<5} admin :{p.admin:<5}{calls}"
        )
    progress.say(f"  frontend   {system.entry_url}/products")


def _watch(
    options: DemoOptions,
    stack: EmbeddedStack,
    supervisor: Supervisor,
    load: LoadGenerator,
    incident: IncidentSchedule,
    progress: Progress,
) -> int:
    """Show progress until the duration is over; 1 if a process of the system died."""
    assert stack.store is not None
    started = time.monotonic()
    trace_shown = False
    alerts = AlertWatch(stack.dashboard_url)
    next_look = 0.0
    while options.duration is None or time.monotonic() - started < options.duration:
        for child in supervisor.exited():
            progress.say(
                f"{child.name} exited unexpectedly (code {child.process.returncode}); "
                f"its log {child.log} ends with:\n{log_tail(child.log)}"
            )
            return 1
        elapsed = time.monotonic() - started
        if elapsed >= next_look:
            next_look = elapsed + 3.0
            for line in alerts.new_events():
                progress.say(f"{line}   ({stack.dashboard_url}/alerts)")
            trace_id = None if trace_shown else _example(stack)
            if trace_id:
                progress.say(f"example trace: {stack.dashboard_url}/trace/{trace_id}")
                trace_shown = True
        spans = safe_count(stack.store)
        progress.show(
            format_line(elapsed, load.stats, spans, incident_state(incident, time.time()))
        )
        time.sleep(1.0)
    progress.say(f"--duration {options.duration:g}s is over")
    return 0


def _example(stack: EmbeddedStack) -> str | None:
    assert stack.store is not None
    try:
        return example_trace(stack.store)
    except StoreError:
        return None
