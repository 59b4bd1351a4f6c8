"""`python -m training.export`: the shipped checkpoint as ONNX in a Triton model repository. Its config.pbtxt is
read by Triton's own schema (tritonclient's model_config.proto); onnxruntime runs the file for any batch size and
answers real MNIST test digits as this service does for `pixels` (the same calibrated probabilities)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from app.config import DEFAULT_MODEL_PATH, Settings
from app.predictor import Predictor
from mnist_model import checkpoint_version
from training.export import export, main, parse_args

pytestmark = [
    pytest.mark.slow,  # the ONNX exporter takes ~10 s
    pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(), reason="the shipped checkpoint is not trained yet"),
]


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("triton")
    assert main(["--checkpoint", str(DEFAULT_MODEL_PATH), "--output", str(output), "--max-batch-size", "32"]) == 0
    return output


def test_the_repository_has_tritons_layout_and_a_config_its_schema_reads(repository: Path):
    from tritonclient.grpc import model_config_pb2

    assert (repository / "mnist" / "1" / "model.onnx").is_file()
    config = text_format.Parse((repository / "mnist" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert (config.name, config.backend, config.max_batch_size) == ("mnist", "onnxruntime", 32)
    [pixels] = config.input
    assert (pixels.name, pixels.data_type, list(pixels.dims)) == ("pixels", model_config_pb2.TYPE_UINT8, [28, 28])
    [probabilities] = config.output
    assert (probabilities.name, probabilities.data_type, list(probabilities.dims)) == (
        "probabilities",
        model_config_pb2.TYPE_FP32,
        [10],
    )
    assert config.dynamic_batching.max_queue_delay_microseconds == 20_000
    assert config.parameters["checkpoint_version"].string_value == checkpoint_version(DEFAULT_MODEL_PATH)


def test_onnxruntime_answers_real_digits_as_the_service_does(repository: Path, mnist_root: Path):
    import onnxruntime

    from training.data import load_split

    split = load_split(mnist_root, train=False)
    pixels, labels = split.images[:256].numpy(), split.labels[:256].numpy()
    session = onnxruntime.InferenceSession(
        str(repository / "mnist" / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    served = Predictor(Settings(model_path=DEFAULT_MODEL_PATH, device="cpu", precision="float32", digit_gate=False))
    for batch in (pixels[:1], pixels[:32], pixels):  # 256 > --max-batch-size: the file itself takes any batch
        [probabilities] = session.run(["probabilities"], {"pixels": batch})
        expected = served.predict(batch).numpy()
        assert probabilities.shape == (len(batch), 10) and probabilities.dtype == np.float32
        np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert np.mean(probabilities.argmax(axis=1) == labels) >= 0.98


def test_a_checkpoint_that_is_not_one_fails_with_a_message(tmp_path: Path, caplog):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    assert main(["--checkpoint", str(broken), "--output", str(tmp_path / "out")]) == 1
    assert str(broken) in caplog.text
    assert not (tmp_path / "out" / "mnist" / "1" / "model.onnx").exists()


def test_help_defaults_and_checks():
    args = parse_args([])
    assert (args.checkpoint, args.output, args.max_batch_size) == (
        Path("models/mnist_cnn.safetensors"),
        Path("models/triton"),
        64,
    )
    with pytest.raises(SystemExit):
        parse_args(["--max-batch-size", "0"])


def test_the_export_refuses_to_finish_when_onnxruntime_disagrees(
    untrained_checkpoint: Path, tmp_path: Path, monkeypatch
):
    """The parity check inside `export` is real: with a tolerance no difference can meet, it stops the export."""
    exported = export(untrained_checkpoint, tmp_path / "ok", max_batch_size=4)
    assert 0 <= exported.max_difference <= 1e-5  # float32 kernels may differ in the last bits, never by more
    monkeypatch.setattr("training.export.TOLERANCE", -1.0)
    with pytest.raises(RuntimeError, match="onnxruntime differs from PyTorch"):
        export(untrained_checkpoint, tmp_path / "strict", max_batch_size=4)
    assert [path.name for path in (tmp_path / "strict").rglob("*") if path.is_file()] == []  # nothing to serve
