"""The sidecar's cost: wrk against a fast app directly, through the sidecar, through nginx.

A fast app (nginx answering ``return 200``, CPU 1) is loaded by ``wrk`` (CPU 1)
three ways in one run: directly; through the sidecar (CPU 0, tracing on, 100%
sampled, spans exported over OTLP/HTTP, ``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf``,
so the sidecar loads no grpcio, to a real ``sidetrace collector`` writing
into a real clickhouse-server, both on CPU 1, at idle priority for the latency
runs); and through nginx (one worker, reverse proxy with upstream keep-alive,
CPU 0). Throughput is wrk's
``Requests/sec`` at ``--connections`` connections: the median of interleaved
rounds (one round of 3 s with ``--quick``, else five of 5 s). After every run the
bench waits until each span the sidecar exported is in ClickHouse, so that no run
(nginx's least of all) shares the load core with the ingestion of the previous one.

Added latency at a fixed 1,000 req/s: wrk2 is not available, so wrk runs with a
Lua ``delay()`` of 10 ms per request on 10 connections (about 1,000 req/s,
open-loop enough while latency is far below 10 ms) and ``--latency`` gives
p50/p99, each the median over interleaved rounds as above; the added figure is
(through the sidecar) minus (direct). It is measured twice: as the machine is, and
tuned the way latency benchmarks such as cyclictest tune it (a 0 µs CPU wake-up
latency request on ``/dev/cpu_dma_latency``, so idle cores poll instead of halting,
and wrk, the app and the proxies under SCHED_FIFO). Beside them, the machine's own
floor: the round trip of one byte through a pipe between a process on each core,
which every proxied exchange pays at least twice.

``sidecar_rss_mb`` is the sidecar's resident memory after the last run and
``sidecar_peak_rss_mb`` its peak (VmHWM) over the whole bench, saturation included,
with the default telemetry queue of 65,536 records.

Prints ``name=value`` lines; the last is ``sidecar_vs_nginx_rps_ratio``.
Usage: ``python bench/proxy.py [--quick] [--connections N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.loopback_ports import free_port  # noqa: E402
from tests.support.clickhouse_server import ClickHouseServer  # noqa: E402
from tests.support.sidecar_process import SidecarProcess  # noqa: E402
from tracestore.store import Store, open_store  # noqa: E402

PROXY_CPU, LOAD_CPU = "0", "1"
RT_PRIORITY = 10
NGINX_COMMON = """worker_processes 1;
daemon off;
pid {d}/{name}.pid;
error_log {d}/{name}.err;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  {body}
}}
"""
APP_BODY = 'server {{ listen 127.0.0.1:{port}; location / {{ return 200 "hello world\\n"; }} }}'
PROXY_BODY = (
    "upstream app {{ server 127.0.0.1:{app}; keepalive 64; }}\n"
    "  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://app;"
    ' proxy_http_version 1.1; proxy_set_header Connection ""; }} }}'
)
PACED_LUA = "function delay()\n  return 10\nend\n"


def start_nginx(workdir: Path, name: str, body: str, cpu: str) -> subprocess.Popen:
    (workdir / "tmp").mkdir(exist_ok=True)
    conf = workdir / f"{name}.conf"
    conf.write_text(NGINX_COMMON.format(d=workdir, name=name, body=body))
    return subprocess.Popen(
        ["taskset", "-c", cpu, "nginx", "-c", str(conf), "-p", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_http(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
                reply.read()
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


def _micros(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live children (nginx workers), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return total + sum(cpu_seconds(int(child)) for child in children)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def make_idle_priority(pid: int) -> None:
    """SCHED_IDLE for every thread of ``pid`` (scheduling policies are per thread): it runs
    only when nothing else wants the core, and anything waking preempts it at once."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError, PermissionError):  # a thread just ended
            os.sched_setscheduler(int(tid), os.SCHED_IDLE, os.sched_param(0))


def make_realtime(pid: int) -> bool:
    """SCHED_FIFO for every thread of ``pid`` and its children; False if not permitted."""
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            os.sched_setscheduler(int(tid), os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (PermissionError, OSError):
        return False
    return all(make_realtime(int(child)) for child in children)


@contextlib.contextmanager
def cores_poll_when_idle() -> Iterator[bool]:
    """Hold a 0 µs CPU wake-up latency request (PM QoS) while inside; False if refused.

    Idle cores then poll instead of halting: on a VM, waking a halted vCPU costs about
    0.1 ms at the median and near 1 ms at p99, for any process on the path."""
    try:
        fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
    except OSError:
        yield False
        return
    try:
        os.write(fd, struct.pack("i", 0))
        yield True
    finally:
        os.close(fd)


def cross_core_round_trip(count: int) -> dict[str, float]:
    """p50/p99 in µs of a one-byte pipe round trip from the proxy core to the load core."""
    to_echo, from_bench = os.pipe()
    to_bench, from_echo = os.pipe()
    echo = os.fork()
    if echo == 0:
        os.sched_setaffinity(0, {int(LOAD_CPU)})
        while os.read(to_echo, 1) == b"x":
            os.write(from_echo, b"x")
        os._exit(0)
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(PROXY_CPU)})
    samples = []
    try:
        for _ in range(count):
            began = time.perf_counter_ns()
            os.write(from_bench, b"x")
            os.read(to_bench, 1)
            samples.append((time.perf_counter_ns() - began) / 1000)
            time.sleep(0.001)  # both sides idle between round trips, as between requests
    finally:
        os.sched_setaffinity(0, affinity)
        os.write(from_bench, b"q")
        os.waitpid(echo, 0)
        for fd in (to_echo, from_bench, to_bench, from_echo):
            os.close(fd)
    samples.sort()
    return {"p50_us": samples[len(samples) // 2], "p99_us": samples[len(samples) * 99 // 100]}


def wrk(
    port: int, seconds: float, connections: int, script: Path | None = None, rt: bool = False
) -> dict:
    command = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    if rt:
        command = ["chrt", "-f", str(RT_PRIORITY), *command]
    command += ["--latency"] + (["-s", str(script)] if script else [])
    out = subprocess.run(
        [*command, f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True
    ).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        result[f"p{pct}_us"] = _micros(match.group(1)) if match else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = int(errors.group(1)) if errors else 0
    return result


def paced_latency(
    targets: dict[str, int],
    seconds: float,
    rounds: int,
    script: Path,
    settle: Callable[[], None],
    rt: bool = False,
) -> list[dict[str, float]]:
    """Median p50 and p99 per target over interleaved paced runs (one run's p99 is the
    30th worst of ~3,000 requests: a single hiccup of the machine moves it)."""
    runs: dict[str, list[dict]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, port in targets.items():
            runs[name].append(wrk(port, seconds, 10, script, rt=rt))
            settle()
    return [
        {pct: statistics.median(run[pct] for run in runs[name]) for pct in ("p50_us", "p99_us")}
        | {"rps": statistics.median(run["rps"] for run in runs[name])}
        for name in targets
    ]


def start_collector(store_url: str, workdir: Path) -> tuple[subprocess.Popen, int]:
    """The collector and its OTLP/HTTP port."""
    http_port, admin_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            "taskset", "-c", LOAD_CPU, sys.executable, "-m", "sidetrace", "collector",
            "--clickhouse", store_url, "--grpc-port", str(free_port()),
            "--http-port", str(http_port), "--admin-port", str(admin_port),
            "--spool-dir", str(workdir / "spool"), "--spool-fsync", "interval",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=2):
                return process, http_port
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("collector did not become ready")


def wait_stored(store: Store, expected: float, timeout: float = 120.0) -> int:
    """Spans of the bench in ClickHouse, once there are ``expected`` (or at ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        stored = store.query("SELECT count() FROM spans WHERE service_name = 'bench-sidecar'")
        if stored[0][0] >= expected or time.monotonic() > deadline:
            return stored[0][0]
        time.sleep(0.5)


def wait_exported(sidecar: SidecarProcess, timeout: float = 60.0) -> tuple[float, float]:
    """Spans exported and dropped once the sidecar's queue has drained (numbers stop moving)."""
    deadline = time.monotonic() + timeout
    last = (-1.0, -1.0)
    while time.monotonic() < deadline:
        now = (
            sidecar.metric("sidetrace_sidecar_spans_exported_total"),
            sidecar.metric("sidetrace_sidecar_spans_dropped_total"),
        )
        if now == last:
            return now
        last = now
        time.sleep(1.0)
    return last


def settled(sidecar: SidecarProcess, store: Store) -> Callable[[], None]:
    """Waits until every span the sidecar has exported is in ClickHouse. Called after each
    run: the collector and ClickHouse share the load core with wrk and the app, and the
    next run, whichever target it loads, must not pay for the sidecar's spans."""
    return lambda: wait_stored(store, wait_exported(sidecar)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    seconds, rounds = (3, 1) if args.quick else (5, 5)
    for tool in ("wrk", "nginx", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="sidetrace-bench-proxy-"))
    paced = workdir / "paced.lua"
    paced.write_text(PACED_LUA)
    app_port, nginx_port = free_port(), free_port()
    clickhouse = ClickHouseServer()
    processes: list[subprocess.Popen] = []
    sidecar: SidecarProcess | None = None
    try:
        clickhouse.start(cpu=int(LOAD_CPU))
        store_url = clickhouse.url(database="bench_proxy")
        collector, http_port = start_collector(store_url, workdir)
        processes.append(collector)
        processes.append(start_nginx(workdir, "app", APP_BODY.format(port=app_port), LOAD_CPU))
        body = PROXY_BODY.format(app=app_port, port=nginx_port)
        processes.append(start_nginx(workdir, "proxy", body, PROXY_CPU))
        sidecar = SidecarProcess(
            app_port,
            "--collector", f"http://127.0.0.1:{http_port}",
            "--service-name", "bench-sidecar",
            "--sampling-ratio", "1.0",
            cpu=int(PROXY_CPU),
        )  # fmt: skip
        sidecar.env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
        sidecar.start()
        for port in (app_port, nginx_port, sidecar.inbound):
            wait_http(port)
            wrk(port, 1, args.connections)  # warm up
        # Interleaved rounds, medians: other load on the machine comes and goes.
        store = open_store(store_url)
        settle = settled(sidecar, store)
        nginx_pid = int((workdir / "proxy.pid").read_text())
        rps: dict[str, list[float]] = {"direct": [], "sidecar": [], "nginx": []}
        cpu_us: dict[str, list[float]] = {"sidecar": [], "nginx": []}
        errors = {"sidecar": 0, "nginx": 0}
        for _ in range(rounds):
            rps["direct"].append(wrk(app_port, seconds, args.connections)["rps"])
            settle()
            for name, port, pid in (
                ("sidecar", sidecar.inbound, sidecar.process.pid),  # type: ignore[union-attr]
                ("nginx", nginx_port, nginx_pid),
            ):
                before = cpu_seconds(pid)
                result = wrk(port, seconds, args.connections)
                rps[name].append(result["rps"])
                errors[name] += result["errors"]
                cpu_us[name].append((cpu_seconds(pid) - before) / (result["rps"] * seconds) * 1e6)
                settle()
        # Ingesting stays on the load core during the latency runs, at idle priority:
        # in a cluster the collector is not on the app's CPU, and its bursts every 0.2 s
        # would otherwise delay wrk and the app (the request path under test is not theirs).
        for pid in (collector.pid, clickhouse.process.pid):  # type: ignore[union-attr]
            make_idle_priority(pid)
        targets = {"direct": app_port, "sidecar": sidecar.inbound, "nginx": nginx_port}
        latency = {"": paced_latency(targets, seconds, rounds, paced, settle)}
        round_trips = 300 if args.quick else 3000
        floor = {"": cross_core_round_trip(round_trips)}
        # Again tuned: no core halts when idle, and every process on the path is under
        # SCHED_FIFO (light load, so nothing starves): neither the VM's wake-up latency
        # nor other work on the shared machine can delay the proxies.
        app_pid, proxy_pid = (int((workdir / f"{n}.pid").read_text()) for n in ("app", "proxy"))
        with cores_poll_when_idle() as polling:
            floor["tuned_"] = cross_core_round_trip(round_trips)
            realtime = all(make_realtime(pid) for pid in (app_pid, proxy_pid, sidecar.process.pid))  # type: ignore[union-attr]
            if polling and realtime:
                latency["tuned_"] = paced_latency(targets, seconds, rounds, paced, settle, rt=True)
        exported, dropped = wait_exported(sidecar)
        rss, peak_rss = sidecar.rss_mb(), peak_rss_mb(sidecar.process.pid)  # type: ignore[union-attr]
        stored = wait_stored(store, exported)
    finally:
        if sidecar is not None:
            sidecar.stop()
        for process in processes:
            process.terminate()
            process.wait(30)
        clickhouse.remove()
        shutil.rmtree(workdir, ignore_errors=True)
    median = statistics.median
    print(f"direct_rps={median(rps['direct']):.0f}")
    print(f"sidecar_rps={median(rps['sidecar']):.0f}")
    print(f"nginx_rps={median(rps['nginx']):.0f}")
    print(f"sidecar_non_2xx={errors['sidecar']}")
    print(f"sidecar_cpu_us_per_request={median(cpu_us['sidecar']):.1f}")
    print(f"nginx_cpu_us_per_request={median(cpu_us['nginx']):.1f}")
    print(f"cpu_based_rps_ratio={median(cpu_us['nginx']) / median(cpu_us['sidecar']):.2f}")
    print(f"paced_rps={latency[''][1]['rps']:.0f}")
    print(f"direct_p50_us_at_1000rps={latency[''][0]['p50_us']:.0f}")
    print(f"sidecar_p50_us_at_1000rps={latency[''][1]['p50_us']:.0f}")
    for prefix, (direct, through_sidecar, through_nginx) in latency.items():
        for pct in ("p50", "p99"):
            added = (through_sidecar[f"{pct}_us"] - direct[f"{pct}_us"]) / 1000
            print(f"{prefix}added_{pct}_ms_at_1000rps={added:.3f}")
        # The same through nginx on the same core: how much of it the machine itself adds.
        for pct in ("p50", "p99"):
            added = (through_nginx[f"{pct}_us"] - direct[f"{pct}_us"]) / 1000
            print(f"{prefix}nginx_added_{pct}_ms_at_1000rps={added:.3f}")
    for prefix, round_trip in floor.items():
        for pct in ("p50", "p99"):
            print(f"{prefix}cross_core_round_trip_{pct}_us={round_trip[f'{pct}_us']:.0f}")
    print(f"spans_exported={exported:.0f}")
    print(f"spans_dropped={dropped:.0f}")
    print(f"spans_in_clickhouse={stored}")
    print(f"sidecar_rss_mb={rss:.1f}")
    print(f"sidecar_peak_rss_mb={peak_rss:.1f}")
    ratios = [s / n for s, n in zip(rps["sidecar"], rps["nginx"], strict=True)]
    print(f"sidecar_vs_nginx_rps_ratio={median(ratios):.2f}")


if __name__ == "__main__":
    main()
