#!/usr/bin/env bash
# Runs a bundle made by scripts/gpu-bundle.sh on a GPU machine that has no .NET (PyTorch with CUDA for the peer):
#
#   gpu-check.sh BUNDLE.tar.gz RESULTS_DIR
#
# Unpacks the bundle to a temporary folder, runs swc on the bundled .NET runtime and, where a GPU is present:
#   1. the GPU tests (the bundled xunit v3 test executable)                     RESULTS_DIR/gpu-tests.{log,trx}
#   2. swc bench sw-tiny at batch 1, 32, 128 (plain and --cuda-graph), and swc bench sw-layer at sw-tiny's four stage
#      shapes (batch 32)                                                         RESULTS_DIR/swc-*.json, *.log
#   3. the PyTorch peer, eager                                                  RESULTS_DIR/torch.json
#   3b. unless GPU_CHECK_TRAIN=0, the training-step peers (bench/train_step_peers.py: sw-tiny batch 64, 224², one
#      training step in PyTorch eager, with the original's atomicAdd shift-add as a CUDA extension, and under
#      torch.compile while its time lasts; ratios against swc when RESULTS_DIR/swc-train-b64.json, or the file
#      SWC_TRAIN_JSON names, holds {"ms_per_step", "peak_bytes"})          RESULTS_DIR/train-peers.{json,md,log}
#   3c. the PyTorch peer torch.compile'd, while time is left                    RESULTS_DIR/torch-compiled.json
#   4. a table of ratios (ours vs PyTorch) and the SW layer's TFLOP/s against the FP32 peak   RESULTS_DIR/summary.txt
#      (train-peers.md is appended to it)
# Each step has a timeout; the whole run stays under GPU_CHECK_BUDGET_S seconds (default 520, under 9 minutes;
# 465 with GPU_CHECK_TRAIN=0, as before the training-step peers).
# A failed step is reported and the run goes on.
# Exit: 0 every step passed; 1 a step failed (or the bundle is broken); 2 no GPU here (after checking that the
# bundle unpacks and swc starts).
# Unless GPU_CHECK_EMIT=0, after the tests: swc emit sw-tiny, a CMake + nvcc build of the emitted project, its example
# against swc run --device cuda (relative L2 <= 1e-5) and a corrupted weights.bin     RESULTS_DIR/emit-*, emit-summary.txt
# and swc emit sw-tiny --max-batch 8: its example at batch 1 and 8 bit-equal to swc run --device cuda, batch 3 padded
# GPU_CHECK_TESTS=0 skips the tests; GPU_CHECK_BENCH=0 stops after the standalone project (tests and the standalone project only).
# GPU_CHECK_TUNE=1 instead tunes sw-tiny at batch 128 after the tests (GPU_TUNE_BUDGET_S, default 150) and benchmarks
# each stage's SW layer tuned and --untuned (RESULTS_DIR/swc-tune.log, swc-layer-s*-{tuned,untuned}.json, summary.txt).
# GPU_CHECK_ONLY=train runs issue 21's GPU lines instead (section T: the training tests, swc bench --train, the
# training-step peers, the Fashion-MNIST recipe's accuracy and time, a killed and resumed run; budget 570 s).
# GPU_CHECK_ONLY=deploy runs issue 23's GPU lines instead (section D: AnyShapeGpuTests, then swc emit sw-tiny --max-batch 8
# built with nvcc, its batches 1 and 8 bit-equal to swc run --device cuda); GPU_CHECK_MAXBATCH=1 adds section D to the
# default run, after the standalone project.
# GPU_CHECK_ONLY=precision runs issue 22's GPU lines instead (section P: the bf16/fp16 accuracy checks, swc bench sw-tiny
# at batch 128 in fp32/tf32/bf16/fp16, the PyTorch peers side by side with them, UniRepLKNet-T; budget 480 s; the GPU
# tests only with GPU_CHECK_TESTS=1, then -class ShiftWise.Gpu.Tests.Types16GpuTests unless GPU_TESTS_ARGS says;
# PRECISION_ACC_ARGS and PRECISION_PEERS_ARGS add arguments to the accuracy preparation and the peers, e.g.
# "--peers eager-fp32,eager-bf16,unireplknet-bf16" to leave torch.compile out; PRECISION_PEERS_MIN, default 150 s).
# Environment: PYTHON (default python3, needs torch for the peer), GPU_CHECK_BUDGET_S, GPU_TESTS_TIMEOUT (150),
# GPU_TESTS_ARGS (extra runner arguments, e.g. "-class ShiftWise.Gpu.Tests.X"), PEER_COMPILE=0 to skip torch.compile,
# TRAIN_PEERS_TIMEOUT (cap of step 3b, default 200), TRAIN_PEERS_MIN (seconds kept for it from step 3, default 130),
# TRAIN_PEERS_ARGS (extra arguments, e.g. "--peers eager,atomic --iters 5"), SWC_TRAIN_JSON.
set -uo pipefail

start=$SECONDS
train_on=1
[ "${GPU_CHECK_TRAIN:-1}" = "0" ] && train_on=0
if [ "$train_on" = 1 ]; then budget="${GPU_CHECK_BUDGET_S:-520}"; else budget="${GPU_CHECK_BUDGET_S:-465}"; fi
py="${PYTHON:-python3}"
if [ "${GPU_CHECK_ONLY:-}" = "train" ]; then   # issue 21's GPU lines in one call (section T below)
  export GPU_CHECK_EMIT=0
  budget="${GPU_CHECK_BUDGET_S:-570}"
  GPU_TESTS_ARGS="${GPU_TESTS_ARGS:--class ShiftWise.Gpu.Tests.TrainGpuTests -class ShiftWise.Gpu.Tests.ConvGradGpuTests}"
fi
if [ "${GPU_CHECK_ONLY:-}" = "deploy" ]; then   # issue 23's GPU lines in one call (section D below)
  GPU_TESTS_ARGS="${GPU_TESTS_ARGS:--class ShiftWise.Gpu.Tests.AnyShapeGpuTests}"
fi
if [ "${GPU_CHECK_ONLY:-}" = "precision" ]; then   # issue 22's GPU lines in one call (section P below)
  export GPU_CHECK_EMIT=0
  GPU_CHECK_TESTS="${GPU_CHECK_TESTS:-0}"   # the 8 minutes go to the acceptance lines unless asked
  budget="${GPU_CHECK_BUDGET_S:-480}"
  GPU_TESTS_ARGS="${GPU_TESTS_ARGS:--class ShiftWise.Gpu.Tests.Types16GpuTests}"
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
say() { echo "gpu-check: $*"; }
die() { echo "gpu-check: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: gpu-check.sh BUNDLE.tar.gz RESULTS_DIR"
bundle_tgz="$1"
[ -f "$bundle_tgz" ] || die "the bundle $bundle_tgz does not exist"
mkdir -p "$2" || die "cannot create the results folder $2"
R="$(cd "$2" && pwd)"
rm -f "$R"/swc-tiny-*.json "$R"/swc-layer-*.json "$R"/torch.json "$R"/torch-compiled.json "$R"/gpu-tests.trx \
  "$R"/steps.txt "$R"/summary.txt "$R"/train-peers.json "$R"/train-peers.md "$R"/train-peers.log \
  "$R"/precision-*.json "$R"/precision-*.md "$R"/precision-*.log "$R"/accuracy-*.json "$R"/accuracy-*.log \
  "$R"/swc-logits-*.npy "$R"/unireplknet.json "$R"/unireplknet.log
export SWC_GPU_RESULTS="$R"   # where tests/Gpu writes its per-kernel error table

work="$(mktemp -d "${TMPDIR:-/tmp}/swc-gpu-check.XXXXXX")" || die "cannot make a temporary folder"
trap 'rm -rf "$work"' EXIT
trap 'exit 143' TERM INT HUP
tar -xzf "$bundle_tgz" -C "$work" || die "the bundle $bundle_tgz does not unpack (tar -xzf failed)"
B="$work/bundle"
for f in MANIFEST swc/swc.dll dotnet/dotnet tools/gpu/bench_torch_peer.py; do
  [ -e "$B/$f" ] || die "the bundle has no bundle/$f: not a bundle made by scripts/gpu-bundle.sh"
done
cp "$B/MANIFEST" "$R/MANIFEST"
manifest() { sed -n "s/^$1=//p" "$B/MANIFEST" | head -n 1; }
tests_dll="$B/$(manifest gpu_tests)"

export DOTNET_ROOT="$B/dotnet" PATH="$B/dotnet:$PATH"
export DOTNET_MULTILEVEL_LOOKUP=0 DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
say "bundle $(manifest commit), .NET runtime $(manifest dotnet_runtime), unpacked to $work"
if ! version="$(dotnet "$B/swc/swc.dll" --version 2>"$work/version.err")"; then
  cat "$work/version.err" >&2
  die "'dotnet swc.dll --version' failed on the bundled .NET runtime: the bundle is broken"
fi
echo "$version" >"$R/swc-version.txt"
say "swc $version runs on the bundled runtime"

# ---- is there a GPU?
libcuda=""
if ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
  libcuda="$(ldconfig -p | sed -n 's/.*libcuda\.so\.1 .*=> //p' | head -n 1)"
else
  for d in ${LD_LIBRARY_PATH:+${LD_LIBRARY_PATH//:/ }} /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 \
           /usr/local/cuda/compat /usr/lib/wsl/lib; do
    if [ -e "$d/libcuda.so.1" ]; then libcuda="$d/libcuda.so.1"; break; fi
  done
fi
smi=""
if command -v nvidia-smi >/dev/null; then
  smi="$(nvidia-smi -L 2>&1)" || smi=""
  echo "$smi" | grep -q '^GPU ' || smi=""
fi
if [ -z "$libcuda" ] || { command -v nvidia-smi >/dev/null && [ -z "$smi" ]; }; then
  why=""
  command -v nvidia-smi >/dev/null || why="nvidia-smi is not on PATH"
  command -v nvidia-smi >/dev/null && [ -z "$smi" ] && why="nvidia-smi lists no GPU"
  [ -z "$libcuda" ] && why="${why:+$why and }libcuda.so.1 (the CUDA driver) was not found"
  echo "no GPU: $why, so only the bundle was checked (it unpacks and swc $version starts on its bundled .NET runtime)." \
    | tee "$R/summary.txt" >&2
  exit 2
fi
say "GPU: ${smi:-nvidia-smi not on PATH}; CUDA driver $libcuda"

# ---- NVRTC and cuBLAS: swc loads libnvrtc.so.13/.12/.11.2 and libcublas.so.13/.12/.11 by name; where the loader does
# not know them (a toolkit outside ld.so.conf, or only PyTorch's pip wheels), add their folders to LD_LIBRARY_PATH
for lib in libnvrtc.so libcublas.so; do
  ldconfig -p 2>/dev/null | grep -q "$lib\.1[0-9]" && continue
  dir=""
  for cand in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64 \
              $("$py" -c 'import nvidia, os; print(" ".join(os.path.join(p, d) for p in nvidia.__path__ for d in os.listdir(p)))' 2>/dev/null); do
    for c in "$cand" "$cand/lib"; do
      if ls "$c/$lib".1[0-9]* >/dev/null 2>&1; then dir="$c"; break 2; fi
    done
  done
  if [ -n "$dir" ]; then
    export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    say "$lib: not known to the loader, using $dir"
  else
    say "$lib: not found (the GPU steps that need it will say so)"
  fi
done

# ---- device facts for the FP32 peak (SMs x 128 FP32 lanes x 2 FLOP per FMA x max SM clock)
gpu_name="" sm_mhz="" sm_count=""
if command -v nvidia-smi >/dev/null; then
  nvidia-smi >"$R/nvidia-smi.txt" 2>&1
  q="$(nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader,nounits -i 0 2>/dev/null)"
  gpu_name="$(echo "$q" | cut -d, -f1 | sed 's/^ *//;s/ *$//')"
  sm_mhz="$(echo "$q" | cut -d, -f2 | tr -dc '0-9')"
fi
sm_count="$(timeout 45 "$py" -c 'import torch; print(torch.cuda.get_device_properties(0).multi_processor_count)' \
  2>/dev/null | tail -n 1 | tr -dc '0-9')"
say "device: ${gpu_name:-unknown}, max SM clock ${sm_mhz:-unknown} MHz, ${sm_count:-unknown} SMs"
export GPU_NAME="$gpu_name" SM_MAX_MHZ="$sm_mhz" SM_COUNT="$sm_count"

# ---- steps
failed=()
step_no=0
remaining() { echo $((budget - (SECONDS - start))); }
# run_step NAME CAP RESERVE LOG CMD...: runs CMD with output tee'd to LOG, under min(CAP, time left - RESERVE)
run_step() {
  local name="$1" cap="$2" reserve="$3" log="$4"; shift 4
  local t=$(( $(remaining) - reserve ))
  [ "$t" -gt "$cap" ] && t="$cap"
  step_no=$((step_no + 1))
  if [ "$t" -lt 5 ]; then
    say "step $step_no ($name): skipped, out of time"
    printf '%s\t%s\n' "$name" "skipped (out of time)" >>"$R/steps.txt"
    failed+=("$name (skipped: out of time)")
    return 1
  fi
  say "step $step_no ($name), timeout ${t}s: $*"
  timeout -k 5 "$t" "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local what="ok"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then what="timed out after ${t}s"
  elif [ "$rc" -ne 0 ]; then what="failed (exit $rc)"; fi
  printf '%s\t%s\n' "$name" "$what" >>"$R/steps.txt"
  if [ "$rc" -ne 0 ]; then
    say "step $step_no ($name): $what; log: $log"
    failed+=("$name: $what")
  fi
  return "$rc"
}

# expect_json NAME FILE: a step that exited 0 must have written its JSON
expect_json() {
  if [ ! -s "$2" ]; then
    say "$1: exited 0 but wrote no $(basename "$2")"
    failed+=("$1: no $(basename "$2") written")
  fi
}
swc=(dotnet "$B/swc/swc.dll")
final_reserve=25   # kept for the table
peer_reserve=110   # kept for the eager PyTorch peer and the table
train_min=0        # kept for the training-step peers from the eager PyTorch peer (they have the extra budget)
if [ "$train_on" = 1 ]; then   # the steps before the peers keep the time they had with the old 465 s budget
  train_min="${TRAIN_PEERS_MIN:-130}"
  [ "$budget" -gt 465 ] && peer_reserve=$((peer_reserve + budget - 465))
fi

# 1. GPU tests
if [ "${GPU_CHECK_TESTS:-1}" = "0" ]; then
  say "gpu tests skipped (GPU_CHECK_TESTS=0)"
elif [ -f "$tests_dll" ]; then
  # shellcheck disable=SC2086
  run_step "gpu tests" "${GPU_TESTS_TIMEOUT:-150}" $((peer_reserve + 10 * 15)) "$R/gpu-tests.log" \
    dotnet "$tests_dll" -noColor -trx "$R/gpu-tests.trx" ${GPU_TESTS_ARGS:-}
  if [ -f "$R/gpu-tests.trx" ]; then
    say "gpu tests: $(grep -o '<Counters [^>]*>' "$R/gpu-tests.trx" | head -n 1 | sed 's/<Counters //;s/ *\/*>$//')"
  fi
else
  say "the bundle has no test assembly $tests_dll"
  failed+=("gpu tests: $(manifest gpu_tests) missing from the bundle")
fi

# 1a. the standalone project (issue 10), unless GPU_CHECK_EMIT=0: swc emit sw-tiny at batch 2, a CMake + nvcc build of
#     it, its example on a seeded input against swc run --device cuda on the same input (relative L2 <= 1e-5), and a
#     weights.bin with one payload byte changed, which the library must reject      RESULTS_DIR/emit-*.log, emit-summary.txt
#     Then (issue 23) swc emit sw-tiny --max-batch 8 (buckets 1, 2, 4, 8), built the same way, its example at batch 1
#     and 8 against swc run --device cuda --batch 1 / 8 on the same input, BIT-EQUAL (compare_npy.py --tol 0: a bucket
#     runs the plan swc run compiles for that batch), and at batch 3 (zero-padded onto bucket 4) to relative L2 1e-5
# 3b. the training-step peers (issue 21): eager, the atomicAdd op, then torch.compile; the script stops itself
#     (--time-budget) before the timeout and rewrites its JSON after every phase, so a compile cut short keeps the
#     rest. A timeout is "partial", not a failure; a failed check or a failed eager peer fails the step. Nothing
#     here stops the steps after it.
train_step_peers() {
  local script="$B/bench/train_step_peers.py" t swc_json="${SWC_TRAIN_JSON:-$R/swc-train-b64.json}" rc
  if [ "$train_on" = 0 ]; then say "training-step peers skipped (GPU_CHECK_TRAIN=0)"; return 0; fi
  step_no=$((step_no + 1))
  if [ ! -f "$script" ]; then
    say "step $step_no (training-step peers): the bundle has no bench/train_step_peers.py (an older bundle); skipped"
    printf '%s\t%s\n' "training-step peers" "skipped (not in the bundle)" >>"$R/steps.txt"
    return 0
  fi
  t=$(( $(remaining) - final_reserve ))
  [ "$t" -gt "${TRAIN_PEERS_TIMEOUT:-200}" ] && t="${TRAIN_PEERS_TIMEOUT:-200}"
  if [ "$t" -lt 60 ]; then
    say "step $step_no (training-step peers): skipped, only ${t}s left"
    printf '%s\t%s\n' "training-step peers" "skipped (out of time)" >>"$R/steps.txt"
    failed+=("training-step peers (skipped: out of time)")
    return 0
  fi
  local extra=()
  [ -s "$swc_json" ] && extra+=(--swc-json "$swc_json")
  local from="no swc step time ($swc_json not there)"
  [ "${#extra[@]}" -gt 0 ] && from="swc step time from $swc_json"
  say "step $step_no (training-step peers), timeout ${t}s, $from"
  # shellcheck disable=SC2086
  timeout -k 5 "$t" env PYTHONUNBUFFERED=1 "$py" "$script" --device cuda --out "$R/train-peers.json" \
    --time-budget $((t - 20)) --ext-build-dir "$work/torch-ext" "${extra[@]}" ${TRAIN_PEERS_ARGS:-} 2>&1 \
    | tee "$R/train-peers.log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    printf '%s\t%s\n' "training-step peers" "partial (timed out after ${t}s; what was measured is kept)" >>"$R/steps.txt"
    say "training-step peers: stopped by the ${t}s timeout; train-peers.json keeps what was measured"
  elif [ "$rc" -ne 0 ]; then
    printf '%s\t%s\n' "training-step peers" "failed (exit $rc)" >>"$R/steps.txt"
    failed+=("training-step peers: failed (exit $rc), see train-peers.log")
  else
    printf '%s\t%s\n' "training-step peers" "ok" >>"$R/steps.txt"
  fi
  return 0
}
finish() {  # prints the steps and exits 0, or 1 when a step failed
  echo
  if [ -f "$R/steps.txt" ]; then
    say "steps:"; sed 's/^/  /' "$R/steps.txt"
  fi
  say "results in $R ($((SECONDS - start)) s)"
  if [ "${#failed[@]}" -gt 0 ]; then
    say "${#failed[@]} step(s) failed:"
    printf '  %s\n' "${failed[@]}"
    exit 1
  fi
  say "all steps passed"
  exit 0
}
# T. GPU_CHECK_ONLY=train (issue 21), after the GPU tests (by default only TrainGpuTests and ConvGradGpuTests):
#    T1 swc bench sw-tiny --train at batch 64, 224² (fp32, TF32 off)              RESULTS_DIR/swc-train-b64.{json,log}
#    T2 the training-step peers against it (3b)                                   RESULTS_DIR/train-peers.{json,md,log}
#    T3 the sample Fashion-MNIST recipe on the GPU: ≥ 92% test accuracy in ≤ 120 s wall time; the data from
#       FMNIST_DIR, else bundle/data/fashion-mnist, else /usr/share/datasets/fashion-mnist  RESULTS_DIR/train-fmnist.log
#    T4 a run killed after its first epoch's checkpoint and resumed ends with the weights of an uninterrupted run,
#       bit for bit (2 epochs on 4,096 images)                                    RESULTS_DIR/train-resume*.log
if [ "${GPU_CHECK_ONLY:-}" = "train" ]; then
  run_step "swc bench sw-tiny --train batch 64" 150 300 "$R/swc-train-b64.log" "${swc[@]}" bench sw-tiny --train \
    --batch 64 --device cuda --seconds 5 --json "$R/swc-train-b64.json" && expect_json "swc bench --train" \
    "$R/swc-train-b64.json"
  fm="${FMNIST_DIR:-}"
  [ -z "$fm" ] && [ -d "$B/data/fashion-mnist" ] && fm="$B/data/fashion-mnist"
  [ -z "$fm" ] && [ -d /usr/share/datasets/fashion-mnist ] && fm=/usr/share/datasets/fashion-mnist
  if [ -z "$fm" ]; then
    say "no Fashion-MNIST here (set FMNIST_DIR or bundle it): the recipe and resume steps are skipped"
    failed+=("fashion-mnist steps: no dataset on this machine")
  else
    "$py" - "$B/samples/fashion-mnist.json" "$fm" "$work" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["data"]["dir"] = sys.argv[2]
json.dump(cfg, open(sys.argv[3] + "/fmnist.json", "w"))
cfg["data"]["limit_train"] = 4096
cfg["data"]["limit_test"] = 1000
cfg["train"]["epochs"] = 2
json.dump(cfg, open(sys.argv[3] + "/fmnist-small.json", "w"))
PY
    t0=$SECONDS
    if run_step "fashion-mnist recipe on the GPU" 240 120 "$R/train-fmnist.log" "${swc[@]}" train "$work/fmnist.json" \
        --device cuda --out "$work/fm"; then
      wall=$((SECONDS - t0))
      acc="$(sed -n 's/^final test accuracy \([0-9.]*\)%.*/\1/p' "$R/train-fmnist.log" | tail -n 1)"
      verdict="$("$py" -c "import sys; a=float(sys.argv[1] or 0); print('ok' if a >= 92 and $wall <= 120 else 'failed')" "$acc")"
      printf '%s\t%s\n' "fashion-mnist: ${acc}% in ${wall} s wall (≥ 92% in ≤ 120 s)" "$verdict" >>"$R/steps.txt"
      [ "$verdict" = ok ] || failed+=("fashion-mnist recipe: ${acc}% in ${wall} s")
    fi
    run_step "2 epochs uninterrupted" 90 60 "$R/train-resume-a.log" "${swc[@]}" train "$work/fmnist-small.json" \
      --device cuda --out "$work/ra"
    "${swc[@]}" train "$work/fmnist-small.json" --device cuda --out "$work/rb" >"$R/train-resume-b1.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 900); do [ -f "$work/rb/checkpoint.safetensors" ] && break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    run_step "resumed after a kill" 90 30 "$R/train-resume-b2.log" "${swc[@]}" train "$work/fmnist-small.json" \
      --device cuda --out "$work/rb" --resume
    if cmp -s "$work/ra/weights.safetensors" "$work/rb/weights.safetensors"; then
      printf '%s\t%s\n' "killed and resumed run: the same weights bit for bit" "ok" >>"$R/steps.txt"
    else
      printf '%s\t%s\n' "killed and resumed run: the same weights bit for bit" "failed" >>"$R/steps.txt"
      failed+=("killed and resumed run: weights differ from the uninterrupted run")
    fi
  fi
  train_step_peers
  { cat "$R/swc-train-b64.log" 2>/dev/null; echo; cat "$R/train-peers.md" 2>/dev/null; echo; cat "$R/steps.txt"; } \
    >"$R/summary.txt"
  finish
fi
# A program that must refuse its input: exit code $1 must be 1 and log $3 must say $4; one steps.txt row named $2.
expect_refusal() {
  if [ "$1" -eq 1 ] && grep -qF "$4" "$3"; then
    printf '%s\t%s\n' "$2" "ok" >>"$R/steps.txt"
  else
    printf '%s\t%s\n' "$2" "failed (exit $1)" >>"$R/steps.txt"
    failed+=("$2: exit $1, see $(basename "$3")")
  fi
}
# D. the --max-batch library (issue 23), in GPU_CHECK_ONLY=deploy or, with GPU_CHECK_MAXBATCH=1, after the standalone
#    project: swc emit sw-tiny --max-batch 8 (buckets 1, 2, 4, 8), a CMake + nvcc build, its example at batch 1 and 8
#    against swc run --device cuda --batch 1 / 8 on the same input, BIT-EQUAL (compare_npy.py --tol 0: a bucket runs the
#    plan swc run compiles for that batch), at batch 3 (zero-padded onto bucket 4) to relative L2 1e-5, and batch 9
#    refused                                                                  RESULTS_DIR/emit-mb-*, emit-mb-summary.txt
maxbatch_section() {
  rm -f "$R"/emit-mb-*
  EM="$work/emit-mb" EMB="$work/emit-mb-build"
  if run_step "swc emit sw-tiny --max-batch 8" 300 60 "$R/emit-mb.log" "${swc[@]}" emit sw-tiny --max-batch 8 --out "$EM" \
     && run_step "cmake + nvcc build of the --max-batch project" 300 60 "$R/emit-mb-build.log" \
          bash -c "cmake -S '$EM' -B '$EMB' -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build '$EMB' -j $(nproc)"; then
    for b in 1 8 3; do
      tol=0
      [ "$b" = 3 ] && tol=1e-5
      "$py" -c "import numpy as np; np.save('$work/emit-mb-x$b.npy', np.random.default_rng($b).standard_normal(($b, 3, 224, 224)).astype(np.float32))"
      run_step "--max-batch example, batch $b" 60 40 "$R/emit-mb-run$b.log" "$EMB/swc_example" "$EM/weights.bin" \
        "$work/emit-mb-x$b.npy" "$R/emit-mb-logits$b.npy" --repeat 20
      run_step "swc run sw-tiny --device cuda --batch $b" 120 30 "$R/emit-mb-swc-run$b.log" "${swc[@]}" run sw-tiny \
        --batch "$b" --device cuda --input "$work/emit-mb-x$b.npy" --output "$R/emit-mb-swc$b.npy"
      run_step "--max-batch example vs swc run, batch $b (tolerance $tol)" 30 10 "$R/emit-mb-compare$b.log" "$py" \
        "$B/tools/gpu/compare_npy.py" "$R/emit-mb-logits$b.npy" "$R/emit-mb-swc$b.npy" --tol "$tol" \
        --label "emitted --max-batch 8 example vs swc run --device cuda (sw-tiny, batch $b)"
    done
    # a batch above the maximum: the example refuses the input (exit 1) with the batch range in its message
    "$py" -c "import numpy as np; np.save('$work/emit-mb-x9.npy', np.zeros((9, 3, 224, 224), np.float32))"
    "$EMB/swc_example" "$EM/weights.bin" "$work/emit-mb-x9.npy" "$work/emit-mb-never.npy" >"$R/emit-mb-batch9.log" 2>&1
    expect_refusal $? "--max-batch 8 library refuses batch 9" "$R/emit-mb-batch9.log" "compiled for (1 to 8, 3, 224, 224)"
  fi
  { echo "standalone project with --max-batch 8 (swc emit sw-tiny --max-batch 8):"
    sed -n 's/^\(emitted \|batches \)/  \1/p' "$R/emit-mb.log" 2>/dev/null
    for b in 1 8 3; do
      grep -h "ms per run" "$R/emit-mb-run$b.log" 2>/dev/null | sed 's/^/  example: /'
      sed 's/^/  /' "$R/emit-mb-compare$b.log" 2>/dev/null
    done
    sed 's/^/  batch 9: /' "$R/emit-mb-batch9.log" 2>/dev/null; } | tee "$R/emit-mb-summary.txt"
}
# D. GPU_CHECK_ONLY=deploy (issue 23): after the GPU tests (by default only AnyShapeGpuTests), the --max-batch library
if [ "${GPU_CHECK_ONLY:-}" = "deploy" ]; then
  maxbatch_section
  cp "$R/emit-mb-summary.txt" "$R/summary.txt" 2>/dev/null
  finish
fi
# P. GPU_CHECK_ONLY=precision (issue 22): scripts/gpu-check-precision.sh (beside this script, here and in the bundle)
if [ "${GPU_CHECK_ONLY:-}" = "precision" ]; then
  # shellcheck source=gpu-check-precision.sh
  . "$here/gpu-check-precision.sh" || die "$here/gpu-check-precision.sh is missing (an older bundle?)"
  precision_section
  finish
fi
rm -f "$R"/emit-*.log "$R"/emit-*.npy "$R"/swc-logits.npy "$R/emit-summary.txt" "$R/emit-mb-summary.txt"
if [ "${GPU_CHECK_EMIT:-1}" = "1" ]; then
  E="$work/emit" EB="$work/emit-build"
  if run_step "swc emit sw-tiny batch 2" 120 60 "$R/emit.log" "${swc[@]}" emit sw-tiny --batch 2 --out "$E" \
     && run_step "cmake + nvcc build of the emitted project" 300 60 "$R/emit-build.log" \
          bash -c "cmake -S '$E' -B '$EB' -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build '$EB' -j $(nproc)"; then
    "$py" -c "import numpy as np; np.save('$work/emit-x.npy', np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32))"
    run_step "emitted example" 60 40 "$R/emit-run.log" "$EB/swc_example" "$E/weights.bin" "$work/emit-x.npy" \
      "$R/emit-logits.npy" --repeat 20
    run_step "swc run sw-tiny --device cuda" 120 30 "$R/emit-swc-run.log" "${swc[@]}" run sw-tiny --batch 2 --device cuda \
      --input "$work/emit-x.npy" --output "$R/swc-logits.npy"
    run_step "emitted vs swc run" 30 10 "$R/emit-compare.log" "$py" "$B/tools/gpu/compare_npy.py" "$R/emit-logits.npy" \
      "$R/swc-logits.npy" --tol 1e-5 --label "emitted example vs swc run --device cuda (sw-tiny, batch 2)"
    "$py" -c "import sys; b = bytearray(open(sys.argv[1], 'rb').read()); b[-100] ^= 0x55; open(sys.argv[2], 'wb').write(b)" \
      "$E/weights.bin" "$work/corrupt.bin"
    "$EB/swc_example" "$work/corrupt.bin" "$work/emit-x.npy" "$work/corrupt-logits.npy" >"$R/emit-corrupt.log" 2>&1
    expect_refusal $? "corrupted weights.bin rejected" "$R/emit-corrupt.log" "checksum does not match"
  fi
  [ "${GPU_CHECK_MAXBATCH:-0}" = "1" ] && maxbatch_section
  { echo "standalone project (swc emit sw-tiny --batch 2):"
    sed -n 's/^emitted /  emitted /p' "$R/emit.log" 2>/dev/null
    grep -h "ms per run" "$R/emit-run.log" 2>/dev/null | sed 's/^/  example: /'
    sed 's/^/  /' "$R/emit-compare.log" 2>/dev/null
    sed 's/^/  corrupted weights.bin: /' "$R/emit-corrupt.log" 2>/dev/null
    cat "$R/emit-mb-summary.txt" 2>/dev/null; } | tee "$R/emit-summary.txt"
fi
if [ "${GPU_CHECK_BENCH:-1}" = "0" ] && [ "${GPU_CHECK_TUNE:-0}" != "1" ]; then
  cp "$R/emit-summary.txt" "$R/summary.txt" 2>/dev/null
  finish
fi

# 1b. GPU_CHECK_TUNE=1: tune sw-tiny at batch 128 (issue 9), then each stage's SW layer at batch 128 tuned and untuned;
#     the cache lives in the results folder; the benchmarks and the peer below are skipped in this mode
if [ "${GPU_CHECK_TUNE:-0}" = "1" ]; then
  export SWC_CACHE_DIR="$R/swc-cache"
  tune_s="${GPU_TUNE_BUDGET_S:-150}"
  run_step "swc tune sw-tiny batch 128" $((tune_s + 90)) 130 "$R/swc-tune.log" \
    "${swc[@]}" tune sw-tiny --device cuda --batch 128 --budget "$tune_s"
  stage=0
  for shape in "80 56 51" "160 28 49" "320 14 47" "640 7 13"; do
    read -r c h k <<<"$shape"
    for mode in tuned untuned; do
      flag=""; [ "$mode" = untuned ] && flag="--untuned"
      # shellcheck disable=SC2086
      run_step "swc bench sw-layer stage $stage $mode" 40 10 "$R/swc-layer-s$stage-$mode.log" \
        "${swc[@]}" bench sw-layer --channels "$c" --height "$h" --width "$h" --big "$k" --batch 128 --device cuda \
        --seconds 1 $flag --json "$R/swc-layer-s$stage-$mode.json"
    done
    stage=$((stage + 1))
  done
  { echo "stage  tuned ms  untuned ms  tuned/untuned speed"
    for s in 0 1 2 3; do
      t=$(sed -n 's/.*"ms_per_batch": *\([0-9.]*\).*/\1/p' "$R/swc-layer-s$s-tuned.json" 2>/dev/null | head -n 1)
      u=$(sed -n 's/.*"ms_per_batch": *\([0-9.]*\).*/\1/p' "$R/swc-layer-s$s-untuned.json" 2>/dev/null | head -n 1)
      echo "$s  ${t:-?}  ${u:-?}  $(awk -v t="$t" -v u="$u" 'BEGIN { if (t > 0) printf "%.2fx", u / t; else print "?" }')"
    done; } | tee "$R/summary.txt"
  cat "$R/emit-summary.txt" >>"$R/summary.txt" 2>/dev/null
  finish
fi

# 2. swc benchmarks
left=10
for b in 1 32 128; do
  left=$((left - 1))
  run_step "swc bench sw-tiny batch $b" 60 $((peer_reserve + 10 * left)) "$R/swc-tiny-b$b.log" \
    "${swc[@]}" bench sw-tiny --device cuda --batch "$b" --seconds 3 --json "$R/swc-tiny-b$b.json" \
    && expect_json "swc bench sw-tiny batch $b" "$R/swc-tiny-b$b.json"
  left=$((left - 1))
  run_step "swc bench sw-tiny batch $b cuda-graph" 60 $((peer_reserve + 10 * left)) "$R/swc-tiny-b$b-graph.log" \
    "${swc[@]}" bench sw-tiny --device cuda --batch "$b" --seconds 3 --cuda-graph --json "$R/swc-tiny-b$b-graph.json" \
    && expect_json "swc bench sw-tiny batch $b cuda-graph" "$R/swc-tiny-b$b-graph.json"
done
stage=0
for shape in "80 56 51" "160 28 49" "320 14 47" "640 7 13"; do
  read -r c h k <<<"$shape"
  left=$((left - 1))
  run_step "swc bench sw-layer stage $stage" 45 $((peer_reserve + 10 * left)) "$R/swc-layer-s$stage.log" \
    "${swc[@]}" bench sw-layer --channels "$c" --height "$h" --width "$h" --big "$k" --batch 32 --device cuda --seconds 2 \
    --json "$R/swc-layer-s$stage.json" && expect_json "swc bench sw-layer stage $stage" "$R/swc-layer-s$stage.json"
  stage=$((stage + 1))
done

# 3. the PyTorch peer: eager, then compiled with what time is left (its JSON is rewritten after every
#    measurement, so a compile cut short by its timeout keeps what it finished)
run_step "pytorch peer (eager)" 150 $((final_reserve + train_min)) "$R/torch.log" \
  env PYTHONUNBUFFERED=1 "$py" "$B/tools/gpu/bench_torch_peer.py" --device cuda --out "$R/torch.json" \
  && expect_json "pytorch peer (eager)" "$R/torch.json"

train_step_peers
compile_note=""
if [ "${PEER_COMPILE:-1}" = "0" ]; then
  compile_note="torch.compile peer skipped (PEER_COMPILE=0)"
elif [ $(( $(remaining) - final_reserve )) -lt 60 ]; then
  compile_note="torch.compile peer skipped: only $(remaining) s of the ${budget} s budget left"
else
  t=$(( $(remaining) - final_reserve ))
  say "step $((step_no + 1)) (pytorch peer, torch.compile), timeout ${t}s"
  step_no=$((step_no + 1))
  timeout -k 5 "$t" env PYTHONUNBUFFERED=1 "$py" "$B/tools/gpu/bench_torch_peer.py" --device cuda --compile \
    --only-compiled --out "$R/torch-compiled.json" 2>&1 | tee "$R/torch-compiled.log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    compile_note="torch.compile peer stopped by its ${t} s timeout; partial results kept"
    printf '%s\t%s\n' "pytorch peer (compiled)" "partial (timed out after ${t}s; optional)" >>"$R/steps.txt"
  elif [ "$rc" -ne 0 ]; then
    failed+=("pytorch peer (compiled): failed (exit $rc)")
    printf '%s\t%s\n' "pytorch peer (compiled)" "failed (exit $rc)" >>"$R/steps.txt"
  else
    printf '%s\t%s\n' "pytorch peer (compiled)" "ok" >>"$R/steps.txt"
  fi
fi
[ -n "$compile_note" ] && say "$compile_note"

# 4. the table
say "step $((step_no + 1)) (table)"
COMPILE_NOTE="$compile_note" timeout 20 "$py" "$B/tools/gpu/gpu_ratio_table.py" "$R" 2>&1 | tee "$R/summary.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("table: tools/gpu/gpu_ratio_table.py failed")

[ -s "$R/train-peers.md" ] && { echo; cat "$R/train-peers.md"; } >>"$R/summary.txt"
cat "$R/emit-summary.txt" >>"$R/summary.txt" 2>/dev/null
finish
