"""The redirect rules: table-driven as text, then for real in network namespaces.

The real test builds a "pod" namespace and a "client" namespace joined by a veth
pair, installs the rules with ``sidetrace iptables-init`` inside the pod, and runs
the real sidecar there as its own UID. Echo servers answer with the headers they
received, so a ``traceparent`` header shows a request went through the sidecar.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sidecar.iptables_rules import PortSpecError, RedirectConfig, parse_ports, rules
from tests.support import ROOT
from tests.support.polling import Gone, eventually

REPO = ROOT
PROXY_UID = 1337


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", ()), ("80", ("80",)), (" 80, 443 ,", ("80", "443")), ("8000-8010", ("8000:8010",))],
)
def test_parse_ports(text: str, expected: tuple[str, ...]) -> None:
    assert parse_ports(text) == expected


@pytest.mark.parametrize("text", ["http", "0", "65536", "90-80", "1-2-3", "80;81"])
def test_parse_ports_rejects(text: str) -> None:
    with pytest.raises(PortSpecError):
        parse_ports(text)


RULE_CASES = [
    (
        RedirectConfig(),
        [
            "-A SIDETRACE_INBOUND -p tcp --dport 15020 -j RETURN",
            "-A SIDETRACE_INBOUND -p tcp -j SIDETRACE_IN_REDIRECT",
            "-A SIDETRACE_OUTPUT -m owner --uid-owner 1337 -j RETURN",
            "-A SIDETRACE_OUTPUT -o lo -j RETURN",
            "-A SIDETRACE_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
            "-A SIDETRACE_OUT_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
        ],
        ["--gid-owner"],
    ),
    (
        RedirectConfig(inbound_ports=("8080", "9000:9010"), skip_outbound_ports=("5432",)),
        [
            "-A SIDETRACE_INBOUND -p tcp --dport 8080 -j SIDETRACE_IN_REDIRECT",
            "-A SIDETRACE_INBOUND -p tcp --dport 9000:9010 -j SIDETRACE_IN_REDIRECT",
            "-A SIDETRACE_OUTPUT -p tcp --dport 5432 -j RETURN",
        ],
        ["-A SIDETRACE_INBOUND -p tcp -j SIDETRACE_IN_REDIRECT"],
    ),
    (
        RedirectConfig(proxy_uid=999, proxy_gid=998, redirect_outbound=False),
        ["-A PREROUTING -p tcp -j SIDETRACE_INBOUND"],
        ["-A OUTPUT -p tcp -j SIDETRACE_OUTPUT", "--uid-owner"],
    ),
]


@pytest.mark.parametrize(("config", "present", "absent"), RULE_CASES)
def test_rules_text(config: RedirectConfig, present: list[str], absent: list[str]) -> None:
    text = rules(config)
    lines = text.splitlines()
    assert lines[0] == "*nat" and lines[-1] == "COMMIT"
    for line in present:
        assert line in lines
    for fragment in absent:
        assert fragment not in text
    # Skips come before the catch-all redirect in each chain.
    for chain in ("SIDETRACE_INBOUND", "SIDETRACE_OUTPUT"):
        chain_lines = [ln for ln in lines if ln.startswith(f"-A {chain} ")]
        jumps = [i for i, ln in enumerate(chain_lines) if "REDIRECT" in ln]
        returns = [i for i, ln in enumerate(chain_lines) if ln.endswith("-j RETURN")]
        if jumps and returns:
            assert max(returns) < min(jumps)


# --- for real, in network namespaces ----------------------------------------------

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("iptables-restore"),
    reason="needs root, iproute2 and iptables",
)

ECHO_SERVER = """
import http.server, json, sys
label, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"server": label, "headers": dict(self.headers)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((host, port), Echo).serve_forever()
"""

FETCH = """
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
print(opener.open(sys.argv[1], timeout=15).read().decode())
"""


@dataclass
class PodNetwork:
    pod_ns: str
    client_ns: str
    pod_ip: str
    client_ip: str
    processes: list[subprocess.Popen]
    folder: Path

    def start(self, ns: str, command: list[str], name: str) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - the process owns it
        process = subprocess.Popen(
            ["ip", "netns", "exec", ns, *command],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=_clean_env(),
        )
        self.processes.append(process)
        return process

    def fetch(self, ns: str, url: str, uid: int | None = None) -> dict:
        prefix = ["ip", "netns", "exec", ns]
        if uid is not None:
            prefix += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
        result = subprocess.run(
            [*prefix, sys.executable, "-c", FETCH, url],
            capture_output=True,
            text=True,
            timeout=60,
            env=_clean_env(),
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.pop("SIDETRACE_APP_PORT", None)
    return env


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _wait_port(net: PodNetwork, ns: str, host: str, port: int, timeout: float = 60.0) -> None:
    probe = (
        "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()"
    )

    def opened() -> bool:
        for process in net.processes:
            if process.poll() is not None:
                logs = "\n".join(p.read_text()[-2000:] for p in net.folder.glob("*.log"))
                raise Gone(f"a helper process exited:\n{logs}")
        check = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", probe, host, str(port)],
            capture_output=True,
            timeout=30,
        )
        return check.returncode == 0

    eventually(opened, timeout, 0.3, what=f"{host}:{port} in {ns} open", ignoring=())


@pytest.fixture
def pod_network(tmp_path: Path) -> Iterator[PodNetwork]:
    tag = f"{os.getpid() % 10000}{random.randrange(100)}"
    subnet = f"10.{random.randrange(100, 250)}.{random.randrange(0, 250)}"
    net = PodNetwork(f"st-pod-{tag}", f"st-cli-{tag}", f"{subnet}.2", f"{subnet}.1", [], tmp_path)
    veth_pod, veth_client = f"stp{tag}", f"stc{tag}"
    try:
        _ip("netns", "add", net.pod_ns)
        _ip("netns", "add", net.client_ns)
        _ip("link", "add", veth_pod, "type", "veth", "peer", "name", veth_client)
        _ip("link", "set", veth_pod, "netns", net.pod_ns)
        _ip("link", "set", veth_client, "netns", net.client_ns)
        for ns, dev, address in (
            (net.pod_ns, veth_pod, net.pod_ip),
            (net.client_ns, veth_client, net.client_ip),
        ):
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield net
    finally:
        for process in net.processes:
            process.terminate()
        for process in net.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for ns in (net.pod_ns, net.client_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _nat_rules(net: PodNetwork) -> list[str]:
    saved = subprocess.run(
        ["ip", "netns", "exec", net.pod_ns, "iptables-save", "-t", "nat"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return [ln for ln in saved.splitlines() if ln.startswith("-A ")]


def _iptables_init(net: PodNetwork) -> None:
    result = subprocess.run(
        ["ip", "netns", "exec", net.pod_ns, sys.executable, "-m", "sidetrace", "iptables-init"]
        + [f"--proxy-uid={PROXY_UID}", "--skip-inbound-ports=8081", "--skip-outbound-ports=9091"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=_clean_env(),
    )
    assert result.returncode == 0, result.stderr


@needs_root
@pytest.mark.slow
def test_redirect_in_network_namespaces(pod_network: PodNetwork) -> None:
    net = pod_network
    _iptables_init(net)
    installed = _nat_rules(net)
    assert "-A OUTPUT -p tcp -j SIDETRACE_OUTPUT" in installed
    _iptables_init(net)  # a restarted init container changes nothing
    assert _nat_rules(net) == installed

    for port in (8080, 8081):
        net.start(
            net.pod_ns,
            [sys.executable, "-c", ECHO_SERVER, f"app:{port}", "0.0.0.0", str(port)],
            f"app{port}",
        )
    for port in (9090, 9091):
        label = f"remote:{port}"
        net.start(
            net.client_ns,
            [sys.executable, "-c", ECHO_SERVER, label, net.client_ip, str(port)],
            f"remote{port}",
        )
    as_proxy = ["setpriv", f"--reuid={PROXY_UID}", f"--regid={PROXY_UID}", "--clear-groups", "--"]
    net.start(
        net.pod_ns,
        [*as_proxy, sys.executable, "-m", "sidetrace", "sidecar", "--app-port=8080"]
        + ["--service-name=netns-app", "--idle-timeout=30"],
        "sidecar",
    )
    for port in (8080, 8081, 15006, 15020):
        _wait_port(net, net.pod_ns, "127.0.0.1" if port != 15006 else net.pod_ip, port)
    for port in (9090, 9091):
        _wait_port(net, net.client_ns, net.client_ip, port)

    # Inbound: the client dials the app's port and lands in the sidecar, which reaches the app.
    inbound = net.fetch(net.client_ns, f"http://{net.pod_ip}:8080/orders")
    assert inbound["server"] == "app:8080"
    assert "traceparent" in {k.lower() for k in inbound["headers"]}
    # A skipped inbound port goes straight to the app.
    direct = net.fetch(net.client_ns, f"http://{net.pod_ip}:8081/")
    assert direct["server"] == "app:8081"
    assert "traceparent" not in {k.lower() for k in direct["headers"]}

    # Outbound from the app: redirected, and the sidecar finds the original destination.
    outbound = net.fetch(net.pod_ns, f"http://{net.client_ip}:9090/pay")
    assert outbound["server"] == "remote:9090"
    assert "traceparent" in {k.lower() for k in outbound["headers"]}
    # Skipped outbound port, the sidecar's own UID and loopback are not redirected.
    skipped = net.fetch(net.pod_ns, f"http://{net.client_ip}:9091/")
    assert skipped["server"] == "remote:9091"
    assert "traceparent" not in {k.lower() for k in skipped["headers"]}
    own = net.fetch(net.pod_ns, f"http://{net.client_ip}:9090/", uid=PROXY_UID)
    assert own["server"] == "remote:9090"
    assert "traceparent" not in {k.lower() for k in own["headers"]}
    local = net.fetch(net.pod_ns, "http://127.0.0.1:8080/")
    assert local["server"] == "app:8080"
    assert "traceparent" not in {k.lower() for k in local["headers"]}


def _init_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidetrace", "iptables-init", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=_clean_env(),
    )


def test_iptables_init_dry_run_and_errors() -> None:
    dry = _init_command("--dry-run", "--skip-outbound-ports=5432")
    assert dry.returncode == 0
    assert dry.stdout == rules(RedirectConfig(skip_outbound_ports=("5432",)))
    bad = _init_command("--dry-run", "--inbound-ports=http")
    assert bad.returncode == 2 and "'http' is not a port" in bad.stderr
    failed = _init_command("--iptables-restore=false")
    assert failed.returncode == 1 and "false failed (1)" in failed.stderr
