#!/usr/bin/env bash
# A GPU lease in two prepared calls: the package's own Keras code trains a plan under JAX there.
#
#   here:   FER_DATA_DIR=/path/ferplus research/gpu_lease.sh prepare
#           FER2013Train alone (held-out splits never travel) as one bundle, split in two halves,
#           since a call carries at most 64 MiB with the repository: .gpu/a (first half + the
#           wheels the GPU image lacks: keras, namex, optree) and .gpu/b (second half)
#   call 1: research/gpu_lease.sh stage            (device tool, carry [".gpu/a"]): step times
#   call 2: research/gpu_lease.sh run PLAN SECONDS [device_runs options]   (carry [".gpu/b"])
#           on the same machine, still warm (its idle limit is 30 s): joins the halves, checks the
#           checksum, trains; $OUT gets at most 8 files (log, the plan's report, the headline
#           group's models, the returned models, every run's records)
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
g="${LEASE_DIR:-.gpu}"      # ignored by git; carried to the device in two halves

use_wheels() {
  if [ -z "${SKIP_WHEELS:-}" ]; then
    [ -d /tmp/site/keras ] || "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target /tmp/site "$g"/a/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
  fi
  export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
}

case "${1:-}" in
prepare)
  : "${FER_DATA_DIR:?set FER_DATA_DIR to the FER+ folder}"
  venv="${VENV_PYTHON:-.venv/bin/python}"
  rm -rf "$g" && mkdir -p "$g/a" "$g/b"
  "$venv" -c "import os, sys; from fer_helpers.data import pack_dataset
pack_dataset(os.environ['FER_DATA_DIR'], sys.argv[1] + '/fertrain.npz', ['FER2013Train'])" "$g"
  (cd "$g" && sha256sum fertrain.npz > b/fertrain.sha256 && split -n 2 -d fertrain.npz part &&
   mv part00 a/fertrain.part0 && mv part01 b/fertrain.part1 && rm fertrain.npz)
  if [ -z "${SKIP_WHEELS:-}" ]; then
    keras_version="$("$venv" -c 'import keras; print(keras.__version__)')"
    # The GPU image runs Python 3.12; these three are the only imports it lacks (keras' own needs).
    "$venv" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d "$g/a" "keras==$keras_version" namex optree
  fi
  du -sh "$g/a" "$g/b" ;;
stage)
  use_wheels
  { nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no nvidia-smi"; } 2>&1
  # Step times (a minute at most): they say how many epochs the next call's deadline allows.
  out="${OUT:-/tmp}"
  timeout 120 "$py" -m benchmarks.step_time --steps 12 --deadline 60 | tee "$out/step_time.jsonl" || true ;;
run)
  [ $# -ge 3 ] || { echo "usage: $0 run PLAN SECONDS [device_runs options]" >&2; exit 2; }
  plan="$2"; seconds="$3"; shift 3
  out="${OUT:?OUT is the folder whose files come back}"
  [ -f "$g/a/fertrain.part0" ] || { echo "no $g/a here: run 'stage' (carry $g/a) on this machine first" >&2; exit 3; }
  data="${LEASE_DATA:-/tmp/fertrain.npz}"
  cat "$g/a/fertrain.part0" "$g/b/fertrain.part1" > "$data"
  [ "$(sha256sum < "$data" | cut -d' ' -f1)" = "$(cut -d' ' -f1 "$g/b/fertrain.sha256")" ] ||
    { echo "$data: the joined data bundle does not match its checksum ($g/b/fertrain.sha256)" >&2; exit 3; }
  use_wheels
  # Run folders stay outside $OUT (only 8 files come back); device_runs packs what matters into $OUT.
  "$py" -m research.device_runs --plan "$plan" --data "$data" --out "$out" \
    --work "${LEASE_WORK:-/tmp/lease_work}" --deadline "$seconds" "$@" 2>&1 | tee "$out/plan.log" ;;
*)
  echo "usage: $0 prepare | stage | run PLAN SECONDS [device_runs options]" >&2; exit 2 ;;
esac
