#!/usr/bin/env bash
# featx's embed throughput on a GPU machine, in one call: Keras on JAX, MobileNetV2 and ResNet50 at
# 224 px from 500x375 JPEGs (float32, and MobileNetV2 in bfloat16 too), decode capacity at 1 and
# all cores. Writes one JSON file per run, plus env.txt and log.txt, under $OUT.
#
# Here (with internet), once: fetch the wheels the GPU machine lacks (Keras and what it needs):
#     bash benchmarks/gpu_check.sh --download            # writes .whl/, ignored through .git/info/exclude
# There (the device tool's run), from the repository root:
#     bash benchmarks/gpu_check.sh                       # run(..., carry=[".whl"], timeout_s=600)
# On any machine without a GPU, a quick rehearsal of everything but the figures:
#     GPU_CHECK_QUICK=1 OUT=/tmp/gpu-check bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--download" ]; then
  exclude=$(git rev-parse --git-path info/exclude)
  grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
  mkdir -p .whl
  # The machine has JAX, h5py, Pillow, scikit-learn, typer, rich, absl-py, ml-dtypes, filelock;
  # not Keras, nor these two of its requirements.
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
    "keras==$(python3 -c 'import importlib.metadata as m; print(m.version("keras"))' 2>/dev/null || echo 3.15.1)" \
    namex optree
  ls -l .whl
  exit 0
fi

OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
PY=${PYTHON:-python3}
if ! $PY -c "import keras" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "installing the carried wheels failed"; exit 1; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} KERAS_BACKEND=jax PYTHONUNBUFFERED=1

if [ -n "${GPU_CHECK_QUICK:-}" ]; then  # a rehearsal: tiny sizes, minutes on a laptop CPU
  IMAGES=300 SIZE=32 LIMIT=300 BACKBONES="MobileNetV2"
else
  IMAGES=${GPU_CHECK_IMAGES:-3000} SIZE=224 LIMIT=170 BACKBONES="MobileNetV2 ResNet50"
fi
CORES=$(nproc)

$PY - <<'EOF' | tee "$OUT/env.txt"
import os, jax, keras, featx
from featx.engine.extractor import on_accelerator
print("featx", featx.__file__, "keras", keras.__version__, "backend", keras.backend.backend(), "jax", jax.__version__)
print("devices", jax.devices(), "cores", os.cpu_count(), "on_accelerator", on_accelerator("jax"))
EOF

PHOTOS=$(mktemp -d)/photos  # written once, shared by the runs
status=0
run() {  # name, then benchmark options; each run is cut at $LIMIT s so the others still report
  local name=$1; shift
  echo "== $name: $*"
  timeout "$LIMIT" $PY benchmarks/embed_throughput.py --backend jax --images "$IMAGES" --size "$SIZE" \
    --photos "$PHOTOS" --workers "$CORES" --json "$@" > "$OUT/$name.json" || { echo "$name failed ($?)"; status=1; }
  cat "$OUT/$name.json"
}
for backbone in $BACKBONES; do
  scaling=""; [ "$backbone" = MobileNetV2 ] && scaling="--scaling 1,$CORES"
  run "$backbone-float32" --backbone "$backbone" $scaling
done
run "MobileNetV2-bfloat16" --backbone MobileNetV2 --precision bfloat16
exit $status
