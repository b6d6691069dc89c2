"""The sidecar's memory with its telemetry queue full: the bound of its RSS at saturation.

A sidecar (tracing on, 100 % sampled, the default queue of 65,536 records) proxies
``wrk`` to an nginx app while its collector accepts connections and never answers,
so the telemetry thread is stuck in an export and every record stays queued until
the queue is full and the sidecar starts counting drops. Whatever the traffic or
the collector do, the queue cannot hold more: this RSS bounds the sidecar's at
saturation (``bench/proxy.py`` measures it with a collector that keeps up).

Prints ``protocol``, ``idle_rss_mb`` (before any traffic), ``records_queued`` and
``full_queue_rss_mb``, the last line. It exports over OTLP/HTTP, the default of
``sidetrace sidecar``; ``--protocol grpc`` over OTLP/gRPC instead.

    python bench/sidecar_memory.py [--quick] [--protocol http/protobuf|grpc]

``--quick`` fills a queue of 4,096 records instead (the same code path).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy import APP_BODY, start_nginx, wait_http  # noqa: E402  (bench/proxy.py)

from runtime.loopback_ports import free_port  # noqa: E402
from tests.support.sidecar_process import SidecarProcess  # noqa: E402

QUEUE = 65536


def silent_collector() -> tuple[socket.socket, list[socket.socket]]:
    """A listener that accepts every connection and never answers on any."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return listener, held


def vm_kb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="http/protobuf", choices=("http/protobuf", "grpc"))
    parser.add_argument("--quick", action="store_true", help="a queue of 4,096 records")
    args = parser.parse_args()
    queue = 4096 if args.quick else QUEUE
    workdir = Path(tempfile.mkdtemp(prefix="sidetrace-bench-memory-"))
    app_port = free_port()
    listener, held = silent_collector()
    port = listener.getsockname()[1]
    nginx = start_nginx(workdir, "app", APP_BODY.format(port=app_port), "0-1")
    sidecar = SidecarProcess(
        app_port,
        "--collector", f"127.0.0.1:{port}" if args.protocol == "grpc" else f"http://127.0.0.1:{port}",
        "--sampling-ratio", "1.0", "--export-timeout", "600", "--max-queue", str(queue),
    )  # fmt: skip
    sidecar.env["OTEL_EXPORTER_OTLP_PROTOCOL"] = args.protocol
    try:
        wait_http(app_port)
        sidecar.start()
        pid = sidecar.process.pid  # type: ignore[union-attr]
        idle = vm_kb(pid, "VmRSS")
        deadline = time.monotonic() + 300
        while sidecar.metric("sidetrace_sidecar_records_dropped_total") <= 0:
            if time.monotonic() > deadline:
                raise SystemExit("the queue did not fill in 300 s")
            subprocess.run(
                ["wrk", "-t1", "-c32", "-d3s", f"http://127.0.0.1:{sidecar.inbound}/"],
                capture_output=True,
                check=True,
            )
        full = vm_kb(pid, "VmRSS")
    finally:
        sidecar.stop()
        nginx.terminate()
        nginx.wait(30)
        listener.close()
        for conn in held:
            conn.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"protocol={args.protocol}")
    print(f"idle_rss_mb={idle:.1f}")
    print(f"records_queued={queue}")
    print(f"full_queue_rss_mb={full:.1f}")


if __name__ == "__main__":
    main()
