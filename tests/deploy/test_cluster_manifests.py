"""KServe, monitoring, training and storage as rendered: the InferenceService speaks OIP v2 under the model's name,
the ServiceMonitor and queue-depth autoscaling use the app's real metric, the PyTorchJob runs the real training
command across pods and writes the very checkpoint the model-pvc overlay serves, and the export Job turns that
checkpoint into the Triton repository that KServe's Triton runtime serves."""

from __future__ import annotations

from app.metrics import Metrics
from app.oip.mnist import MODEL_NAME
from tests.deploy.manifests import Document
from tests.deploy.pods import cpu_cores, effective_security, env, on_claim, pod_spec, settings_of
from training import export
from training.run import parse_args

OIP_MODEL_NAME = MODEL_NAME
"""The model name of the OIP v2 routes; KServe routes /v2/models/<InferenceService name>/ to the predictor."""


def only(docs: list[Document], kind: str) -> Document:
    (doc,) = [doc for doc in docs if doc["kind"] == kind]
    return doc


def test_the_inferenceservice_is_a_custom_oip_v2_predictor_named_after_the_model(rendered):
    isvc = only(rendered["kserve"], "InferenceService")
    assert isvc["metadata"]["name"] == OIP_MODEL_NAME
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    predictor = isvc["spec"]["predictor"]
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"  # KServe's name for a custom predictor's container
    assert env(container)["PROTOCOL"] == "v2"  # how a custom container declares the protocol to KServe
    assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]
    assert predictor["scaleMetric"] == "cpu" and 0 < predictor["scaleTarget"] <= 100
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) & set(container["resources"]["limits"])


def test_the_servicemonitor_scrapes_the_service_and_the_hpa_scales_on_the_apps_queue_depth(rendered):
    docs = rendered["overlays/monitoring"]
    monitor, service = only(docs, "ServiceMonitor"), only(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"

    app_metrics = {family.name for family in Metrics().registry.collect()}
    pods_metrics = [metric["pods"] for metric in only(docs, "HorizontalPodAutoscaler")["spec"]["metrics"][1:]]
    assert [metric["metric"]["name"] for metric in pods_metrics] == ["mnist_serve_queue_depth"]
    assert "mnist_serve_queue_depth" in app_metrics
    # Scale out once more than one batch waits per pod.
    batch = settings_of(only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]).max_batch_size
    assert int(pods_metrics[0]["target"]["averageValue"]) == batch


def training_pod(rendered) -> tuple[Document, dict, dict]:
    job = only(rendered["training"], "PyTorchJob")
    pod = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]
    return job, pod, pod["containers"][0]


def test_the_pytorchjob_runs_the_real_training_command_under_torchrun_across_pods(rendered):
    job, pod, container = training_pod(rendered)
    assert list(job["spec"]["pytorchReplicaSpecs"]) == ["Worker"]
    workers = job["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"]
    assert workers >= 2, "training across machines"
    elastic = job["spec"]["elasticPolicy"]
    assert elastic["rdzvBackend"] == "c10d" and elastic["minReplicas"] == elastic["maxReplicas"] == workers
    assert container["name"] == "pytorch"  # the container the operator configures
    assert container["command"] == ["torchrun"]
    assert container["args"][:2] == ["-m", "training.run"]
    args = parse_args(container["args"][2:])  # the real parser: exits on a flag that does not exist

    per_pod = int(job["spec"]["nprocPerNode"])
    assert per_pod * args.num_threads <= cpu_cores(container["resources"]["limits"]["cpu"])
    assert int(env(container)["OMP_NUM_THREADS"]) == args.num_threads
    security = effective_security(pod, container)
    assert security["runAsNonRoot"] is True and security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]


def test_training_writes_the_checkpoint_that_the_model_pvc_overlay_serves(rendered):
    _, pod, container = training_pod(rendered)
    args = parse_args(container["args"][2:])
    written = on_claim(pod, container, str(args.output))
    data_claim, _ = on_claim(pod, container, str(args.data_dir / "MNIST"))

    serving = pod_spec(only(rendered["overlays/model-pvc"], "Deployment"))
    server = serving["containers"][0]
    served = on_claim(serving, server, settings_of(server).model_path.as_posix())
    assert served == written
    assert next(mount for mount in server["volumeMounts"] if mount["mountPath"] == "/models")["readOnly"] is True

    claim = only(rendered["storage"], "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == written[0] == data_claim
    assert "ReadWriteMany" in claim["spec"]["accessModes"], "pods on several nodes share it"


def test_only_the_model_pvc_overlay_reads_the_model_from_the_claim(rendered):
    for name in ("overlays/cpu", "overlays/gpu", "overlays/monitoring"):
        server = pod_spec(only(rendered[name], "Deployment"))["containers"][0]
        assert "MNIST_SERVE_MODEL_PATH" not in env(server), name  # the checkpoint baked into the image


def test_the_export_job_turns_the_trained_checkpoint_into_the_repository_triton_serves(rendered):
    docs = rendered["kserve-triton"]
    job = only(docs, "Job")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python"] and container["args"][:2] == ["-m", "training.export"]
    args = export.parse_args(container["args"][2:])  # the real parser: exits on a flag that does not exist
    _, trainer, trained = training_pod(rendered)
    assert on_claim(pod, container, str(args.checkpoint)) == on_claim(
        trainer, trained, str(parse_args(trained["args"][2:]).output)
    )
    claim, repository = on_claim(pod, container, str(args.output))

    model = only(docs, "InferenceService")["spec"]["predictor"]["model"]
    assert model["storageUri"] == f"pvc://{claim}/{repository}"
    assert (model["modelFormat"]["name"], model["runtime"], model["protocolVersion"]) == (
        "onnx",
        "kserve-tritonserver",
        "v2",
    )
    assert export.MODEL_NAME == OIP_MODEL_NAME  # Triton serves the folder's name: the same routes as this service
    security = effective_security(pod, container)
    assert security["runAsNonRoot"] is True and security["readOnlyRootFilesystem"] is True
