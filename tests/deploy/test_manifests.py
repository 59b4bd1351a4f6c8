"""Every kustomization under deploy/ renders offline and every document validates strictly against a schema.

Also proves that the validator is strict: a misspelled field, a misspelled kind or an unknown kind is rejected.
"""

from __future__ import annotations

import copy
import re

import pytest

from tests.deploy.manifests import DEPLOY, Document, ManifestError, ManifestValidator, kustomizations
from tests.helpers import REPO

SERVING = {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
EXPECTED = {
    "base": SERVING,
    "overlays/cpu": SERVING,
    "overlays/gpu": SERVING,
    "overlays/monitoring": SERVING | {"ServiceMonitor"},
    "overlays/model-pvc": SERVING,
    "storage": {"PersistentVolumeClaim"},
    "kserve": {"InferenceService"},
    "kserve-triton": {"Job", "InferenceService"},
    "training": {"PyTorchJob"},
}


def test_every_kustomization_is_known_and_renders_the_expected_kinds(rendered):
    assert set(rendered) == set(EXPECTED), "a new kustomization under deploy/: add it to EXPECTED"
    for name, docs in rendered.items():
        assert {doc["kind"] for doc in docs} == EXPECTED[name], name


@pytest.mark.parametrize("name", [str(path.relative_to(DEPLOY)) for path in kustomizations()])
def test_every_rendered_document_validates_strictly(name, rendered, validator):
    for doc in rendered[name]:
        validator.validate(doc)


def test_custom_resources_are_checked_against_their_crd(rendered, validator):
    schemas = {
        doc["kind"]: validator.validate(doc)
        for doc in rendered["kserve"] + rendered["training"] + rendered["overlays/monitoring"]
    }
    assert schemas["InferenceService"].startswith("CRD schema serving.kserve.io/v1beta1 InferenceService")
    assert schemas["PyTorchJob"].startswith("CRD schema kubeflow.org/v1 PyTorchJob")
    assert schemas["ServiceMonitor"].startswith("CRD schema monitoring.coreos.com/v1 ServiceMonitor")
    assert schemas["Deployment"].startswith("Kubernetes 1.30.0, 1.37.0 strict")


def first(docs: list[Document], kind: str) -> Document:
    return copy.deepcopy(next(doc for doc in docs if doc["kind"] == kind))


def rename(mapping: dict, old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


def unexpected(field: str) -> str:
    return re.escape(f"'{field}' was unexpected")


def rejects(validator: ManifestValidator, doc: Document, expected: str) -> None:
    with pytest.raises(ManifestError, match=expected):
        validator.validate(doc)


def test_a_misspelled_field_fails_in_every_kind(rendered, validator):
    deployment = first(rendered["overlays/cpu"], "Deployment")
    rename(deployment["spec"]["template"]["spec"]["containers"][0], "readinessProbe", "readinesProbe")
    rejects(validator, deployment, unexpected("readinesProbe"))

    hpa = first(rendered["overlays/cpu"], "HorizontalPodAutoscaler")
    rename(hpa["spec"], "behavior", "behaviour")
    rejects(validator, hpa, unexpected("behaviour"))

    service = first(rendered["overlays/monitoring"], "ServiceMonitor")
    rename(service["spec"]["endpoints"][0], "path", "pth")
    rejects(validator, service, unexpected("pth"))

    isvc = first(rendered["kserve"], "InferenceService")
    rename(isvc["spec"]["predictor"]["containers"][0], "livenessProbe", "livenesProbe")
    rejects(validator, isvc, unexpected("livenesProbe"))

    job = first(rendered["training"], "PyTorchJob")
    rename(job["spec"]["pytorchReplicaSpecs"]["Worker"], "replicas", "replica")
    rejects(validator, job, unexpected("replica"))


def test_a_wrong_type_or_misspelled_metadata_fails(rendered, validator):
    deployment = first(rendered["overlays/cpu"], "Deployment")
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "thirty"
    rejects(validator, deployment, "'thirty' is not of type")

    job = first(rendered["training"], "PyTorchJob")
    job["spec"]["elasticPolicy"]["minReplicas"] = "two"
    rejects(validator, job, "'two' is not of type")

    isvc = first(rendered["kserve"], "InferenceService")
    rename(isvc["metadata"], "labels", "lables")  # CRD schemas leave metadata open: ObjectMeta catches it
    rejects(validator, isvc, unexpected("lables"))


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("example.com/v1", "Widget"),  # a kind nobody has a schema for
        ("apps/v1", "Deploymnet"),  # a misspelled core kind
        ("serving.kserve.io/v1alpha1", "InferenceService"),  # a version the CRD does not serve
        ("serving.kserve.io/v1alpha1", "ServingRuntime"),  # a real KServe kind whose CRD is not in the set
    ],
)
def test_a_kind_without_a_schema_fails(api_version, kind, validator):
    rejects(validator, {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}}, "no schema")


def test_readme_names_only_deploy_paths_that_exist():
    named = set(re.findall(r"deploy/[\w./-]*\w", (REPO / "README.md").read_text()))
    assert named, "the README's Kubernetes section names the deploy/ folders"
    for path in named:
        assert (REPO / path).exists(), path
