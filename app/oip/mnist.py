"""The served model as the Open Inference Protocol sees it: model `mnist`, its inputs and outputs, and the
translation of a decoded request into one `Service` call and of the answers into output tensors.

Inputs (a request sends exactly one): `pixels`, UINT8 [-1, 28, 28], MNIST-format digits (white ink on black)
that are only normalised; `images`, BYTES [-1, 1] (or [-1]), one encoded image file per row, preprocessed like
/predict (raw bytes in binary, base64 strings in JSON). Outputs: every entry of `OUTPUTS`; adding one is one line
there; `probabilities` can be asked for as its top classes instead (`app.oip.classification`). `is_digit` (BOOL
[-1], the digit gate's verdict, see `app.gate`) exists only when the served checkpoint has a gate: without one it
is neither declared in the metadata nor sent (OIP tensors have no null).
OIP has no per-element errors, so one image that cannot be read fails the request, naming its index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from app.oip.classification import top_classes
from app.oip.codec import BYTES, DecodedRequest, InputTensor, OutputTensor
from app.oip.errors import ProtocolError
from app.oip.schemas import MetadataTensor, ModelMetadata
from app.preprocess import BadItem
from app.request_parsing import decode_base64
from app.service import MNIST_SHAPE, Classification, Result, Service

MODEL_NAME = "mnist"
PLATFORM = "pytorch"


@dataclass(frozen=True)
class TensorSpec:
    """An input or output of the model: name, datatype and shape (-1: any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def fits(self, shape: Sequence[int]) -> bool:
        """Whether a tensor of `shape` has this one's rank and fixed dimensions. Trailing dimensions of 1 may be
        left out: `images` is [-1, 1], one file per row as Triton's tools send strings, and KServe's clients send
        the same files as [N]."""
        want = self.shape
        while len(shape) < len(want) and want[-1] == 1:
            want = want[:-1]
        if len(shape) != len(want):
            return False
        return all(expected in (-1, got) for expected, got in zip(want, shape, strict=True))

    def describe(self) -> MetadataTensor:
        return MetadataTensor(name=self.name, datatype=self.datatype, shape=list(self.shape))

    def __str__(self) -> str:
        return f"{self.name!r} ({self.datatype} {list(self.shape)})"


@dataclass(frozen=True, eq=False)
class Answers:
    """The service's classifications of one request's images, in order; what the outputs are computed from."""

    results: Sequence[Classification]
    probabilities: np.ndarray
    """N×10 float32, one row per image, one column per digit 0–9."""

    @classmethod
    def of(cls, results: Sequence[Classification]) -> Answers:
        return cls(results, np.asarray([result.probabilities for result in results], dtype=np.float32))

    def is_digit(self) -> np.ndarray:
        """N booleans: the gate's verdicts (only asked for when the model has a gate)."""
        return np.array([bool(result.is_digit) for result in self.results], dtype=np.bool_)


@dataclass(frozen=True)
class OutputSpec(TensorSpec):
    """An output and how it is computed from a request's `Answers` (an array whose first dimension is N);
    `scores`: whether its rows are class scores, which the classification extension can rank."""

    compute: Callable[[Answers], np.ndarray] = field(compare=False, repr=False)
    scores: bool = False


@dataclass(frozen=True)
class Requested:
    """An output to send: its spec, whether in binary, and the classes asked for instead of it (or None)."""

    spec: OutputSpec
    binary: bool
    classification: int | None = None

    def tensor(self, answers: Answers) -> OutputTensor:
        values = self.spec.compute(answers)
        if self.classification is None:
            return OutputTensor(self.spec.name, self.spec.datatype, values, self.binary)
        return OutputTensor(self.spec.name, BYTES, top_classes(values, self.classification), self.binary)


PIXELS = TensorSpec("pixels", "UINT8", (-1, *MNIST_SHAPE))
IMAGES = TensorSpec("images", "BYTES", (-1, 1))
INPUTS = {spec.name: spec for spec in (PIXELS, IMAGES)}
OUTPUTS = {
    spec.name: spec
    for spec in (
        OutputSpec("probabilities", "FP32", (-1, 10), lambda answers: answers.probabilities, scores=True),
        OutputSpec("digit", "INT64", (-1,), lambda answers: answers.probabilities.argmax(axis=1)),
        OutputSpec("is_digit", "BOOL", (-1,), Answers.is_digit),
    )
}
GATED_OUTPUTS = frozenset({"is_digit"})
"""Outputs that exist only when the served checkpoint has a digit gate."""


def outputs_of(service: Service) -> dict[str, OutputSpec]:
    """The outputs the served model has: all of `OUTPUTS`, less `is_digit` without a digit gate."""
    if getattr(service.model, "digit_gate", None) is not None:
        return OUTPUTS
    return {name: spec for name, spec in OUTPUTS.items() if name not in GATED_OUTPUTS}


def check_model(name: str, version: str | None, served_version: str) -> None:
    """Raise 404 unless `name` (and `version`, when the path has one) is the model served here."""
    if name != MODEL_NAME:
        raise ProtocolError(f"unknown model {name!r}: this server serves {MODEL_NAME!r}", 404)
    if version is not None and version != served_version:
        raise ProtocolError(
            f"model {MODEL_NAME!r} has no version {version!r}: this server has version {served_version!r}", 404
        )


def metadata(service: Service) -> ModelMetadata:
    """The model's metadata: name, its one version, platform, inputs and outputs."""
    return ModelMetadata(
        name=MODEL_NAME,
        versions=[service.model.version],
        platform=PLATFORM,
        inputs=[spec.describe() for spec in INPUTS.values()],
        outputs=[spec.describe() for spec in outputs_of(service).values()],
    )


async def infer(service: Service, request: DecodedRequest) -> list[OutputTensor]:
    """Check the request against the model's signature and limits, classify its images, compute the outputs.

    Cheap checks come first (input, datatype, shape, count, outputs), then the data is decoded. Raises
    `ProtocolError` (400, 413) and the service's errors.
    """
    tensor = _the_input(request)
    count, limit = tensor.shape[0], service.settings.max_batch_images
    if count > limit:
        raise ProtocolError(
            f"input {tensor.name!r}: {count} images exceed the limit of {limit} per request "
            "(MNIST_SERVE_MAX_BATCH_IMAGES): split the batch",
            413,
        )
    if count == 0:
        raise ProtocolError(f"input {tensor.name!r} is empty (shape {list(tensor.shape)}): send at least one image")
    outputs = _requested(request, outputs_of(service))
    if tensor.name == PIXELS.name:
        results = await service.classify_pixels(tensor.to_array())
    else:
        results = await service.classify_images(_image_files(tensor))
    answers = Answers.of(_classified(tensor.name, results))
    return [output.tensor(answers) for output in outputs]


def _the_input(request: DecodedRequest) -> InputTensor:
    names = [tensor.name for tensor in request.inputs]
    if len(names) != 1:
        raise ProtocolError(f"send exactly one input, {' or '.join(map(str, INPUTS.values()))}; got {names}")
    [tensor] = request.inputs
    spec = INPUTS.get(tensor.name)
    if spec is None:
        raise ProtocolError(f"unknown input {tensor.name!r}: this model takes {' or '.join(map(str, INPUTS.values()))}")
    if tensor.datatype != spec.datatype:
        raise ProtocolError(f"input {tensor.name!r}: datatype {tensor.datatype} is not {spec.datatype}; send {spec}")
    if not spec.fits(tensor.shape):
        raise ProtocolError(f"input {tensor.name!r}: shape {list(tensor.shape)} does not fit {list(spec.shape)}")
    return tensor


def _requested(request: DecodedRequest, available: dict[str, OutputSpec]) -> list[Requested]:
    """The outputs to send, in the order asked for (all, in the model's order, when none were named)."""
    if request.outputs is None:
        return [Requested(spec, request.binary_output) for spec in available.values()]
    unknown = [output.name for output in request.outputs if output.name not in available]
    if unknown:
        absent = (
            " (no digit gate is served: none in the checkpoint, or MNIST_SERVE_DIGIT_GATE=false)"
            if unknown[0] in GATED_OUTPUTS
            else ""
        )
        raise ProtocolError(
            f"unknown output {unknown[0]!r}{absent}: this model has {', '.join(map(str, available.values()))}"
        )
    for output in request.outputs:
        spec, count = available[output.name], output.classification
        if count is not None and not spec.scores:
            scored = [name for name, candidate in available.items() if candidate.scores]
            raise ProtocolError(f"output {output.name!r} has no class scores to classify: ask it of {scored}")
        if count is not None and count > spec.shape[-1]:
            raise ProtocolError(
                f"output {output.name!r}: classification asks for {count} classes, but it has {spec.shape[-1]}"
            )
    return [Requested(available[output.name], output.binary, output.classification) for output in request.outputs]


def _image_files(tensor: InputTensor) -> list[bytes]:
    """The encoded image files of an `images` tensor: raw bytes in binary, base64 in JSON."""
    elements = tensor.to_elements()
    if tensor.binary_data is not None:
        return elements
    files = [decode_base64(element.decode("utf-8", errors="replace")) for element in elements]
    for index, item in enumerate(files):
        if isinstance(item, BadItem):
            raise ProtocolError(f"input {tensor.name!r} element {index}: {item.detail}")
    return files  # type: ignore[return-value]  # no BadItem is left


def _classified(name: str, results: Sequence[Result]) -> list[Classification]:
    """The classifications; the first image that could not be read fails the request, with its index."""
    for index, result in enumerate(results):
        if isinstance(result, BadItem):
            status = 413 if result.status_code == 413 else 400  # over the pixel limit; else unreadable
            raise ProtocolError(f"input {name!r} element {index}: {result.detail}", status)
    return list(results)  # type: ignore[arg-type]  # no BadItem is left
