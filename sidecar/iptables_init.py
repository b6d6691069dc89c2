"""``sidetrace iptables-init``: install the pod's redirect, in the init container.

The rules come from ``sidecar.iptables_rules.rules``; ``iptables-restore`` loads
them as one transaction that replaces the pod's ``nat`` table, so running the
init container again (a pod restart keeps the network namespace) changes nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from sidecar.iptables_rules import PortSpecError, RedirectConfig, parse_ports, rules


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "iptables-init", help="install the pod's traffic redirect to the sidecar (init container)"
    )
    parser.add_argument(
        "--proxy-uid",
        type=int,
        default=RedirectConfig.proxy_uid,
        help="UID whose traffic is exempt",
    )
    parser.add_argument("--proxy-gid", type=int, default=None, help="GID whose traffic is exempt")
    parser.add_argument(
        "--inbound-port", type=int, default=RedirectConfig.inbound_port, help="sidecar inbound port"
    )
    parser.add_argument(
        "--outbound-port",
        type=int,
        default=RedirectConfig.outbound_port,
        help="sidecar outbound port",
    )
    parser.add_argument(
        "--admin-port", type=int, default=RedirectConfig.admin_port, help="sidecar admin port"
    )
    parser.add_argument(
        "--inbound-ports", default="", help="only redirect these inbound ports (default: all)"
    )
    parser.add_argument("--skip-inbound-ports", default="", help="inbound ports left alone")
    parser.add_argument("--skip-outbound-ports", default="", help="outbound ports left alone")
    parser.add_argument("--no-outbound", action="store_true", help="redirect inbound only")
    parser.add_argument(
        "--iptables-restore", default="iptables-restore", help="restore binary to run"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the rules, apply nothing")
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> RedirectConfig:
    return RedirectConfig(
        proxy_uid=args.proxy_uid,
        proxy_gid=args.proxy_gid,
        inbound_port=args.inbound_port,
        outbound_port=args.outbound_port,
        admin_port=args.admin_port,
        inbound_ports=parse_ports(args.inbound_ports),
        skip_inbound_ports=parse_ports(args.skip_inbound_ports),
        skip_outbound_ports=parse_ports(args.skip_outbound_ports),
        redirect_outbound=not args.no_outbound,
    )


def apply(text: str, binary: str = "iptables-restore", timeout: float = 30.0) -> None:
    """Load the rules in one transaction; raises ``RuntimeError`` with iptables' message."""
    result = subprocess.run(
        [binary, "--wait", "10"], input=text, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"{binary} failed ({result.returncode}): {result.stderr.strip()}")


def run(args: argparse.Namespace) -> int:
    try:
        text = rules(config_from_args(args))
    except PortSpecError as exc:
        print(f"sidetrace iptables-init: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        sys.stdout.write(text)
        return 0
    try:
        apply(text, args.iptables_restore)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"sidetrace iptables-init: {exc}", file=sys.stderr)
        return 1
    print("sidetrace iptables-init: redirect installed", file=sys.stderr)
    return 0
