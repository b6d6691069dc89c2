"""The admission webhook: the same injection as ``sidetrace inject``, as a JSON Patch.

Opt-in is by label, as in the meshes, so the API server itself filters and calls
the webhook only for pods that may be injected: the ``MutatingWebhookConfiguration``
holds two entries. Pods in namespaces labelled ``sidetrace.io/inject=enabled`` go
to ``/inject/namespace`` (injected unless the pod is labelled or annotated
``disabled``); in other namespaces only pods labelled ``sidetrace.io/inject=enabled``
go to ``/inject/pod``. System namespaces (and the webhook's own) are never sent.
Anything that goes wrong inside the webhook
allows the pod unchanged and is logged; the configuration's
``failurePolicy: Ignore`` covers the webhook being down.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from sidecar.inject import (
    INJECT,
    SKIP_REASON,
    Defaults,
    InjectError,
    InjectOptions,
    fallback_service_name,
    inject_template,
    metadata_ops,
    skip_reason,
)
from sidecar.kube_namespaces import NamespaceAnnotations

log = logging.getLogger("sidetrace.webhook")

WEBHOOK_NAME = "sidetrace-injector"
NAMESPACE_LABEL = "sidetrace.io/inject"
POD_LABEL = INJECT  # the same key on pods: sidetrace.io/inject=enabled|disabled
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")


def _skip_patch(pod: dict[str, Any], reason: str) -> list[dict[str, Any]]:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if annotations.get(SKIP_REASON) == reason:
        return []
    return metadata_ops(pod, "annotations", SKIP_REASON, reason)


def pod_patch(
    pod: dict[str, Any],
    namespace: str,
    namespace_enabled: bool,
    options: InjectOptions,
    defaults: Defaults | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """The JSON Patch for one pod, and a short note on what was decided."""
    metadata = pod.get("metadata") or {}
    name = metadata.get("name") or metadata.get("generateName") or "<unnamed>"
    object_name = f"Pod/{name} in namespace {namespace}"
    try:
        reason = skip_reason(pod, object_name)
    except InjectError as exc:
        return _skip_patch(pod, str(exc)), f"skipped: {exc}"
    if reason:
        return _skip_patch(pod, reason), f"skipped: {reason}"
    opted_in = "enabled" in (
        (metadata.get("annotations") or {}).get(INJECT),
        (metadata.get("labels") or {}).get(INJECT),
    )
    if not (opted_in or namespace_enabled):
        return [], "not selected"
    try:
        fallback = fallback_service_name(pod)
        outcome = inject_template(copy.deepcopy(pod), object_name, options, fallback, defaults)
    except InjectError as exc:
        return _skip_patch(pod, str(exc)), f"skipped: {exc}"
    return outcome.patch, "injected"


def review_response(
    review: dict[str, Any],
    namespace_enabled: bool,
    options: InjectOptions,
    defaults: Defaults | None = None,
) -> dict[str, Any]:
    """Answer one ``AdmissionReview`` v1 request; always allows."""
    request = review.get("request") or {}
    response: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": True}
    try:
        pod = request.get("object")
        if request.get("kind", {}).get("kind") == "Pod" and isinstance(pod, dict):
            namespace = request_namespace(review)
            patch, note = pod_patch(pod, namespace, namespace_enabled, options, defaults)
            log.info("pod %s/%s: %s", namespace, fallback_service_name(pod), note)
            if patch:
                response["patchType"] = "JSONPatch"
                response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    except Exception:  # the webhook's own failure must never block a pod
        log.exception("admission request %s failed; allowing unchanged", response["uid"])
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def request_namespace(review: dict[str, Any]) -> str:
    request = review.get("request") or {}
    pod = request.get("object") or {}
    return str(request.get("namespace") or (pod.get("metadata") or {}).get("namespace") or "")


def create_app(options: InjectOptions, namespaces: NamespaceAnnotations | None = None) -> Starlette:
    """The webhook; ``namespaces`` supplies namespace defaults (none if not given)."""
    namespaces = namespaces or NamespaceAnnotations(None)

    async def handle(request: Request, namespace_enabled: bool) -> JSONResponse:
        try:
            review = json.loads(await request.body())
            if not isinstance(review, dict):
                raise ValueError("AdmissionReview is not a JSON object")
        except ValueError as exc:
            log.warning("unreadable AdmissionReview: %s", exc)
            review = {}
        namespace = request_namespace(review)
        try:
            defaults = Defaults.from_namespace(namespace, await namespaces.get(namespace))
        except Exception as exc:  # without the namespace's defaults, leave the pod alone
            log.warning("namespace %s unreadable (%s); pod allowed unchanged", namespace, exc)
            uid = (review.get("request") or {}).get("uid", "")
            return JSONResponse(review_response({"request": {"uid": uid}}, False, options))
        return JSONResponse(review_response(review, namespace_enabled, options, defaults))

    async def namespace_route(request: Request) -> JSONResponse:
        return await handle(request, namespace_enabled=True)

    async def pod_route(request: Request) -> JSONResponse:
        return await handle(request, namespace_enabled=False)

    async def healthz(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await namespaces.close()

    return Starlette(
        routes=[
            Route("/inject/namespace", namespace_route, methods=["POST"]),
            Route("/inject/pod", pod_route, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/readyz", healthz),
        ],
        lifespan=lifespan,
    )


def webhook_configuration(
    ca_bundle: str, service: str, namespace: str, port: int = 443
) -> dict[str, Any]:
    """The ``MutatingWebhookConfiguration`` for a webhook behind ``service``."""

    def entry(
        name: str, path: str, namespace_selector: dict[str, Any], object_selector: dict[str, Any]
    ) -> dict[str, Any]:
        client: dict[str, Any] = {
            "service": {"name": service, "namespace": namespace, "path": path, "port": port}
        }
        if ca_bundle:
            client["caBundle"] = ca_bundle
        return {
            "name": name,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Ignore",
            "reinvocationPolicy": "Never",
            "timeoutSeconds": 5,
            "clientConfig": client,
            "rules": [
                {
                    "operations": ["CREATE"],
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "resources": ["pods"],
                    "scope": "Namespaced",
                }
            ],
            "namespaceSelector": namespace_selector,
            "objectSelector": object_selector,
        }

    not_system = {
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": [*SYSTEM_NAMESPACES, namespace],
    }

    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_NAME, "labels": {"app.kubernetes.io/part-of": "sidetrace"}},
        "webhooks": [
            entry(
                "namespace.inject.sidetrace.io",
                "/inject/namespace",
                {"matchLabels": {NAMESPACE_LABEL: "enabled"}, "matchExpressions": [not_system]},
                {
                    "matchExpressions": [
                        {"key": POD_LABEL, "operator": "NotIn", "values": ["disabled"]}
                    ]
                },
            ),
            entry(
                "pod.inject.sidetrace.io",
                "/inject/pod",
                {
                    "matchExpressions": [
                        {"key": NAMESPACE_LABEL, "operator": "NotIn", "values": ["enabled"]},
                        not_system,
                    ]
                },
                {"matchLabels": {POD_LABEL: "enabled"}},
            ),
        ],
    }
