# mnist-serve: the FastAPI digit server with the shipped checkpoint baked in.
#
#   docker build -t mnist-serve:latest .                                  # PyPI torch (CUDA libs; runs on CPU too)
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t mnist-serve:cpu .
#   docker build --target train -t mnist-serve-train:latest .             # training image (see docker-compose.yml)
#   docker run --rm -p 8000:8000 -e MNIST_SERVE_MAX_BATCH_SIZE=64 mnist-serve:latest
#
# Stages: requirements -> builder (venv with the runtime dependencies) -> runtime (venv + mnist_model, non-root)
# -> train (+ training/) | serve (+ app/ + checkpoint; the default, being last).

FROM python:3.11-slim AS requirements
COPY pyproject.toml /tmp/pyproject.toml
# [project].dependencies only (the dev extra never enters an image). Written to a file of its own so that
# editing anything else in pyproject.toml leaves the venv layer cached.
RUN python -c "import tomllib; deps = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']; \
print('\n'.join(deps))" > /tmp/requirements.txt


FROM python:3.11-slim AS builder
# Local wheel mirror for CI (.ci/docker/serve-wheels.sh); unset for everyone else, so pip uses PyPI alone.
ARG PIP_EXTRA_INDEX_URL
# Which torch build: empty = PyPI's (bundles the CUDA libraries: a 6.1 GB image; runs on CPU and GPU);
# https://download.pytorch.org/whl/cpu = CPU-only torch/torchvision (a far smaller image, no GPU).
ARG TORCH_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=requirements /tmp/requirements.txt /tmp/requirements.txt
# torch/torchvision first from TORCH_INDEX_URL when given (PyTorch's documented way to pick a build); the second
# install finds them satisfied (2.14.1+cpu matches ==2.14.1) and takes everything else from PyPI. pip goes at the
# end (torch needs setuptools at run time, so that stays).
RUN python -m venv /opt/venv \
 && if [ -n "$TORCH_INDEX_URL" ]; then \
        /opt/venv/bin/pip install --index-url "$TORCH_INDEX_URL" $(grep -E '^torch(vision)?[=<>~ ]' /tmp/requirements.txt); \
    fi \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt \
 && /opt/venv/bin/python -m pip uninstall -y -q pip


FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 mnist \
 && useradd --system --uid 10001 --gid mnist --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mnist
COPY --from=builder /opt/venv /opt/venv
WORKDIR /srv
COPY mnist_model/ mnist_model/
# The root filesystem may be mounted read-only (docker-compose.yml): caches go to /tmp, no .pyc files are written.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/srv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/matplotlib


# Training image: same venv layer (training's libraries are runtime dependencies), plus training/.
# docker compose --profile train run --rm train --epochs 1
FROM runtime AS train
COPY training/ training/
RUN chmod -R a+rX /srv
USER mnist
ENTRYPOINT ["python", "-m", "training.run"]
CMD []


# Serving image (default target).
FROM runtime AS serve
COPY app/ app/
COPY models/mnist_cnn.safetensors models/mnist_cnn.safetensors
# Readable by the non-root user whatever the modes in the build context (training writes the checkpoint 0600).
RUN chmod -R a+rX /srv
USER mnist
# Settings: the app's own MNIST_SERVE_* variables (docker run -e, compose environment:). The server (gunicorn
# with uvicorn workers, app/gunicorn_conf.py) listens on UVICORN_HOST:UVICORN_PORT (CI binds 127.0.0.1 under host
# networking) and starts one worker process per CPU the container may use (cgroup quota respected; WEB_CONCURRENCY
# overrides), each with CPUs / workers torch threads; the workers share torch's memory (forked after import).
ENV UVICORN_HOST=0.0.0.0 \
    UVICORN_PORT=8000
EXPOSE 8000
# /readyz answers 200 once the model is loaded and warmed up. Python, because the slim image has no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('UVICORN_PORT', '8000'), timeout=4)"]
CMD ["gunicorn", "-c", "python:app.gunicorn_conf", "app.main:app"]
