"""mnist-serve's HTTP service: `app.main:app` for uvicorn, `app.main.create_app` for tests and embedding."""

NAME = "mnist-serve"
"""The server's name, as its OpenAPI title and the Open Inference Protocol's server metadata (HTTP and gRPC) say."""

__version__ = "0.1.0"
"""The project's version, written only here: pyproject.toml reads it (`[tool.setuptools.dynamic]`).

Not `importlib.metadata.version("mnist-serve")`: the Docker image runs the source without installing the
project, and a checkout may run with stale or no installed metadata, so the code is the one copy that is
always present and always current.
"""
