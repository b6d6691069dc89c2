"""``sidetrace webhook`` (serve admission reviews over TLS) and ``webhook certs``."""

from __future__ import annotations

import argparse
import base64
import dataclasses
import logging
import sys
import threading
from pathlib import Path

from sidecar.inject_command import add_inject_options, options_from_args
from sidecar.manifest_io import Manifest, render


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("webhook", help="admission webhook that injects the sidecar")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=8443, help="HTTPS port")
    parser.add_argument("--cert", default="/etc/sidetrace/webhook/tls.crt", help="PEM certificate")
    parser.add_argument("--key", default="/etc/sidetrace/webhook/tls.key", help="PEM private key")
    parser.add_argument(
        "--kube-api",
        default=None,
        help="Kubernetes API URL for namespace defaults (default: in-cluster, if any)",
    )
    parser.add_argument(
        "--tls-reload-interval",
        type=float,
        default=5.0,
        help="seconds between checks of --cert/--key for a renewed pair",
    )
    parser.add_argument(
        "--image-from-pod",
        action="store_true",
        help="inject the image of --image-container, read from this pod via the API",
    )
    parser.add_argument("--pod-name", default=None, help="this pod's name (Downward API)")
    parser.add_argument("--pod-namespace", default=None, help="this pod's namespace")
    parser.add_argument(
        "--image-container",
        default="sidecar-image",
        help="the (init) container of this pod whose image --image-from-pod injects",
    )
    parser.add_argument("--kube-token-file", default=None, help="bearer token file for --kube-api")
    parser.add_argument("--kube-ca-file", default=None, help="CA of --kube-api")
    add_inject_options(parser)
    parser.set_defaults(handler=serve)
    commands = parser.add_subparsers(dest="webhook_command", metavar="{certs,renew}")
    certs = commands.add_parser(
        "certs", help="make a CA and serving certificate; print Secret + webhook configuration"
    )
    certs.add_argument("--service", default="sidetrace-webhook", help="the webhook's Service")
    certs.add_argument("--namespace", default="sidetrace", help="the Service's namespace")
    certs.add_argument("--secret-name", default="sidetrace-webhook-tls", help="TLS Secret name")
    certs.add_argument("--out-dir", default=None, help="also write ca.crt, tls.crt, tls.key here")
    certs.add_argument(
        "--ip", action="append", default=[], help="extra IP address in the certificate"
    )
    certs.add_argument("--days", type=int, default=365, help="validity in days")
    certs.set_defaults(handler=make_certs)
    renew = commands.add_parser(
        "renew", help="renew the TLS Secret and caBundle (made by `certs`) before expiry"
    )
    renew.add_argument("--service", default="sidetrace-webhook", help="the webhook's Service")
    renew.add_argument("--namespace", default="sidetrace", help="the Service's namespace")
    renew.add_argument("--secret-name", default="sidetrace-webhook-tls", help="TLS Secret name")
    renew.add_argument(
        "--configuration", default="sidetrace-injector", help="MutatingWebhookConfiguration"
    )
    renew.add_argument("--renew-before-days", type=int, default=30, help="renew this early")
    renew.add_argument("--days", type=int, default=365, help="validity of new certificates")
    renew.set_defaults(handler=renew_certs)


def serve(args: argparse.Namespace) -> int:
    import httpx
    import uvicorn

    from runtime.tls_files import KeyPairFiles, watch_ssl_context
    from sidecar.kube_namespaces import KubeAPI, NamespaceAnnotations, own_image
    from sidecar.webhook import create_app

    api = KubeAPI.in_cluster()
    if args.kube_api:
        api = KubeAPI(args.kube_api, args.kube_token_file or "", args.kube_ca_file or "")
    options = options_from_args(args)
    if args.image_from_pod:
        if api is None or not (args.pod_name and args.pod_namespace):
            print("sidetrace webhook: --image-from-pod needs the Kubernetes API, "
                  "--pod-name and --pod-namespace", file=sys.stderr)  # fmt: skip
            return 2
        try:
            image = own_image(api, args.pod_namespace, args.pod_name, args.image_container)
        except (OSError, LookupError, ValueError, httpx.HTTPError) as exc:
            print(f"sidetrace webhook: cannot read this pod's image: {exc}", file=sys.stderr)
            return 2
        options = dataclasses.replace(options, image=image)
    logging.getLogger("sidetrace.webhook").info("injecting image %s", options.image)
    app = create_app(options, NamespaceAnnotations(api))
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        ssl_certfile=args.cert,
        ssl_keyfile=args.key,
        log_level=logging.getLevelName(logging.getLogger().level).lower(),
        access_log=False,
    )
    config.load()  # makes config.ssl, which the server then uses as it is
    assert config.ssl is not None  # (made from --cert and --key, which always have a value)
    stop = threading.Event()
    # A renewed Secret (cert-manager, or `webhook certs` re-run) is served without a restart.
    watch_ssl_context(config.ssl, KeyPairFiles(args.cert, args.key), stop, args.tls_reload_interval)
    try:
        uvicorn.Server(config).run()
    finally:
        stop.set()
    return 0


def renew_certs(args: argparse.Namespace) -> int:
    import datetime

    import httpx

    from sidecar.kube_namespaces import KubeAPI
    from sidecar.webhook_renew import renew

    api = KubeAPI.in_cluster()
    if args.kube_api:
        api = KubeAPI(args.kube_api, args.kube_token_file or "", args.kube_ca_file or "")
    if api is None:
        print(
            "sidetrace webhook renew: no Kubernetes API (in a pod, or --kube-api)", file=sys.stderr
        )
        return 2
    try:
        result = renew(
            api, args.namespace, args.secret_name, args.service, args.configuration,
            datetime.timedelta(days=args.renew_before_days), args.days,
        )  # fmt: skip
    except (OSError, httpx.HTTPError, ValueError) as exc:
        print(f"sidetrace webhook renew: {exc}", file=sys.stderr)
        return 1
    state = "renewed" if result.renewed else "still valid"
    print(f"{args.namespace}/{args.secret_name}: {state}, expires {result.not_after:%Y-%m-%d}")
    return 0


def make_certs(args: argparse.Namespace) -> int:
    from sidecar.webhook import webhook_configuration
    from sidecar.webhook_certs import make_certs as create
    from sidecar.webhook_certs import service_dns_names

    made = create(service_dns_names(args.service, args.namespace), tuple(args.ip), args.days)
    if args.out_dir:
        folder = Path(args.out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "ca.crt").write_bytes(made.ca_pem)
        (folder / "tls.crt").write_bytes(made.cert_pem)
        key_file = folder / "tls.key"
        key_file.touch(mode=0o600)
        key_file.write_bytes(made.key_pem)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": args.secret_name, "namespace": args.namespace},
        "type": "kubernetes.io/tls",
        "data": {
            "ca.crt": base64.b64encode(made.ca_pem).decode(),
            "tls.crt": base64.b64encode(made.cert_pem).decode(),
            "tls.key": base64.b64encode(made.key_pem).decode(),
        },
    }
    configuration = webhook_configuration(
        base64.b64encode(made.ca_pem).decode(), args.service, args.namespace
    )
    sys.stdout.write(render(Manifest([secret, configuration], is_json=False)))
    return 0
