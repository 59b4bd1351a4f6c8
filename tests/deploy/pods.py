"""Read the facts the property tests check out of rendered pod specs: env, CPU, ports, probes, security, drain."""

from __future__ import annotations

import re
from typing import Any

from app.config import ENV_PREFIX, Settings, load_settings
from tests.deploy.manifests import Document
from tests.helpers import REPO

PodSpec = dict[str, Any]
Container = dict[str, Any]


def pod_spec(doc: Document) -> PodSpec:
    """The pod spec of a Deployment, or the predictor of an InferenceService (a pod spec plus KServe's fields)."""
    if doc["kind"] == "InferenceService":
        return doc["spec"]["predictor"]
    return doc["spec"]["template"]["spec"]


def env(container: Container) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def cpu_cores(quantity: str | int | float) -> float:
    """A Kubernetes CPU quantity ("2", "500m", 1.5) in cores."""
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}
    number, unit = re.fullmatch(r"(\d+)([A-Za-z]*)", str(quantity)).groups()
    return int(number) * units.get(unit, 1)


def image_stages(target: str = "serve") -> list[str]:
    """The Dockerfile's instructions that build `target`: its stage and the stages it is built FROM, base first."""
    stages = {}
    for chunk in re.split(r"^(?=FROM )", (REPO / "Dockerfile").read_text(), flags=re.M)[1:]:
        base, name = re.match(r"FROM (\S+) AS (\S+)", chunk).groups()
        stages[name] = (base, chunk)
    lineage = []
    while target in stages:
        target, chunk = stages[target]
        lineage.insert(0, re.sub(r"\\\n", " ", chunk))  # join continued lines
    return lineage


def image_default_env() -> dict[str, str]:
    """The ENV the serving image sets (e.g. UVICORN_PORT): what a container has unless the manifest overrides it."""
    variables: dict[str, str] = {}
    for stage in image_stages():
        for line in re.findall(r"^ENV (.*)$", stage, re.M):
            variables.update(re.findall(r"(\w+)=(\S+)", line))
    return variables


def port_number(container: Container, port: int | str) -> int:
    """A probe's or a Service's port (a number or a container port's name) as a number; KeyError if unknown."""
    if isinstance(port, int):
        return port
    return {item["name"]: item["containerPort"] for item in container.get("ports", [])}[port]


def effective_security(pod: PodSpec, container: Container) -> dict[str, Any]:
    """Pod-level securityContext overridden field by field by the container's, as the kubelet applies them."""
    pod_level = {key: value for key, value in pod.get("securityContext", {}).items() if key != "fsGroup"}
    return {**pod_level, **container.get("securityContext", {})}


def volume_for_mount(pod: PodSpec, container: Container, mount_path: str) -> tuple[dict, dict]:
    """The (volumeMount, volume) mounted at `mount_path`; StopIteration if nothing is."""
    mount = next(item for item in container.get("volumeMounts", []) if item["mountPath"] == mount_path)
    volume = next(item for item in pod.get("volumes", []) if item["name"] == mount["name"])
    return mount, volume


def on_claim(pod: PodSpec, container: Container, path: str) -> tuple[str, str]:
    """Where a file path inside the container lives: (PersistentVolumeClaim name, path inside the claim)."""
    for mount in sorted(container.get("volumeMounts", []), key=lambda item: -len(item["mountPath"])):
        root = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(root):
            volume = next(item for item in pod["volumes"] if item["name"] == mount["name"])
            inside = "/".join(part for part in (mount.get("subPath", ""), path[len(root) :]) if part)
            return volume["persistentVolumeClaim"]["claimName"], inside
    raise AssertionError(f"{path} is on no volume mount")


def pre_stop_seconds(container: Container) -> int:
    """The preStop wait: `sleep N` as an exec hook, or the kubelet's own sleep action."""
    hook = container["lifecycle"]["preStop"]
    if "sleep" in hook:
        return int(hook["sleep"]["seconds"])
    command = hook["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, f"preStop is not a plain sleep: {command}"
    return int(command[1])


def settings_of(container: dict) -> Settings:
    """The app's settings for this container's MNIST_SERVE_* variables (the app's own parser and defaults)."""
    variables = env(container)
    return load_settings(
        **{key[len(ENV_PREFIX) :].lower(): value for key, value in variables.items() if key.startswith(ENV_PREFIX)}
    )
