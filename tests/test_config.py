"""Settings: defaults, environment parsing, and errors that name the variable to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import DEFAULT_MODEL_PATH, SettingsError, load_settings


def test_defaults_point_at_the_shipped_model_whatever_the_working_dir(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.model_path == DEFAULT_MODEL_PATH
    assert settings.model_path.is_absolute()
    assert settings.model_path.parts[-2:] == ("models", "mnist_cnn.safetensors")
    assert settings.device == "auto" and settings.max_batch_size >= 1


def test_environment_variables_are_read_with_the_prefix(monkeypatch):
    monkeypatch.setenv("MNIST_SERVE_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("MNIST_SERVE_DEVICE", "CUDA:1")
    monkeypatch.setenv("MNIST_SERVE_LOG_LEVEL", "debug")
    monkeypatch.setenv("MNIST_SERVE_MODEL_PATH", "/srv/model.safetensors")
    settings = load_settings()
    assert settings.max_batch_size == 8
    assert settings.device == "cuda:1"
    assert settings.log_level == "DEBUG"
    assert settings.model_path == Path("/srv/model.safetensors")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MNIST_SERVE_MAX_BATCH_SIZE", "0"),
        ("MNIST_SERVE_MAX_BATCH_SIZE", "many"),
        ("MNIST_SERVE_MAX_BATCH_WAIT_MS", "-1"),
        ("MNIST_SERVE_MAX_QUEUE_SIZE", "0"),
        ("MNIST_SERVE_REQUEST_TIMEOUT_S", "0"),
        ("MNIST_SERVE_MAX_BODY_BYTES", "-5"),
        ("MNIST_SERVE_MAX_IMAGE_PIXELS", "0"),
        ("MNIST_SERVE_MAX_BATCH_IMAGES", "0"),
        ("MNIST_SERVE_NUM_THREADS", "0"),
        ("MNIST_SERVE_DEVICE", "tpu"),
        ("MNIST_SERVE_DEVICE", "mps"),
        ("MNIST_SERVE_PRECISION", "int4"),
        ("MNIST_SERVE_LOG_LEVEL", "loud"),
    ],
)
def test_bad_value_error_names_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_bad_device_lists_the_accepted_forms(monkeypatch):
    monkeypatch.setenv("MNIST_SERVE_DEVICE", "gpu0")
    with pytest.raises(SettingsError, match="MNIST_SERVE_DEVICE: .*'gpu0' is not a device: use auto, cpu, cuda"):
        load_settings()


def test_batch_larger_than_the_queue_is_refused(monkeypatch):
    monkeypatch.setenv("MNIST_SERVE_MAX_QUEUE_SIZE", "4")
    monkeypatch.setenv("MNIST_SERVE_MAX_BATCH_IMAGES", "8")
    with pytest.raises(SettingsError, match="MNIST_SERVE_MAX_BATCH_IMAGES.*MNIST_SERVE_MAX_QUEUE_SIZE"):
        load_settings()
