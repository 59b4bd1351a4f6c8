"""Service settings, read once from `MNIST_SERVE_*` environment variables (or `.env`) by pydantic-settings.

A wrong value stops start-up with `SettingsError`, whose message names the environment variable to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.cors import check_origin
from app.cpus import available_cpus
from app.logs import LogFormat
from app.preprocess import MAX_PIXELS
from mnist_model.device import DEVICE_CHOICES, parse_device

ENV_PREFIX = "MNIST_SERVE_"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_PATH = REPO_ROOT / "models" / "mnist_cnn.safetensors"
"""Resolved from this file, not the working directory, so `uvicorn app.main:app` works from anywhere."""
Precision = Literal["auto", "float32", "float16", "bfloat16", "int8"]
"""MNIST_SERVE_PRECISION's values (`app.predictor.resolve_precision` says what each runs)."""
CPU_PRECISIONS = tuple(name for name in get_args(Precision) if name != "float16")
"""The precisions a CPU runs (float16 is CUDA-only): the choices of the tools that serve the model on a CPU."""


class SettingsError(ValueError):
    """Some `MNIST_SERVE_*` variables are invalid; the message lists each variable and what is wrong."""


class Settings(BaseSettings):
    """Everything an operator can tune; each field is the environment variable `MNIST_SERVE_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True)

    model_path: Path = Field(DEFAULT_MODEL_PATH, description="the .safetensors checkpoint to serve")
    device: str = Field("auto", description=f"{DEVICE_CHOICES}; auto = CUDA when available, else CPU")
    precision: Precision = Field(
        "auto",
        description="model precision; auto = bfloat16 where the device computes it natively (CUDA, AVX512-BF16/AMX "
        "CPUs), else on a CPU int8 convolutions where the checkpoint records their ranges, else float32; "
        "float16 CUDA only, int8 CPU only",
    )
    num_threads: int | None = Field(
        None,
        ge=1,
        description="torch CPU threads (torch.set_num_threads); unset: the CPUs available (cgroup quota and "
        "affinity respected; `make serve` sets CPUs ÷ worker processes)",
    )
    digit_gate: bool = Field(
        True,
        description="answer is_digit with the checkpoint's not-a-digit gate; false skips it (is_digit null) for the "
        "throughput it costs on CPU (measured in the README, Benchmarks)",
    )
    forward_on: Literal["auto", "loop", "thread"] = Field(
        "auto",
        description="where forward passes run: loop (the event loop: no thread hand-off, best with a CPU to "
        "itself), thread (a worker thread: HTTP is served during a pass; GPUs, several CPU threads); auto: loop "
        "for a CPU model with one torch thread, else thread",
    )
    decode_threads: int = Field(
        default_factory=lambda: min(4, available_cpus()),
        ge=1,
        description="threads that decode and preprocess images bigger than MNIST_SERVE_INLINE_DECODE_MAX_PIXELS",
    )
    # 28×28: an MNIST-format upload is passed through in well under a thread hop's cost; bigger images run the
    # photo pipeline (milliseconds) and would stall the event loop.
    inline_decode_max_pixels: int = Field(
        28 * 28, ge=0, description="images up to this many pixels are preprocessed on the event loop (0: none)"
    )
    # 64, a whole /predict/batch request in one pass: on one CPU thread (bf16) a pass of 64 took 3.3 ms, 19,300
    # images/s, against 15,600 at 32 and 21,300 at 128 (mnist_model.malloc keeps big batches off fresh pages);
    # raise it on a GPU.
    max_batch_size: int = Field(64, ge=1, description="most images in one forward pass; 1 turns batching off")
    # Only spent while other requests are mid-decode, so a lone request never waits (see app.batcher).
    max_batch_wait_ms: float = Field(
        20.0, ge=0, le=10_000, description="longest a batch is held open for requests still being decoded"
    )
    max_queue_size: int = Field(1024, ge=1, description="images waiting for the model before new ones get 503")
    request_timeout_s: float = Field(10.0, gt=0, description="longest an image waits for the model before a 504")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1, description="largest request body accepted (413 beyond)")
    max_image_pixels: int = Field(MAX_PIXELS, ge=1, description="largest decoded image, in pixels (413 beyond)")
    max_batch_images: int = Field(64, ge=1, description="most images in one /predict/batch request (413 beyond)")
    grpc_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="port of the Open Inference Protocol over gRPC (tritonclient.grpc, KServe); 0: none. Every "
        "worker process binds it (SO_REUSEPORT), as they share the HTTP port",
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="web origins whose pages may call the API from a browser (CORS), comma-separated "
        "(https://app.example.com,http://localhost:3000); * = any; empty = none, same origin only",
    )
    log_level: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = Field("INFO", description="logging level")
    log_format: LogFormat = Field(
        "text", description="log lines as text, or json: one JSON object a line (time, level, logger, message)"
    )

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        return parse_device(value)  # the form only: whether the GPU exists is checked when the model loads

    @model_validator(mode="after")
    def _batch_fits_queue(self) -> Settings:
        if self.max_batch_images > self.max_queue_size:
            raise ValueError(
                f"{ENV_PREFIX}MAX_BATCH_IMAGES ({self.max_batch_images}) must not exceed "
                f"{ENV_PREFIX}MAX_QUEUE_SIZE ({self.max_queue_size}): such a batch could never be queued"
            )
        return self

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):  # from the environment: comma-separated
            value = [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(check_origin(origin) for origin in origins))

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (keyword overrides win); pydantic's errors become `SettingsError`.

    pydantic names the field (`max_batch_size`); operators set the variable (`MNIST_SERVE_MAX_BATCH_SIZE`), so
    the message uses the variable's name.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            got = f" (got {error['input']!r})" if "input" in error and not isinstance(error["input"], dict) else ""
            variable = f"{ENV_PREFIX}{str(error['loc'][0]).upper()}: " if error["loc"] else ""
            lines.append(f"  {variable}{error['msg']}{got}")
        raise SettingsError("invalid service settings:\n" + "\n".join(lines)) from None
