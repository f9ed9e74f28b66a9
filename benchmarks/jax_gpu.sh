#!/usr/bin/env bash
# PyMDP's JAX agent on a GPU: XLA's memory plan of the compiled programs (probe
# xla_memory_analysis) and the device's own counters (probe jax_memory_stats) beside the
# process probes, for a few configurations, plus one on the same machine's CPU. One
# self-contained run for the lent GPU machine (about 3 minutes there, at most about 5
# minutes 20 s: every job has a time limit and no job runs past 300 s from the start),
# from the repository root:
#
#     OUT=/some/folder bash benchmarks/jax_gpu.sh
#
# Wheels of the pure-Python packages the machine lacks travel in .whl/ (PyMDP 1.0.4 pins
# jax<0.11.1; installed without its dependencies it runs on the machine's JAX). It writes
# three files to $OUT: gpu.txt (the GPU and the versions), jax_gpu.parquet (every row of
# every job, concatenated as written) and log.txt (every command's output), and prints
# benchmarks/jax_gpu_summary.py's tables last. A failed job is logged and the run goes on.
#
# JAX_GPU_SMOKE=1: tiny grids (5, 6), 3 steps, to check the script end to end on any
# machine (a CPU one included: JAX then runs on the CPU and writes no device counters).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-/tmp/jax-gpu}
SITE=${JAX_GPU_SITE:-/tmp/site}
SMOKE=${JAX_GPU_SMOKE:-0}
mkdir -p "$OUT" || exit 1
WORK=$(mktemp -d) || exit 1 # per-job files: only $OUT's few files come back
LOG="$OUT/log.txt"
: >"$LOG"
if [ "$SMOKE" = 1 ]; then
  SMALL=5 MEDIUM=6 LARGE=7 STEPS=3 REPEATS=2
else
  SMALL=20 MEDIUM=30 LARGE=40 STEPS=10 REPEATS=2
fi
# Time limits, in seconds since the start: one job at most JOB_LIMIT, none runs past
# FINISH, and none starts with under MIN_LEFT left before it; then the combining and the
# tables (a few seconds) end the run within about FINISH + 20 s.
JOB_LIMIT=${JAX_GPU_JOB_LIMIT:-150} FINISH=${JAX_GPU_FINISH:-300} MIN_LEFT=30
log() { echo "$*" | tee -a "$LOG"; }

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" .whl/*.whl >>"$LOG" 2>&1 || { cat "$LOG"; exit 1; }
export PYTHONPATH=$SITE:$PWD/src PYTHONUNBUFFERED=1
# No preallocation: by default XLA's GPU client reserves 75 % of the device's memory at
# start, and the device counters (bytes in use, peak) would show that pool, not what the
# job uses.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

{
  date -u +"run started %Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 ||
    echo "no nvidia-smi"
  python3 - <<'EOF' 2>&1
import importlib.metadata as md, platform
import jax, jaxlib
print("python", platform.python_version(), platform.platform())
print("jax", jax.__version__, "jaxlib", jaxlib.__version__, "backend", jax.default_backend())
print("devices", jax.devices())
import pymdp  # from the wheels' folder, first on PYTHONPATH
print("pymdp from", pymdp.__file__)
stats = jax.devices()[0].memory_stats() or {}
print("memory_stats", {k: stats[k] for k in ("bytes_in_use", "bytes_limit") if k in stats})
for name in ("inferactively-pymdp", "equinox", "numpy", "scipy", "pandas", "pyarrow",
             "multimethod", "mctx", "chex", "jax-cuda13-plugin", "jax-cuda13-pjrt"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "not installed")
EOF
} | tee "$OUT/gpu.txt" >>"$LOG"
cat "$OUT/gpu.txt"

# The references (float64 dense PyMDP numpy, one agent): one per grid and depth, made
# side by side (each is one process of a few seconds).
ref_job() { # grid policy_len
  printf '{"backend":"pymdp-numpy","storage":"dense","dtype":"float64","grid":%s,"agents":1,"sharing":"shared","policy_len":%s,"steps":%s,"repeats":1}' \
    "$1" "$2" "$STEPS"
}
for gl in "$SMALL 1" "$SMALL 2" "$MEDIUM 1" "$MEDIUM 2" "$LARGE 1"; do
  set -- $gl
  timeout -k 15 "$JOB_LIMIT" python3 -m memsweep.harness.worker reference --job "$(ref_job "$1" "$2")" \
    --out "$WORK/ref$1_L$2.npz" >"$WORK/ref$1_L$2.log" 2>&1 &
  [ "$SMOKE" = 1 ] && wait # one at a time on a small machine
done
wait
for f in "$WORK"/ref*.log; do
  name=$(basename "$f" .log)
  if [ -s "$WORK/$name.npz" ]; then log "reference $name: ok"; else log "reference $name: FAILED"; fi
  cat "$f" >>"$LOG"
done

# One job per configuration, one after the other (each alone on the GPU). A job whose
# reference is missing is given none: measure then makes it in a process of its own.
measure() { # name grid agents sharing dtype policy_len [platform]
  local name=$1 ref="$WORK/ref$2_L$6.npz" start=$SECONDS
  local left=$((FINISH - SECONDS))
  if [ "$left" -lt "$MIN_LEFT" ]; then
    log "$name: SKIPPED (${left} s left of the run's ${FINISH} s)"
    return
  fi
  [ "$left" -gt "$JOB_LIMIT" ] && left=$JOB_LIMIT
  local args=(--backend pymdp-jax --storage dense --grid "$2" --agents "$3" --sharing "$4"
    --dtype "$5" --policy-len "$6" --steps "$STEPS" --repeats "$REPEATS"
    --out "$WORK/$name.parquet")
  [ -s "$ref" ] && args+=(--reference "$ref")
  echo "== $name: ${7:+JAX_PLATFORMS=$7 }memsweep measure ${args[*]}" >>"$LOG"
  env ${7:+JAX_PLATFORMS=$7} timeout -k 15 "$left" python3 -m memsweep.cli measure "${args[@]}" \
    >>"$LOG" 2>&1
  local status=$?
  case $status in
    0) log "$name: ok in $((SECONDS - start)) s" ;;
    3) log "$name: FAILED, its record kept (exit 3) in $((SECONDS - start)) s" ;;
    124 | 137) log "$name: TIMED OUT after $((SECONDS - start)) s (limit ${left} s)" ;;
    *) log "$name: FAILED (exit $status) in $((SECONDS - start)) s" ;;
  esac
}
measure "g${SMALL}_a10_private_f64_L1" "$SMALL" 10 private float64 1
measure "g${SMALL}_a10_private_f64_L2" "$SMALL" 10 private float64 2
measure "g${MEDIUM}_a10_private_f64_L1" "$MEDIUM" 10 private float64 1
measure "g${MEDIUM}_a10_private_f64_L2" "$MEDIUM" 10 private float64 2
measure "g${SMALL}_a10_private_f64_L1_cpu" "$SMALL" 10 private float64 1 cpu
measure "g${LARGE}_a10_shared_f32_L1" "$LARGE" 10 shared float32 1
measure "g${LARGE}_a10_private_f64_L1" "$LARGE" 10 private float64 1

# Every job's rows in one file (only a few files come back), nothing added or dropped.
python3 - "$WORK" "$OUT/jax_gpu.parquet" <<'EOF' 2>&1 | tee -a "$LOG"
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

files = sorted(Path(sys.argv[1]).glob("*.parquet"), key=lambda p: p.stat().st_mtime)
tables = []
for path in files:
    try:
        tables.append(pq.read_table(path))
        print(f"{path.name}: {tables[-1].num_rows} rows")
    except Exception as error:  # a broken file is reported, the others are kept
        print(f"{path.name}: unreadable ({error})")
if not tables:
    sys.exit("no measurement file to combine")
combined = pa.concat_tables(tables, promote_options="permissive")
pq.write_table(combined, sys.argv[2])
print(f"{sys.argv[2]}: {combined.num_rows} rows from {len(tables)} file(s)")
EOF
if [ ! -s "$OUT/jax_gpu.parquet" ]; then # keep the jobs' own files then, in one archive
  tar -C "$WORK" -czf "$OUT/jobs.tar.gz" --wildcards '*.parquet' 2>>"$LOG"
fi
rm -rf "$WORK"
date -u +"run ended %Y-%m-%dT%H:%M:%SZ after ${SECONDS}s" | tee -a "$LOG"
echo
python3 benchmarks/jax_gpu_summary.py "$OUT/jax_gpu.parquet" 2>&1 | tee -a "$LOG"
ls -la "$OUT"
