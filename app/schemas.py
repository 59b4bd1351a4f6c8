"""Request and response bodies, with the examples shown on /docs."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict, JsonValue

EXAMPLE_PROBABILITIES: list[JsonValue] = [0.0001, 0.0002, 0.0003, 0.0002, 0.0001, 0.0001, 0.0, 0.998, 0.0002, 0.0008]
EXAMPLE_MODEL: JsonDict = {"name": "pytorch-examples-mnist-cnn", "version": "3f9c2a1b7d4e"}
# The first MNIST test digit (a 7) as a 28×28 PNG, so that /docs' "Try it out" gives a meaningful answer.
EXAMPLE_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAAwUlEQVR42mNgGDaAEUKFpD77sfTFHeyS9xQYGBg+X4UKPuk6w8DAwMDAAuGm6l/"
    "TMnSweCzLwPDntSTDozPIOhkYGBgYBA3PmDIw/Lh1XShnGi5nBP+9KIRLTuzl/2AokwlDMlv0/U1cGq1//rPD6fHWf7tZcclxnv1hhVNj3b9tOOW8f3"
    "+wxCUnfPffMlxyzKf/3VbGJan2758vLjn5B/+KGXF78Z8JLjnbT+iSSGFrw8Nw9wuKJAsy56LzO+ITGABpETyQcCy90wAAAABJRU5ErkJggg=="
)
# What the model saw for the example upload: that 7 is already an MNIST-format digit, so it is used as it is.
EXAMPLE_INPUT_IMAGE = "data:image/png;base64," + EXAMPLE_BASE64
InputImage = Annotated[
    str | None,
    Field(
        description=(
            "only with `?include_input=true`: the 28×28 grayscale image the model classified, after preprocessing "
            "(white ink on black, centred as in MNIST), as a `data:image/png;base64,` URL; absent otherwise"
        )
    ),
]


class ImageJSON(BaseModel):
    """JSON body of /predict."""

    image: str = Field(description="the image file's bytes in base64 (a data: URL prefix is accepted)")
    model_config = ConfigDict(json_schema_extra={"examples": [{"image": EXAMPLE_BASE64}]})


class BatchImagesJSON(BaseModel):
    """JSON body of /predict/batch."""

    images: list[str] = Field(min_length=1, description="image files in base64, answered in this order")
    model_config = ConfigDict(json_schema_extra={"examples": [{"images": [EXAMPLE_BASE64, EXAMPLE_BASE64]}]})


class ModelRef(BaseModel):
    """Which model answered: the architecture, and the first 12 hex digits of the checkpoint's SHA-256."""

    name: str
    version: str


class Scores(BaseModel):
    """The classification of one image."""

    digit: int = Field(ge=0, le=9, description="the most probable digit")
    confidence: float = Field(
        description="the probability of `digit`, calibrated (temperature scaling fitted on held-out digits)"
    )
    probabilities: list[float] = Field(description="calibrated probability of each digit 0–9, summing to 1")
    is_digit: bool | None = Field(
        description=(
            "whether the upload looks like one handwritten digit: false for letters, symbols, shapes, scribbles, "
            "several digits side by side, text (`digit` is then only the best guess); decided by a small gate over "
            "the network's activations and the preprocessing's ink cues, fitted on held-out data (README, "
            "'Is it a digit?'); null when the served checkpoint has no gate"
        )
    )

    @classmethod
    def from_probabilities(cls, probabilities: list[float], is_digit: bool | None = None, **extra: object) -> Self:
        """The argmax and its probability, next to the full distribution and the gate's verdict."""
        return cls(**scores(probabilities, is_digit), **extra)


def scores(probabilities: list[float], is_digit: bool | None) -> dict[str, object]:
    """A `Scores` body as a plain dict (the hot routes encode it without building the model): the argmax and
    its probability, next to the full distribution and the gate's verdict."""
    top = max(probabilities)  # and its first index: half the time of max(range(10), key=...), 64 times a batch
    return {"digit": probabilities.index(top), "confidence": top, "probabilities": probabilities, "is_digit": is_digit}


class Prediction(Scores):
    """Answer of /predict."""

    model: ModelRef
    input_image: InputImage = None
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "digit": 7,
                    "confidence": 0.998,
                    "probabilities": EXAMPLE_PROBABILITIES,
                    "is_digit": True,
                    "model": EXAMPLE_MODEL,
                    "input_image": EXAMPLE_INPUT_IMAGE,
                }
            ]
        },
    )


class BatchItem(Scores):
    """One classified image of a batch; `index` is its position in the request."""

    index: int
    input_image: InputImage = None


class BatchItemError(BaseModel):
    """An image of a batch that could not be classified: the status and message /predict would give."""

    index: int
    status_code: int
    error: str


class BatchPrediction(BaseModel):
    """Answer of /predict/batch: one entry per image, in request order; a bad image fails only its entry."""

    predictions: list[BatchItem | BatchItemError]
    model: ModelRef
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "predictions": [
                        {
                            "index": 0,
                            "digit": 7,
                            "confidence": 0.998,
                            "probabilities": EXAMPLE_PROBABILITIES,
                            "is_digit": True,
                        },
                        {"index": 1, "status_code": 400, "error": "the image is truncated or corrupt"},
                    ],
                    "model": EXAMPLE_MODEL,
                }
            ]
        },
    )


class ErrorBody(BaseModel):
    """Every error answer: `detail` says what went wrong and what to send instead."""

    detail: str | list[dict[str, object]]
    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "the body is not valid JSON"}]})


class Status(BaseModel):
    """Answer of /healthz and /readyz."""

    status: str


class ModelDescription(BaseModel):
    """Answer of GET /model: what is served, where it runs, and how requests are batched."""

    name: str
    version: str
    ready: bool
    metadata: dict[str, object] = Field(description="the checkpoint's own record of how it was made")
    runtime: dict[str, object] = Field(description="device, precision, threads, checkpoint path")
    batching: dict[str, object]
    limits: dict[str, object]
