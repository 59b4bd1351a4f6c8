#!/usr/bin/env bash
# End-to-end test of the shipped container, as CI runs it (from .ci/run, after the unit tests):
#   engine -> base image -> build (serve + train targets) -> docker compose up -> /readyz -> healthy ->
#   pytest tests/e2e against http://127.0.0.1:8000 (and gRPC on 127.0.0.1:8081) -> one-epoch training smoke run
#   -> down, prune.
# Self-contained and idempotent: run it again at any time. Needs root (it may install and start dockerd),
# the repository's .venv (or PYTHON=...) for pytest, and the MNIST .gz files ($MNIST_RAW_DIR, or the places
# tests/conftest.py looks). The daemon has no bridge network: builds and containers use the host's network.
# Env: PYTHON, MNIST_RAW_DIR, READY_TIMEOUT_S (180), KEEP_UP=1 (leave the stack running for a look).
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=.ci/docker
IMAGE=mnist-serve:latest
TRAIN_IMAGE=mnist-serve-train:latest
URL=http://127.0.0.1:8000
GRPC_ADDRESS=127.0.0.1:8081  # the image's MNIST_SERVE_GRPC_PORT, on the host's network
READY_TIMEOUT_S=${READY_TIMEOUT_S:-180}
LOGDIR=$(mktemp -d /tmp/docker-e2e.XXXXXX)
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
export DOCKER_BUILDKIT=1
DOCKER=/usr/bin/docker   # Debian's 20.10 client: BuildKit built in (the newer docker on PATH has no buildx)
compose() { docker compose -f docker-compose.yml -f docker-compose.ci.yml "$@"; }

T0=$SECONDS
declare -a TIMINGS=()
step() { printf '\n[docker-e2e %s, %4ss] %s\n' "$(date +%T)" "$((SECONDS - T0))" "$*"; }
timed() {  # timed LABEL CMD...: run CMD, remember how long it took
  local label=$1 start=$SECONDS; shift
  "$@"
  TIMINGS+=("$(printf '%-34s %4ss' "$label" "$((SECONDS - start))")")
}
die() { echo "docker-e2e: FAILED: $*" >&2; exit 1; }

cleanup() {
  local rc=$?
  trap - EXIT
  set +e
  bash "$HERE/serve-wheels.sh" stop
  if docker version >/dev/null 2>&1; then
    if [ "$rc" != 0 ]; then
      echo "---- last 80 lines of the api container's log"; compose logs --no-color --tail 80 api
    fi
    if [ "${KEEP_UP:-0}" = 1 ] && [ "$rc" = 0 ]; then
      echo "KEEP_UP=1: the stack is still up; stop it with: docker compose -f docker-compose.yml -f docker-compose.ci.yml down"
    else
      compose --profile train down --remove-orphans -t 10 >/dev/null 2>&1
    fi
    # Each build leaves the previous image dangling; the build cache keeps one venv layer for fast rebuilds.
    docker image prune -f >/dev/null
    $DOCKER builder prune -f --keep-storage 16GB >/dev/null
  fi
  rm -rf "$LOGDIR"
  printf '\n[docker-e2e] timings\n'; printf '  %s\n' "${TIMINGS[@]}"
  printf '  %-34s %4ss\n' "total" "$((SECONDS - T0))"
  [ "$rc" = 0 ] && echo "docker-e2e: OK" || echo "docker-e2e: FAILED (exit $rc)" >&2
  exit "$rc"
}
trap cleanup EXIT

# ---- preconditions: fail before spending minutes on a build
[ -f models/mnist_cnn.safetensors ] || die "models/mnist_cnn.safetensors is missing: the image bakes in the shipped checkpoint"
RAW=""
for candidate in "${MNIST_RAW_DIR:-}" ../shared/data/mnist/MNIST/raw data/MNIST/raw; do
  if [ -n "$candidate" ] && [ -f "$candidate/t10k-images-idx3-ubyte.gz" ] && [ -f "$candidate/train-images-idx3-ubyte.gz" ]; then
    RAW=$(realpath "$candidate"); break
  fi
done
[ -n "$RAW" ] || die "MNIST .gz files not found: set MNIST_RAW_DIR (the e2e tests send real test digits)"
export MNIST_RAW_DIR=$RAW
"$PYTHON" -c "import httpx, pytest, PIL, torchvision" 2>/dev/null \
  || die "$PYTHON lacks the test dependencies: run 'make setup' or set PYTHON"

step "(1/7) docker engine"
timed "engine (install/start)" bash "$HERE/start-engine.sh"
compose --profile train down --remove-orphans -t 10 >/dev/null 2>&1 || true   # a previous run's leftovers
for port in 8000 8081; do
  if "$PYTHON" -c "import socket; socket.create_connection(('127.0.0.1', $port), timeout=1)" 2>/dev/null; then
    die "something already listens on 127.0.0.1:$port (not this stack): stop it, the tests would talk to it"
  fi
done
free_gb=$(df -P --block-size=1G "$(docker info -f '{{.DockerRootDir}}')" | awk 'NR==2 {print $4}')
echo "free disk for docker: ${free_gb} GB"
if [ "$free_gb" -lt 20 ]; then
  echo "less than 20 GB free: dropping the build cache first (the build will be a cold one)"
  docker image prune -f >/dev/null; $DOCKER builder prune -af >/dev/null
fi

for files in "" "-f docker-compose.yml -f docker-compose.gpu.yml"; do   # the user-facing files parse (GPU: untested here)
  # shellcheck disable=SC2086
  docker compose $files --profile train config -q || die "docker compose $files config failed"
done

step "(2/7) base image python:3.11-slim (local stand-in, nothing can be pulled)"
timed "base image" bash "$HERE/make-base-image.sh"

step "(3/7) build $IMAGE and $TRAIN_IMAGE (BuildKit, host network, local wheels)"
EXTRA=$(bash "$HERE/serve-wheels.sh")
build() {  # build TARGET TAG
  if ! $DOCKER build --progress=plain --network host --build-arg PIP_EXTRA_INDEX_URL="$EXTRA" \
      --target "$1" -t "$2" . >"$LOGDIR/build-$1.log" 2>&1; then
    tail -60 "$LOGDIR/build-$1.log"; die "docker build --target $1 failed (log above)"
  fi
  grep -E '^#[0-9]+ (\[|DONE|CACHED)' "$LOGDIR/build-$1.log" || true   # the steps and their times, not pip's output
}
timed "build serve image" build serve "$IMAGE"
timed "build train image" build train "$TRAIN_IMAGE"
bash "$HERE/serve-wheels.sh" stop
docker image ls --format '  {{.Repository}}:{{.Tag}}  {{.Size}}' | grep mnist-serve
[ "$(docker image inspect -f '{{.Config.User}}' "$IMAGE")" = mnist ] || die "the image does not run as user mnist"

step "(4/7) docker compose up"
up_start=$SECONDS
timed "compose up -d" compose up -d --no-build --pull never
[ -z "$(docker network ls -q --filter driver=bridge)" ] \
  || die "a bridge network exists: every service in docker-compose.ci.yml needs network_mode: host"
CID=$(compose ps -q api)
[ -n "$CID" ] || die "compose started no api container"

step "(5/7) wait for $URL/readyz, then for the container's HEALTHCHECK"
ready=""
for _ in $(seq 1 $((READY_TIMEOUT_S * 2))); do
  if "$PYTHON" -c "import urllib.request; urllib.request.urlopen('$URL/readyz', timeout=2)" 2>/dev/null; then
    ready=yes; break
  fi
  state=$(docker inspect -f '{{.State.Status}} {{.RestartCount}}' "$CID")
  [ "$state" = "running 0" ] || die "the api container is '$state' (status, restarts) instead of serving"
  sleep 0.5
done
[ -n "$ready" ] || die "$URL/readyz not 200 after ${READY_TIMEOUT_S}s"
TIMINGS+=("$(printf '%-34s %4ss' "compose up -> /readyz 200" "$((SECONDS - up_start))")")
echo "ready $((SECONDS - up_start))s after compose up"
for _ in $(seq 1 60); do   # Docker runs the first health probe one interval (15 s) after start
  health=$(docker inspect -f '{{.State.Health.Status}}' "$CID")
  [ "$health" = healthy ] && break
  [ "$health" = unhealthy ] && die "HEALTHCHECK says unhealthy: $(docker inspect -f '{{json .State.Health.Log}}' "$CID")"
  sleep 1
done
[ "$health" = healthy ] || die "HEALTHCHECK still '$health' after 60 s"
TIMINGS+=("$(printf '%-34s %4ss' "compose up -> healthy" "$((SECONDS - up_start))")")
user=$(docker exec "$CID" id -un)
[ "$user" = mnist ] || die "the server runs as '$user', not the image's non-root user mnist"
[ "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$CID")" = true ] || die "the root filesystem is writable"
echo "healthy, serving as user $user on a read-only root filesystem"

step "(6/7) pytest tests/e2e against $URL"
test_start=$SECONDS
if ! MNIST_SERVE_E2E_URL="$URL" MNIST_SERVE_E2E_GRPC="$GRPC_ADDRESS" "$PYTHON" -m pytest -q -p no:cacheprovider tests/e2e 2>&1 | tee "$LOGDIR/pytest.log"; then
  die "e2e tests failed"
fi
TIMINGS+=("$(printf '%-34s %4ss' "pytest tests/e2e" "$((SECONDS - test_start))")")
grep -qE '[0-9]+ skipped' "$LOGDIR/pytest.log" && die "some e2e tests were skipped: they must all run here"

step "(7/7) train profile: one short epoch, then the export to ONNX, in $TRAIN_IMAGE (output to the container's /tmp)"
DATA=$(mktemp -d /tmp/docker-e2e-data.XXXXXX)
mkdir -p "$DATA/MNIST/raw" && cp "$RAW"/*-ubyte.gz "$DATA/MNIST/raw/"
train_smoke() {
  compose --profile train run --rm -T -v "$DATA:/ci-data" train \
    --data-dir /ci-data --epochs 1 --max-train-samples 512 --no-progress --output /tmp/smoke/mnist.safetensors
}
if ! timed "train profile (1 epoch, 512 images)" train_smoke >"$LOGDIR/train.log" 2>&1; then
  tail -40 "$LOGDIR/train.log"; rm -rf "$DATA"; die "the train service failed"
fi
tail -5 "$LOGDIR/train.log"
rm -rf "$DATA"
export_smoke() {  # the shipped checkpoint (the service's ./models mount) as ONNX, checked with onnxruntime in there
  compose --profile train run --rm -T --entrypoint python train \
    -m training.export --checkpoint /srv/models/mnist_cnn.safetensors --output /tmp/triton
}
if ! timed "export to ONNX (training.export)" export_smoke >"$LOGDIR/export.log" 2>&1; then
  tail -40 "$LOGDIR/export.log"; die "python -m training.export failed in $TRAIN_IMAGE"
fi
grep "exported" "$LOGDIR/export.log" || die "the export logged no result"
