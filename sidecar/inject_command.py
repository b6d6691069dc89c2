"""``sidetrace inject``, ``sidetrace uninject`` and ``sidetrace iptables-init``.

inject/uninject read manifests from files or stdin and write the result to stdout
(like ``linkerd inject``); what was skipped and why goes to stderr. Either every
input is rewritten or, on any error, nothing is written at all.
"""

from __future__ import annotations

import argparse
import sys

from sidecar.inject import InjectError, InjectOptions, Outcome, inject_documents, uninject_documents
from sidecar.manifest_io import Manifest, parse, render


def register(subparsers: argparse._SubParsersAction) -> None:
    inject = subparsers.add_parser("inject", help="add the sidecar to pod templates in manifests")
    _add_files(inject)
    add_inject_options(inject)
    inject.set_defaults(handler=run_inject)
    uninject = subparsers.add_parser("uninject", help="remove what inject added")
    _add_files(uninject)
    uninject.set_defaults(handler=run_uninject)
    from sidecar.iptables_init import register as register_iptables_init

    register_iptables_init(subparsers)


def add_inject_options(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``inject`` and ``webhook``: what the injected pods get."""
    parser.add_argument("--image", default=InjectOptions.image, help="sidetrace container image")
    parser.add_argument(
        "--collector",
        default=InjectOptions.collector,
        help="collector OTLP/HTTP [https://]HOST:PORT (annotation sidetrace.io/collector wins)",
    )
    parser.add_argument(
        "--collector-secret",
        default=InjectOptions.collector_secret,
        help="Secret in the pod's namespace with the collector's ca.crt and token ('' for none)",
    )
    parser.add_argument(
        "--legacy",
        action="store_true",
        help="sidecar as an ordinary container, for clusters older than Kubernetes 1.29",
    )
    parser.add_argument(
        "--no-iptables",
        action="store_true",
        help="no redirect: apps use the sidecar as HTTP proxy, the app port moves to it",
    )
    parser.add_argument(
        "--proxy-uid", type=int, default=InjectOptions.proxy_uid, help="the sidecar's UID"
    )


def options_from_args(args: argparse.Namespace) -> InjectOptions:
    return InjectOptions(
        image=args.image,
        collector=args.collector,
        collector_secret=args.collector_secret,
        legacy=args.legacy,
        iptables=not args.no_iptables,
        proxy_uid=args.proxy_uid,
    )


def _add_files(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--filename",
        action="append",
        dest="files",
        metavar="FILE",
        help="manifest file, '-' for stdin (repeatable; default stdin)",
    )


def _read(files: list[str] | None) -> list[Manifest]:
    manifests = []
    for name in files or ["-"]:
        if name == "-":
            text = sys.stdin.read()
        else:
            with open(name, encoding="utf-8") as handle:
                text = handle.read()
        manifests.append(parse(text))
    return manifests


def _report(command: str, outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        for warning in outcome.warnings:
            print(
                f"sidetrace {command}: {outcome.object_name}: warning: {warning}", file=sys.stderr
            )
        if outcome.skip_reason:
            print(
                f"sidetrace {command}: skipped {outcome.object_name}: {outcome.skip_reason}",
                file=sys.stderr,
            )
        else:
            print(f"sidetrace {command}: {command}ed {outcome.object_name}", file=sys.stderr)


def _run(command: str, files: list[str] | None, transform) -> int:
    try:
        manifests = _read(files)
        outcomes = [o for m in manifests for o in transform(m.documents)]
    except (InjectError, OSError, ValueError) as exc:
        print(f"sidetrace {command}: {exc}", file=sys.stderr)
        return 1
    _report(command, outcomes)
    several = len(manifests) > 1
    for manifest in manifests:
        manifest.explicit_start = manifest.explicit_start or several
        sys.stdout.write(("---\n" if several and manifest.is_json else "") + render(manifest))
    return 0


def run_inject(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    return _run("inject", args.files, lambda docs: inject_documents(docs, options))


def run_uninject(args: argparse.Namespace) -> int:
    return _run("uninject", args.files, uninject_documents)
