#!/usr/bin/env bash
# The GPU check: one command for a short slot (about 10 minutes) on one NVIDIA GPU.
#
#   bench/gpu_check.sh [MECHLAB_BINARY] [OUT_DIR]
#
# MECHLAB_BINARY is a mechlab built with `--features cuda` (README, "Backends": built on any
# machine, copied as one file). Everything runs under a deadline (GPU_CHECK_BUDGET_S, default
# 540 s) in order of importance, each step time-boxed with SIGINT, so a slot that ends early keeps
# what was measured: results go to OUT_DIR (default $OUT, else gpu_check_out), one file per step,
# and summary.txt says what ran, what was skipped and why.
#   1. preflight: driver, libcuda, libnvrtc, CUDA headers (also those PyTorch's wheels carry);
#   2. mechlab selftest --device cuda (fixtures through every mixer, scan, generic ops, packing);
#   3. mechlab bench --device cuda, every mixer at d_model 32 (tokens/s, warm-up, launches/step);
#   4. PyTorch eager on the same GPU (bench/torch_ar.py --device cuda), where torch is installed;
#   5. the paper-regime AR-32 attention run to step 2,000 against the CPU's curve;
#   6. bench --pack 8 / 32 at d_model 32, then d_model 256 at 1 / 8 / 32, while time is left.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-./mechlab}
OUT_DIR=${2:-${OUT:-gpu_check_out}}
BUDGET=${GPU_CHECK_BUDGET_S:-540}
mkdir -p "$OUT_DIR"
SUMMARY="$OUT_DIR/summary.txt"
: > "$SUMMARY"
DEADLINE=$(( $(date +%s) + BUDGET ))
MIXERS="attention based base_conv h3 hyena mamba"

note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME LIMIT_S COMMAND…: runs COMMAND with stdout to NAME.out, stderr to NAME.err, stopped
# by SIGINT at LIMIT_S or at the deadline, whichever is first.
step() {
  local name=$1 limit=$2; shift 2
  local left=$(( DEADLINE - $(date +%s) ))
  if (( left < 10 )); then note "skip  $name: the slot's time is spent"; return 1; fi
  (( limit > left )) && limit=$left
  local start=$(date +%s)
  timeout --signal=INT --kill-after=10 "$limit" "$@" > "$OUT_DIR/$name.out" 2> "$OUT_DIR/$name.err"
  local rc=$?
  note "$( ((rc == 0)) && echo ok || echo "rc=$rc" )  $name ($(( $(date +%s) - start )) s)"
  return $rc
}

# 1. Preflight ------------------------------------------------------------------------------
note "== preflight"
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >> "$SUMMARY" 2>&1; then
  note "no NVIDIA driver answers (nvidia-smi): not a GPU machine, or the driver is not loaded"
  exit 2
fi
if ! ldconfig -p | grep -q 'libcuda\.so'; then
  note "libcuda.so.1 is not in the loader's cache: the NVIDIA driver's user-space library is missing"
  exit 2
fi
if [ ! -x "$BIN" ]; then
  note "$BIN: no mechlab binary (build: cargo build --release --features cuda; see README)"
  exit 2
fi
# NVRTC and the CUDA headers: the toolkit's, or those of PyTorch's nvidia-* wheels.
site=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null || true)
if ! ldconfig -p | grep -q 'libnvrtc\.so'; then
  for d in ${CUDA_PATH:+$CUDA_PATH/lib64} /usr/local/cuda/lib64 $(for s in $site; do echo "$s/nvidia/cuda_nvrtc/lib"; done); do
    if ls "$d"/libnvrtc.so* >/dev/null 2>&1; then
      export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      # cudarc asks for libnvrtc.so; wheels ship only libnvrtc.so.12: link it under that name.
      if [ ! -e "$d/libnvrtc.so" ]; then
        mkdir -p "$OUT_DIR/lib" && ln -sf "$(ls "$d"/libnvrtc.so.* | head -1)" "$OUT_DIR/lib/libnvrtc.so"
        export LD_LIBRARY_PATH="$PWD/$OUT_DIR/lib:$LD_LIBRARY_PATH"
      fi
      note "libnvrtc: $d"; break
    fi
  done
fi
if [ -z "${CUDA_PATH:-}" ] || [ ! -f "$CUDA_PATH/include/cuda_runtime.h" ]; then
  for d in /usr/local/cuda /opt/cuda $(for s in $site; do echo "$s/nvidia/cuda_runtime"; done); do
    if [ -f "$d/include/cuda_runtime.h" ]; then export CUDA_PATH=$d; note "CUDA headers: $d/include"; break; fi
  done
fi
"$BIN" --version >> "$SUMMARY" 2>&1

# 2. Selftest (its own preflight names whatever is still missing) ------------------------------
note "== selftest"
step selftest 180 "$BIN" selftest --device cuda --tolerance tf32
grep -h '"verdict"' "$OUT_DIR/selftest.out" 2>/dev/null | sed 's/^/  /' >> "$SUMMARY"

# 3. mechlab training throughput and launches per step, d_model 32 --------------------------
note "== bench d_model 32"
for m in $MIXERS; do
  step "bench_${m}_d32" 40 "$BIN" bench --device cuda --mixer "$m" --d-model 32 --warmup 5 --steps 30
done

# 4. PyTorch eager on the same GPU -----------------------------------------------------------
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  note "== pytorch d_model 32"
  for m in $MIXERS; do
    step "torch_${m}_d32" 30 python3 bench/torch_ar.py --device cuda --mixer "$m" --d-model 32 --warmup 5 --steps 30
  done
else
  note "skip  pytorch: no torch with CUDA here"
fi

# 5. The paper-regime AR-32 attention run to step 2,000 ---------------------------------------
note "== AR-32 attention, 2,000 steps"
RES="$OUT_DIR/results"
if step ar32_attention 150 "$BIN" --results "$RES" run bench/gpu_check/ar32_attention.toml --device cuda --until-step 2000 -q; then
  "$BIN" --results "$RES" export table bench/gpu_check/ar32_attention.toml --table progress --format csv --out "$OUT_DIR/ar32_attention_gpu.csv" >> "$SUMMARY" 2>&1
  note "CPU (bench/gpu_check/cpu_reference.csv) then GPU, test split:"
  grep -h ',test,' bench/gpu_check/cpu_reference.csv "$OUT_DIR/ar32_attention_gpu.csv" | sed 's/^/  /' >> "$SUMMARY"
fi

# 6. Packing and the larger width, while time is left ----------------------------------------
note "== bench --pack"
for d in 32 256; do
  for m in $MIXERS; do
    if (( d == 256 )); then
      step "bench_${m}_d256" 40 "$BIN" bench --device cuda --mixer "$m" --d-model 256 --warmup 5 --steps 30
    fi
    for p in 8 32; do
      step "pack${p}_${m}_d${d}" 60 "$BIN" bench --device cuda --mixer "$m" --d-model "$d" --pack "$p" --warmup 3 --steps 10
    done
  done
done
note "== done; every step's output is in $OUT_DIR"
