"""docker-compose.yml keeps what the image sets: a variable the image gives a default (its ENV) is never passed
through bare from the shell, since compose unsets a bare, unset variable in the container and the image's value
goes with it (the gRPC port did: 8081 became the app's 0), and the ports the image serves on are published."""

from __future__ import annotations

import re

import yaml

from tests.deploy.pods import image_default_env
from tests.helpers import REPO


def api_service() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["api"]


def test_no_variable_the_image_sets_is_a_bare_passthrough():
    environment, image = api_service()["environment"], image_default_env()
    bare = [name for name, value in environment.items() if value is None and name in image]
    assert bare == [], f"give these a default (${{NAME:-value}}) as the image does: {bare}"


def test_the_grpc_port_defaults_to_the_images_and_is_published():
    service, image = api_service(), image_default_env()
    value = service["environment"]["MNIST_SERVE_GRPC_PORT"]
    assert re.fullmatch(r"\$\{MNIST_SERVE_GRPC_PORT:-(\d+)\}", value)[1] == image["MNIST_SERVE_GRPC_PORT"]
    published = {int(mapping.split(":")[1]) for mapping in service["ports"]}
    assert published == {int(image["UVICORN_PORT"]), int(image["MNIST_SERVE_GRPC_PORT"])}
