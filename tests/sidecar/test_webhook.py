"""The admission webhook over real HTTPS: its JSON Patch must equal ``sidetrace inject``."""

from __future__ import annotations

import base64
import copy
import json
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonpatch
import kubernetes_validate
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from runtime.loopback_ports import free_port
from sidecar.inject import (
    RECORD,
    SIDECAR_NAME,
    SKIP_REASON,
    InjectOptions,
    inject_documents,
    templates,
)
from sidecar.manifest_io import parse
from tests.support import ROOT
from tests.support.polling import alive, eventually
from tests.support.threaded_server import ThreadedUvicorn

MANIFESTS = ROOT / "tests" / "manifests"
# The sidecar image as the webhook's own pod shows it (kustomize rewrote the Deployment's).
OWN_IMAGE = "registry.example.com/platform/sidetrace-sidecar:9.9.9"


class Webhook:
    def __init__(self, base: str, ca_file: Path) -> None:
        self.base = base
        self.client = httpx.Client(verify=ssl.create_default_context(cafile=str(ca_file)))

    def review(self, pod: dict, path: str = "/inject/namespace") -> dict:
        uid = str(uuid.uuid4())
        body = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": pod["metadata"].get("namespace", "default"),
                "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": pod,
                "dryRun": False,
            },
        }
        reply = self.client.post(self.base + path, json=body, timeout=30)
        assert reply.status_code == 200
        review = reply.json()
        assert review["apiVersion"] == "admission.k8s.io/v1"
        assert review["kind"] == "AdmissionReview"
        assert review["response"]["uid"] == uid
        assert review["response"]["allowed"] is True
        return review["response"]


def pop_note(result: dict, original: dict) -> str:
    """Remove the webhook's skip note (and the annotations map it created)."""
    annotations = result["metadata"]["annotations"]
    reason = annotations.pop(SKIP_REASON)
    if not annotations and "annotations" not in original["metadata"]:
        del result["metadata"]["annotations"]
    return reason


def patched(pod: dict, response: dict) -> dict:
    if "patch" not in response:
        return pod
    assert response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    return jsonpatch.apply_patch(pod, patch)


NAMESPACES = {
    "team-defaults": {
        "sidetrace.io/sampling-ratio": "0.5",
        "sidetrace.io/collector": "otel.team:4318",
        "sidetrace.io/inject": "enabled",
        "example.com/owner": "team",
    },
    "broken-defaults": {"sidetrace.io/sampling-ratio": "9"},
    "shop": {},
    "team": {},
}


class KubeApiStub:
    """The one Kubernetes API call the webhook makes, served over TLS in a thread."""

    def __init__(self, folder: Path) -> None:
        async def namespace(request: Request) -> JSONResponse:
            if request.headers.get("authorization") != "Bearer test-token":
                return JSONResponse({"reason": "Unauthorized"}, status_code=401)
            name = request.path_params["name"]
            if name == "api-down":
                return JSONResponse({"reason": "InternalError"}, status_code=500)
            if name not in NAMESPACES:
                return JSONResponse({"reason": "NotFound"}, status_code=404)
            metadata = {"name": name, "annotations": NAMESPACES[name]}
            return JSONResponse({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})

        async def pod(request: Request) -> JSONResponse:
            if request.headers.get("authorization") != "Bearer test-token":
                return JSONResponse({"reason": "Unauthorized"}, status_code=401)
            params = request.path_params
            if (params["namespace"], params["name"]) != ("sidetrace", "sidetrace-webhook-0"):
                return JSONResponse({"reason": "NotFound"}, status_code=404)
            spec = {
                "initContainers": [{"name": "sidecar-image", "image": OWN_IMAGE}],
                "containers": [{"name": "webhook", "image": "registry.example.com/sidetrace:1"}],
            }
            return JSONResponse({"kind": "Pod", "spec": spec})

        # What `webhook renew` reads and writes: one Secret and the webhook configuration.
        self.secrets: dict[str, dict] = {}
        self.configuration: dict = {"webhooks": [{"clientConfig": {}}, {"clientConfig": {}}]}

        async def secret(request: Request) -> JSONResponse:
            if request.headers.get("authorization") != "Bearer test-token":
                return JSONResponse({"reason": "Unauthorized"}, status_code=401)
            name = request.path_params["name"]
            if request.method == "PUT":
                self.secrets[name] = json.loads(await request.body())
            if name not in self.secrets:
                return JSONResponse({"reason": "NotFound"}, status_code=404)
            return JSONResponse(self.secrets[name])

        async def configuration(request: Request) -> JSONResponse:
            if request.method == "PATCH":
                assert request.headers["content-type"] == "application/json-patch+json"
                patch = jsonpatch.JsonPatch(json.loads(await request.body()))
                self.configuration = patch.apply(self.configuration)
            return JSONResponse(self.configuration)

        app = Starlette(
            routes=[
                Route("/api/v1/namespaces/{name}", namespace),
                Route("/api/v1/namespaces/{namespace}/pods/{name}", pod),
                Route(
                    "/api/v1/namespaces/sidetrace/secrets/{name}", secret, methods=["GET", "PUT"]
                ),
                Route(
                    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
                    "sidetrace-injector",
                    configuration,
                    methods=["GET", "PATCH"],
                ),
            ]
        )
        self.server = ThreadedUvicorn(
            app,
            ssl_certfile=str(folder / "tls.crt"),
            ssl_keyfile=str(folder / "tls.key"),
            timeout_graceful_shutdown=2,
            lifespan="auto",
        ).start()
        self.url = self.server.url

    def stop(self) -> None:
        self.server.stop(timeout=10)


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    folder = tmp_path_factory.mktemp("webhook")
    certs = subprocess.run(
        [sys.executable, "-m", "sidetrace", "webhook", "certs", "--ip", "127.0.0.1"]
        + ["--out-dir", str(folder), "--namespace", "sidetrace"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert certs.returncode == 0, certs.stderr
    printed = list(yaml.safe_load_all(certs.stdout))
    assert [d["kind"] for d in printed] == ["Secret", "MutatingWebhookConfiguration"]
    for document in printed:
        kubernetes_validate.validate(document, "1.29.0", strict=True)
    configuration = printed[1]
    ca_bundle = base64.b64decode(configuration["webhooks"][0]["clientConfig"]["caBundle"])
    assert ca_bundle == (folder / "ca.crt").read_bytes()
    assert {w["failurePolicy"] for w in configuration["webhooks"]} == {"Ignore"}
    port = free_port()
    (folder / "token").write_text("test-token\n")
    api = KubeApiStub(folder)
    log = open(folder / "webhook.log", "wb")  # noqa: SIM115 - closed in teardown
    process = subprocess.Popen(
        [sys.executable, "-m", "sidetrace", "webhook", "--host", "127.0.0.1"]
        + ["--port", str(port), "--cert", str(folder / "tls.crt")]
        + ["--key", str(folder / "tls.key"), "--kube-api", api.url]
        + ["--kube-token-file", str(folder / "token"), "--kube-ca-file", str(folder / "ca.crt")]
        + ["--image-from-pod", "--pod-name", "sidetrace-webhook-0", "--pod-namespace", "sidetrace"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    hook = Webhook(f"https://127.0.0.1:{port}", folder / "ca.crt")
    try:

        def healthy() -> bool:
            alive(process, "the webhook", folder / "webhook.log")
            return hook.client.get(hook.base + "/healthz", timeout=2).status_code == 200

        eventually(healthy, 60, what="the webhook answers", ignoring=(httpx.TransportError,))
        yield hook
    finally:
        hook.client.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        api.stop()
        log.close()


def pods_from_manifests() -> list[tuple[str, dict]]:
    """Each pod template of the test manifests as the Pod its controller would create."""
    pods = []
    for path in sorted(MANIFESTS.iterdir()):
        documents = json.loads(json.dumps(parse(path.read_text()).documents))
        for document in documents:
            for template, name, _ in templates(document):
                if template is document:
                    pods.append((name, template))
                    continue
                metadata = copy.deepcopy(template.get("metadata") or {})
                metadata["generateName"] = name.split("/")[1].split(" ")[0] + "-"
                metadata["namespace"] = "shop"
                pod = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata}
                pods.append((name, {**pod, "spec": copy.deepcopy(template["spec"])}))
    return pods


PODS = pods_from_manifests()


@pytest.mark.parametrize(("name", "pod"), PODS, ids=[name for name, _ in PODS])
def test_patch_equals_inject(webhook: Webhook, name: str, pod: dict) -> None:
    response = webhook.review(copy.deepcopy(pod))
    result = patched(copy.deepcopy(pod), response)
    expected = copy.deepcopy(pod)
    [outcome] = inject_documents([expected], InjectOptions(image=OWN_IMAGE))
    if outcome.skip_reason:
        assert pop_note(result, pod) == outcome.skip_reason
        assert result == pod
        return
    assert result == expected
    kubernetes_validate.validate(result, "1.29.0", strict=True)
    # Never twice: the injected pod comes back with nothing but a note.
    again = patched(copy.deepcopy(result), webhook.review(copy.deepcopy(result)))
    assert pop_note(again, result) == "already injected"
    assert again == result


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"generateName": "api-", "namespace": "team", "labels": {"app": "api"}},
    "spec": {"containers": [{"name": "api", "image": "api:1", "ports": [{"containerPort": 80}]}]},
}


def with_annotations(**annotations: str) -> dict:
    pod = copy.deepcopy(POD)
    pod["metadata"]["annotations"] = {f"sidetrace.io/{k}": v for k, v in annotations.items()}
    return pod


def test_pod_label_opts_in_outside_enabled_namespaces(webhook: Webhook) -> None:
    pod = copy.deepcopy(POD)
    pod["metadata"]["labels"]["sidetrace.io/inject"] = "enabled"
    result = patched(copy.deepcopy(pod), webhook.review(copy.deepcopy(pod), "/inject/pod"))
    assert SIDECAR_NAME in [c["name"] for c in result["spec"]["initContainers"]]
    pod["metadata"]["labels"]["sidetrace.io/inject"] = "disabled"
    result = patched(copy.deepcopy(pod), webhook.review(copy.deepcopy(pod)))
    assert pop_note(result, pod) == "opted out by label sidetrace.io/inject=disabled"


def test_pod_annotation_opts_in_outside_enabled_namespaces(webhook: Webhook) -> None:
    assert "patch" not in webhook.review(copy.deepcopy(POD), "/inject/pod")
    pod = with_annotations(inject="enabled")
    result = patched(copy.deepcopy(pod), webhook.review(copy.deepcopy(pod), "/inject/pod"))
    assert RECORD in result["metadata"]["annotations"]
    assert SIDECAR_NAME in [c["name"] for c in result["spec"]["initContainers"]]


@pytest.mark.parametrize(
    ("pod", "reason"),
    [
        (with_annotations(inject="disabled"), "opted out by annotation sidetrace.io/inject"),
        ({**POD, "spec": {**POD["spec"], "hostNetwork": True}}, "hostNetwork pods"),
        (with_annotations(**{"sampling-ratio": "2"}), "annotation sidetrace.io/sampling-ratio"),
    ],
)
def test_skips_are_recorded_in_an_annotation(webhook: Webhook, pod: dict, reason: str) -> None:
    result = patched(copy.deepcopy(pod), webhook.review(copy.deepcopy(pod)))
    assert reason in pop_note(result, pod)
    assert result == pod


def test_own_errors_allow_unchanged(webhook: Webhook) -> None:
    reply = webhook.client.post(
        webhook.base + "/inject/namespace", content=b"{not json", timeout=30
    )
    assert reply.status_code == 200
    assert reply.json()["response"]["allowed"] is True
    broken = copy.deepcopy(POD)
    broken["spec"]["containers"] = "not a list"
    response = webhook.review(broken)
    assert "patch" not in response


def sidecar_args(pod: dict) -> list[str]:
    init = pod["spec"]["initContainers"]
    return next(c for c in init if c["name"] == SIDECAR_NAME)["args"]


def test_namespace_annotations_are_defaults(webhook: Webhook) -> None:
    pod = copy.deepcopy(POD)
    pod["metadata"]["namespace"] = "team-defaults"
    args = sidecar_args(patched(copy.deepcopy(pod), webhook.review(copy.deepcopy(pod))))
    assert "--sampling-ratio=0.5" in args
    assert "--collector=otel.team:4318" in args
    own = with_annotations(**{"sampling-ratio": "0.1"})
    own["metadata"]["namespace"] = "team-defaults"
    args = sidecar_args(patched(copy.deepcopy(own), webhook.review(copy.deepcopy(own))))
    assert "--sampling-ratio=0.1" in args  # the pod's own annotation wins
    assert "--collector=otel.team:4318" in args


def test_bad_namespace_default_is_named(webhook: Webhook) -> None:
    pod = copy.deepcopy(POD)
    pod["metadata"]["namespace"] = "broken-defaults"
    result = patched(copy.deepcopy(pod), webhook.review(copy.deepcopy(pod)))
    note = pop_note(result, pod)
    assert "annotation sidetrace.io/sampling-ratio (default of namespace broken-defaults)" in note
    assert result == pod


def test_unreadable_namespace_allows_unchanged(webhook: Webhook) -> None:
    pod = copy.deepcopy(POD)
    pod["metadata"]["namespace"] = "api-down"
    assert "patch" not in webhook.review(pod)


def _make_certs(folder: Path) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "sidetrace", "webhook", "certs", "--ip", "127.0.0.1"]
        + ["--out-dir", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr


def _healthy(base: str, ca_file: Path) -> bool:
    """A new TLS connection trusting only ``ca_file`` gets /healthz."""
    try:
        with httpx.Client(verify=ssl.create_default_context(cafile=str(ca_file))) as client:
            return client.get(base + "/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_renewed_certificate_is_served_without_restart(tmp_path: Path) -> None:
    served, renewed = tmp_path / "served", tmp_path / "renewed"
    _make_certs(served)
    _make_certs(renewed)
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    with open(tmp_path / "webhook.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sidetrace", "webhook", "--host", "127.0.0.1"]
            + ["--port", str(port), "--cert", str(served / "tls.crt")]
            + ["--key", str(served / "tls.key"), "--tls-reload-interval", "0.5"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        log = tmp_path / "webhook.log"
        eventually(
            lambda: alive(process, "the webhook", log) or _healthy(base, served / "ca.crt"),
            60,
            what="the webhook starts",
        )
        assert not _healthy(base, renewed / "ca.crt")
        for name in ("tls.key", "tls.crt"):
            (renewed / name).replace(served / name)
        eventually(
            lambda: _healthy(base, renewed / "ca.crt"), 30, what="the renewed certificate served"
        )
        assert process.poll() is None
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_renew_replaces_certificates_near_expiry_and_trusts_both_cas(tmp_path: Path) -> None:
    _make_certs(tmp_path)
    (tmp_path / "token").write_text("test-token\n")
    api = KubeApiStub(tmp_path)
    old = {n: (tmp_path / n).read_bytes() for n in ("ca.crt", "tls.crt", "tls.key")}
    api.secrets["sidetrace-webhook-tls"] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "sidetrace-webhook-tls", "namespace": "sidetrace"},
        "data": {n: base64.b64encode(v).decode() for n, v in old.items()},
    }

    def renew(before_days: int) -> str:
        run = subprocess.run(
            [sys.executable, "-m", "sidetrace", "webhook", "--kube-api", api.url]
            + ["--kube-token-file", str(tmp_path / "token")]
            + ["--kube-ca-file", str(tmp_path / "ca.crt"), "renew"]
            + ["--renew-before-days", str(before_days)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        return run.stdout

    try:
        assert "still valid" in renew(30)  # 365 days left: nothing to do
        assert api.configuration["webhooks"][0]["clientConfig"] == {}
        assert "renewed" in renew(400)  # within the window: new certificates
        data = api.secrets["sidetrace-webhook-tls"]["data"]
        new = {n: base64.b64decode(v) for n, v in data.items()}
        assert new["tls.crt"] != old["tls.crt"] and new["ca.crt"] != old["ca.crt"]
        for hook in api.configuration["webhooks"]:
            bundle = base64.b64decode(hook["clientConfig"]["caBundle"])
            assert bundle == new["ca.crt"] + old["ca.crt"]
    finally:
        api.stop()
