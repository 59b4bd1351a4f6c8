"""The serving pods as rendered (every overlay and the KServe InferenceService) have the properties that matter:
probes on the app's real health routes and port, hardened security, a drain that fits the grace period, threads
that fit the CPU limit, settings the app accepts, Prometheus scraping, and GPU settings in the GPU overlay."""

from __future__ import annotations

import re

import pytest

from app.config import ENV_PREFIX, Settings
from app.main import create_app
from tests.deploy.manifests import DEPLOY, Document, kustomizations
from tests.deploy.pods import (
    cpu_cores,
    effective_security,
    env,
    image_default_env,
    image_stages,
    memory_bytes,
    pod_spec,
    port_number,
    pre_stop_seconds,
    settings_of,
    volume_for_mount,
)

SERVING_DIRS = [
    name
    for name in (str(path.relative_to(DEPLOY)) for path in kustomizations())
    if name == "base" or name.startswith("overlays/")
] + ["kserve"]
APP_PATHS = set(create_app().openapi()["paths"])


def workload(rendered: dict[str, list[Document]], name: str) -> Document:
    kind = "InferenceService" if name == "kserve" else "Deployment"
    (doc,) = [doc for doc in rendered[name] if doc["kind"] == kind]
    return doc


def server(doc: Document) -> dict:
    return pod_spec(doc)["containers"][0]


def serving_ports(container: dict) -> tuple[int, int]:
    """The HTTP and gRPC ports the image's server listens on in this container (its env, else the image's ENV)."""
    variables = {**image_default_env(), **env(container)}
    return int(variables["UVICORN_PORT"]), int(variables[f"{ENV_PREFIX}GRPC_PORT"])


@pytest.mark.parametrize("name", SERVING_DIRS)
def test_probes_use_the_apps_health_routes_on_the_serving_port(name, rendered):
    container = server(workload(rendered, name))
    port, grpc_port = serving_ports(container)
    # KServe routes one port per predictor (HTTP here: REST v2); a Deployment's Service exposes gRPC too
    expected = [("http1", port)] if name == "kserve" else [("http", port), ("grpc", grpc_port)]
    assert [(item["name"], item["containerPort"]) for item in container["ports"]] == expected
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60, "too short for loading on a slow node"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in APP_PATHS, f"{probe} {get['path']} is not a route of the app"
        assert port_number(container, get["port"]) == port, probe


@pytest.mark.parametrize("name", SERVING_DIRS)
def test_pods_are_hardened(name, rendered):
    pod = pod_spec(workload(rendered, name))
    container = pod["containers"][0]
    security = effective_security(pod, container)
    assert security["runAsNonRoot"] is True and security["runAsUser"] > 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"] and "add" not in security["capabilities"]
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    mount, volume = volume_for_mount(pod, container, "/tmp")  # the app's only writable path on a read-only root
    assert "emptyDir" in volume and not mount.get("readOnly", False)
    image = image_default_env()
    assert image["XDG_CACHE_HOME"].startswith("/tmp/")


def test_the_image_runs_gunicorn_as_pid_1_so_that_sigterm_reaches_it():
    """The drain relies on gunicorn's master itself getting SIGTERM (it stops its workers gracefully): an
    exec-form CMD, no shell or ENTRYPOINT wrapper."""
    instructions = [line for stage in image_stages() for line in re.findall(r"^(?:CMD|ENTRYPOINT) .*", stage, re.M)]
    assert instructions[-1].startswith('CMD ["gunicorn", "-c", "python:app.gunicorn_conf",')
    assert not any(line.startswith("ENTRYPOINT") for line in instructions)


@pytest.mark.parametrize("name", SERVING_DIRS)
def test_a_stopping_pod_leaves_the_endpoints_then_drains_within_the_grace_period(name, rendered):
    pod = pod_spec(workload(rendered, name))
    container = pod["containers"][0]
    wait = pre_stop_seconds(container)
    drain = int(env(container)["UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN"])
    assert wait >= 5, "endpoint removal needs a few seconds to reach kube-proxy and load balancers"
    assert drain >= settings_of(container).request_timeout_s, "an accepted request may wait that long for the model"
    assert wait + drain < pod["terminationGracePeriodSeconds"], "SIGKILL would cut the drain short"


@pytest.mark.parametrize("name", SERVING_DIRS)
def test_threads_and_workers_fit_the_cpu_limit(name, rendered):
    container = server(workload(rendered, name))
    variables, settings = env(container), settings_of(container)
    workers = int(variables["WEB_CONCURRENCY"])
    assert workers == 1, "one process per pod: /metrics and the batcher are per process; scale with replicas"
    # Set explicitly: their defaults follow the node's CPU count, not the container's limit.
    assert {"MNIST_SERVE_NUM_THREADS", "MNIST_SERVE_DECODE_THREADS"} <= set(variables)
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert workers * settings.num_threads <= cpu_cores(limits["cpu"])
    assert workers * settings.decode_threads <= cpu_cores(limits["cpu"])
    assert cpu_cores(requests["cpu"]) <= cpu_cores(limits["cpu"])
    assert memory_bytes(requests["memory"]) <= memory_bytes(limits["memory"])


@pytest.mark.parametrize("name", SERVING_DIRS)
def test_every_setting_is_one_the_app_knows_and_accepts(name, rendered):
    variables = env(server(workload(rendered, name)))
    fields = {f"{ENV_PREFIX}{field.upper()}" for field in Settings.model_fields}
    assert {key for key in variables if key.startswith(ENV_PREFIX)} <= fields  # a typo would be ignored
    settings_of(server(workload(rendered, name)))  # raises SettingsError on a value the app refuses


@pytest.mark.parametrize("name", SERVING_DIRS)
def test_prometheus_scrapes_the_metrics_route_on_the_serving_port(name, rendered):
    doc = workload(rendered, name)
    annotations = doc["spec"]["predictor"] if name == "kserve" else doc["spec"]["template"]["metadata"]
    annotations = annotations["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics" and "/metrics" in APP_PATHS
    assert int(annotations["prometheus.io/port"]) == server(doc)["ports"][0]["containerPort"]


@pytest.mark.parametrize("name", [name for name in SERVING_DIRS if name != "kserve"])
def test_service_hpa_and_pdb_select_the_deployment(name, rendered):
    docs = {doc["kind"]: doc for doc in rendered[name]}
    deployment, service = docs["Deployment"], docs["Service"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    container = server(deployment)
    http, grpc = service["spec"]["ports"]
    assert [port_number(container, port["targetPort"]) for port in (http, grpc)] == list(serving_ports(container))
    assert grpc["appProtocol"] == "kubernetes.io/h2c"  # gRPC without TLS: HTTP/2 in the clear

    hpa = docs["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mnist-serve"}
    assert deployment["metadata"]["name"] == "mnist-serve"
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    cpu = [metric for metric in hpa["spec"]["metrics"] if metric["type"] == "Resource"]
    assert [metric["resource"]["name"] for metric in cpu] == ["cpu"]
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_the_gpu_overlay_asks_for_a_gpu_node_and_uses_it(rendered):
    pod = pod_spec(workload(rendered, "overlays/gpu"))
    container = pod["containers"][0]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    on_gpu_nodes = "nvidia.com/gpu.present" in pod.get("nodeSelector", {}) or any(
        toleration["key"] == "nvidia.com/gpu" for toleration in pod.get("tolerations", [])
    )
    assert on_gpu_nodes
    settings = settings_of(container)
    assert settings.device == "cuda"
    assert settings.max_batch_size > Settings.model_fields["max_batch_size"].default


@pytest.mark.parametrize("name", [name for name in SERVING_DIRS if name != "overlays/gpu"])
def test_cpu_workloads_neither_ask_for_nor_use_a_gpu(name, rendered):
    container = server(workload(rendered, name))
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert settings_of(container).device == "cpu"
