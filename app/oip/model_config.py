"""Triton's model configuration extension: the served model described as a Triton `config.pbtxt` would describe it.

`GET /v2/models/mnist/config` (HTTP) and `ModelConfig` (gRPC) answer it. Triton's tools read it before they send
anything: `perf_analyzer` learns from `max_batch_size` that the first dimension of each input is the batch (and so
what its `-b` means), which inputs it may leave out (`optional`) and that the model batches dynamically;
`tritonclient`'s `get_model_config` shows it to people deciding how to call the model. Only what is true of this
server is filled in; Triton's other fields (ensembles, sequence batching, warm-up, ...) have nothing to describe.

The fields and their JSON spelling are Triton's (`model_config.proto`, its protobuf JSON with the proto's own
field names): datatypes `TYPE_<X>` (BYTES is `TYPE_STRING`), `dims` without the batch dimension. Each input is
`optional`, because a request sends exactly one of them (`app.oip.mnist`); a tool asked to generate data must be
told which, e.g. `perf_analyzer --input-data` naming `pixels`.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.oip import mnist
from app.service import Service

CONFIG_EXTENSION = "model_configuration"
"""The name servers list in their metadata's `extensions` when they answer the model configuration (Triton's)."""
CONFIG_TYPES = {"BYTES": "TYPE_STRING"}
"""Protocol datatypes whose config spelling is not `TYPE_` + the datatype."""


class ConfigTensor(BaseModel):
    """An input or output: its name, datatype and shape without the batch dimension."""

    name: str
    data_type: str = Field(description="TYPE_UINT8, TYPE_FP32, ..., TYPE_STRING for BYTES")
    dims: list[int] = Field(description="the shape after the batch dimension; -1: any size")


class ConfigInput(ConfigTensor):
    """An input; `optional`: a request may leave it out (each request sends exactly one input here)."""

    optional: bool


class DynamicBatching(BaseModel):
    """The batcher: images from concurrent requests share a forward pass of up to `preferred_batch_size`."""

    preferred_batch_size: list[int]
    max_queue_delay_microseconds: int = Field(description="longest the first image waits for others to join it")


class InstanceGroup(BaseModel):
    """Where the model runs in the process that answered: one instance, on a GPU or the CPU."""

    name: str
    kind: str = Field(description="KIND_GPU or KIND_CPU")
    count: int
    gpus: list[int]


class ModelConfig(BaseModel):
    """Answer of GET /v2/models/{model}[/versions/{version}]/config (Triton's model configuration extension)."""

    name: str
    platform: str
    max_batch_size: int = Field(description="most images in one request (MNIST_SERVE_MAX_BATCH_IMAGES)")
    input: list[ConfigInput]
    output: list[ConfigTensor]
    dynamic_batching: DynamicBatching
    instance_group: list[InstanceGroup]


def config_type(datatype: str) -> str:
    """The config's spelling of a protocol datatype: UINT8 → TYPE_UINT8, BYTES → TYPE_STRING."""
    return CONFIG_TYPES.get(datatype, f"TYPE_{datatype}")


def model_config(service: Service) -> ModelConfig:
    """The served model's configuration, from the same tensor specs as its metadata and from the settings."""
    settings = service.settings
    return ModelConfig(
        name=mnist.MODEL_NAME,
        platform=mnist.PLATFORM,
        max_batch_size=settings.max_batch_images,
        input=[
            ConfigInput(name=spec.name, data_type=config_type(spec.datatype), dims=list(spec.shape[1:]), optional=True)
            for spec in mnist.INPUTS.values()
        ],
        output=[
            ConfigTensor(name=spec.name, data_type=config_type(spec.datatype), dims=list(spec.shape[1:]))
            for spec in mnist.outputs_of(service).values()
        ],
        dynamic_batching=DynamicBatching(
            preferred_batch_size=[settings.max_batch_size],
            max_queue_delay_microseconds=round(settings.max_batch_wait_ms * 1000),
        ),
        instance_group=[instance_group(str(service.model.describe()["device"]))],
    )


def instance_group(device: str) -> InstanceGroup:
    """The model's one instance on `device` as `GET /model` names it: `cuda:N` is GPU N, anything else the CPU."""
    name = f"{mnist.MODEL_NAME}_0"
    if device.startswith("cuda"):
        return InstanceGroup(name=name, kind="KIND_GPU", count=1, gpus=[int(device.partition(":")[2] or 0)])
    return InstanceGroup(name=name, kind="KIND_CPU", count=1, gpus=[])
