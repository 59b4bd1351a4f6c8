"""Export a checkpoint as ONNX in a Triton model repository, for serving the network without this service.

    python -m training.export                              # models/mnist_cnn.safetensors → models/triton/
    python -m training.export --checkpoint PATH --output DIR --max-batch-size 128

Why: ML engineers who already run Triton Inference Server (or KServe's Triton or ONNX runtimes) serve models from
a repository of ONNX files and `config.pbtxt`s. The exported model speaks what this service's Open Inference
Protocol model does for MNIST-format digits: input `pixels` (UINT8 [-1, 28, 28], white ink on black), output
`probabilities` (FP32 [-1, 10], calibrated), so a client of `/v2/models/mnist/infer` with `pixels` works against
Triton unchanged (Triton's classification extension gives the digit). The normalisation (the checkpoint's
mean/std) and the calibration temperature are inside the graph. Not exported: this service's preprocessing of
real uploads (`images`) and the digit gate, which reads features of the upload.

Writes `<output>/mnist/1/model.onnx` (one file, weights inside) and `<output>/mnist/config.pbtxt` (onnxruntime
backend, dynamic batching) once onnxruntime, running the file, agrees with the PyTorch network on the same digits;
if they disagree, nothing is written. Needs the `export` extra (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mnist_model import ModelMetadata, Net, checkpoint_version, load_checkpoint, normalize
from mnist_model.checkpoint import CheckpointError
from training.config import DEFAULT_OUTPUT as DEFAULT_CHECKPOINT

log = logging.getLogger("training.export")
DEFAULT_REPOSITORY = Path("models/triton")
MODEL_NAME = "mnist"
INPUT, OUTPUT = "pixels", "probabilities"
DEFAULT_MAX_BATCH_SIZE = 64
"""Triton's max_batch_size unless told: the service's own default MNIST_SERVE_MAX_BATCH_SIZE (this package cannot
import the service's settings: the training image has no app/)."""
DEFAULT_QUEUE_DELAY_US = 20_000
"""Triton's longest wait for a fuller batch unless told: the service's default MNIST_SERVE_MAX_BATCH_WAIT_MS, 20 ms."""
TOLERANCE = 1e-5
"""Largest difference of a probability between onnxruntime and PyTorch (float32) that the export accepts."""


class CalibratedNet(nn.Module):
    """uint8 digits (N×28×28) → calibrated probabilities (N×10): normalisation, `Net`, softmax(log_probs / T), as
    the service computes them for `pixels`."""

    def __init__(self, net: Net, metadata: ModelMetadata) -> None:
        super().__init__()
        self.net, self.mean, self.std, self.temperature = net, metadata.mean, metadata.std, metadata.temperature

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        images = normalize(pixels, self.mean, self.std)
        return torch.softmax(self.net(images.unsqueeze(1)) / self.temperature, dim=1)


@dataclass(frozen=True)
class Exported:
    """Where the export went, and how far onnxruntime's answers were from PyTorch's."""

    model: Path
    config: Path
    max_difference: float


def triton_config(max_batch_size: int, max_queue_delay_us: int, version: str) -> str:
    """The model's `config.pbtxt` (Triton's protobuf text format): onnxruntime, the tensors without the batch
    dimension, dynamic batching, and the checkpoint's version as a parameter (Triton's versions are numbers)."""
    return f"""name: "{MODEL_NAME}"
backend: "onnxruntime"
max_batch_size: {max_batch_size}
input [
  {{
    name: "{INPUT}"
    data_type: TYPE_UINT8
    dims: [ 28, 28 ]
  }}
]
output [
  {{
    name: "{OUTPUT}"
    data_type: TYPE_FP32
    dims: [ 10 ]
  }}
]
dynamic_batching {{
  max_queue_delay_microseconds: {max_queue_delay_us}
}}
parameters {{
  key: "checkpoint_version"
  value: {{ string_value: "{version}" }}
}}
"""


def export(
    checkpoint: Path,
    output: Path,
    *,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
) -> Exported:
    """Export `checkpoint` into the Triton repository `output` and check it with onnxruntime (see the module)."""
    import onnx  # the `export` extra: imported here, so that the rest of training never needs it

    net, metadata = load_checkpoint(checkpoint)
    module = CalibratedNet(net, metadata).eval()
    version = checkpoint_version(checkpoint)
    model_dir = output / MODEL_NAME
    onnx_path = model_dir / "1" / "model.onnx"
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=max(max_batch_size, 2))
    with torch.no_grad():
        program = torch.onnx.export(
            module,
            (torch.zeros(2, 28, 28, dtype=torch.uint8),),
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_shapes={"pixels": {0: batch}},
            dynamo=True,
            verbose=False,
        )
    assert program is not None  # the dynamo exporter always returns its program
    proto = program.model_proto
    onnx.helper.set_model_props(
        proto,
        {"checkpoint_version": version, "temperature": str(metadata.temperature), "source": checkpoint.name},
    )
    onnx.checker.check_model(proto)
    candidate = onnx_path.with_name(f".{onnx_path.name}.tmp")  # checked before it takes the model's place
    onnx.save_model(proto, candidate)  # weights inside: one file, as Triton's repository expects
    difference = check_parity(candidate, module, max_batch_size)
    if difference > TOLERANCE:
        candidate.unlink()
        raise RuntimeError(f"{onnx_path}: onnxruntime differs from PyTorch by {difference:.2e} > {TOLERANCE:g}")
    candidate.replace(onnx_path)
    config_path = model_dir / "config.pbtxt"
    config_path.write_text(triton_config(max_batch_size, max_queue_delay_us, version))
    log.info(
        "exported %s (version %s) to %s; onnxruntime within %.1e of PyTorch", checkpoint, version, model_dir, difference
    )
    return Exported(onnx_path, config_path, difference)


def check_parity(onnx_path: Path, module: nn.Module, batch_size: int) -> float:
    """The largest difference between onnxruntime's and PyTorch's probabilities on `batch_size` and 1 random
    digits (every pixel value occurs)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    pixels = np.random.default_rng(0).integers(0, 256, (batch_size, 28, 28), dtype=np.uint8)
    worst = 0.0
    for batch in (pixels, pixels[:1]):
        [answer] = session.run([OUTPUT], {INPUT: batch})
        with torch.no_grad():
            expected = module(torch.from_numpy(batch)).numpy()
        worst = max(worst, float(np.abs(answer - expected).max()))
    return worst


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.export",
        description="Export a checkpoint as ONNX in a Triton model repository (config.pbtxt, 1/model.onnx).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, metavar="PATH", help="the checkpoint to export"
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_REPOSITORY, metavar="DIR", help="model repository to write mnist/ into"
    )
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=DEFAULT_MAX_BATCH_SIZE,
        metavar="N",
        help="Triton's max_batch_size: most digits in one request and in one batch",
    )
    parser.add_argument(
        "--max-queue-delay-us",
        type=int,
        default=DEFAULT_QUEUE_DELAY_US,
        metavar="US",
        help="Triton's dynamic batching: longest wait, in microseconds, for a fuller batch",
    )
    args = parser.parse_args(argv)
    if args.max_batch_size < 1:
        parser.error("--max-batch-size must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("onnxscript", "onnx_ir"):  # their graph passes log each step at INFO
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        export(
            args.checkpoint,
            args.output,
            max_batch_size=args.max_batch_size,
            max_queue_delay_us=args.max_queue_delay_us,
        )
    except (CheckpointError, RuntimeError) as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
