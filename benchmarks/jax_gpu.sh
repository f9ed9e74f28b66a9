#!/usr/bin/env bash
# PyMDP's JAX agent on a GPU: device memory (XLA's allocator counters, probe
# jax_memory_stats) beside the process probes, for a few configurations. Run on the
# lent GPU machine (see the closing note of the backends issue); wheels of pure-Python
# packages missing there travel in .whl/.
set -uo pipefail
OUT=${OUT:-/tmp/jax-gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import jax; print('jax', jax.__version__, jax.devices())" | tee -a "$OUT/gpu.txt"
job() {  # grid policy_len
  printf '{"backend":"pymdp-numpy","storage":"dense","dtype":"float64","grid":%s,"agents":1,"sharing":"shared","policy_len":1,"steps":20,"repeats":1}' "$1"
}
for grid in 20 40 60; do
  python3 -m memsweep.harness.worker reference --job "$(job $grid)" --out "/tmp/ref$grid.npz" || exit 1
done
measure() {  # grid agents sharing dtype [extra env]
  local name="jax_g$1_a$2_$3_$4${5:+_$5}"
  env ${5:+JAX_PLATFORMS=$5} python3 -m memsweep.cli measure --backend pymdp-jax --storage dense \
    --dtype "$4" --grid "$1" --agents "$2" --sharing "$3" --policy-len 1 --steps 20 --repeats 1 \
    --reference "/tmp/ref$1.npz" --out "$OUT/$name.parquet" 2>&1 | tail -2
}
measure 20 10 shared float32
measure 40 10 shared float32
measure 40 10 private float32
measure 40 10 private float64
measure 40 100 shared float32
measure 60 10 shared float32
measure 40 10 shared float32 cpu
ls -la "$OUT"
