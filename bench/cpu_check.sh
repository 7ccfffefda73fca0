#!/usr/bin/env bash
# bench/cpu_check.sh [OUT_DIR]: issue 24's evidence, measured side by side in one script on this machine (run it with
# nothing else running; PERFORMANCE.md). Steps, each writing into OUT_DIR (default bench/results/cpu-YYYY-MM-DD):
#   machine.txt      the CPU, its vector ISA (AVX2 / AVX-512F), cores, the load average at the start
#   peak.txt         the FP32 FMA peak (ShiftWise.Bench peak): 1 thread and all threads; the floor is FLOPs / peak
#   swc-b1.json, swc-b8.json   swc bench MODEL --batch 1 / 8 --json (ms per batch, FLOPs per image)
#   sw_layer.md      the SW layer per stage at batch 1 and 8: % of the peak, against ORT's band convs (sw-layer)
#   gemm.md          the pointwise GEMMs with their epilogues per stage and batch: % of the FMA peak measured in the
#                    same rounds (ShiftWise.Bench gemm; the default backend is the row "openblas blocked")
#   sw_tiny.md       sw-tiny end to end at batch 1 and 8 beside ONNX Runtime on swc's export (ShiftWise.Bench sw-tiny)
#   torch.json       the PyTorch original (tools/fixtures/sw_torch.py, eager fp32, Debian's torch) at batch 1
#   time-cold.txt, time-warm.txt   /usr/bin/time -v of swc run MODEL --weights model.pth --input x.npy with an empty
#                    and then a warm cache: peak memory (maximum resident set size) and wall time to the logits
#   cpu_check.md     the table: every acceptance line of issue 24 with its measured value and met / not met
# CPU_CHECK_QUICK=1: a smoke run of every step on a small sw-v2 in a few minutes (its numbers mean nothing).
# CPU_CHECK_SKIP=step,step skips steps by name (peak, bench, sw-layer, gemm, ort, torch, memory).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/bench/results/cpu-$(date -u +%F)}"
quick="${CPU_CHECK_QUICK:-0}"
skip=",${CPU_CHECK_SKIP:-},"
py=/usr/bin/python3
mkdir -p "$out" || { echo "cpu_check: cannot create $out" >&2; exit 2; }
out="$(cd "$out" && pwd)"
failed=()
step() { case "$skip" in *",$1,"*) echo "== $1: skipped (CPU_CHECK_SKIP)"; return 1;; esac; echo "== $1: $2"; }
note_fail() { failed+=("$1"); echo "cpu_check: $1 failed (see $2)" >&2; }

echo "== build (Release)"
dotnet build "$root/src/Cli/ShiftWise.Cli.csproj" -c Release -nologo -v q >"$out/build.log" 2>&1 \
  && dotnet build "$root/bench/ShiftWise.Bench/ShiftWise.Bench.csproj" -c Release -nologo -v q >>"$out/build.log" 2>&1 \
  || { echo "cpu_check: the build failed, see $out/build.log" >&2; exit 2; }
swc=(dotnet "$root/src/Cli/bin/Release/net10.0/swc.dll")
bench=(dotnet "$root/bench/ShiftWise.Bench/bin/Release/net10.0/ShiftWise.Bench.dll")

if [ "$quick" = 1 ]; then
  model=(sw-v2 --depths 1,1,1,1 --dims 8,16,16,32 --image-size 64); size=64; secs=0.3
  torch_model=(--depths 1,1,1,1 --dims 8,16,16,32 --image-size 64); layer=(--shapes s3 --rounds 3 --min-ms 5)
  ort=(--rounds 1); gemm=(--stages 3 --rounds 2 --min-ms 5)
else
  model=(sw-tiny); size=224; secs=5; torch_model=(); layer=(--rounds 15); ort=(--rounds 7); gemm=(--rounds 9)
fi

{ echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "cores: $(nproc)"
  grep -qw avx512f /proc/cpuinfo && echo "isa: AVX-512F" || { grep -qw avx2 /proc/cpuinfo && echo "isa: AVX2"; }
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "quick: $quick"
  echo "date: $(date -u +%FT%TZ)"; } >"$out/machine.txt"
cat "$out/machine.txt"

if step peak "FP32 FMA peak"; then
  "${bench[@]}" peak >"$out/peak.txt" 2>&1 || note_fail peak "$out/peak.txt"
fi
if step bench "swc bench at batch 1 and 8"; then
  for b in 1 8; do
    "${swc[@]}" bench "${model[@]}" --batch "$b" --seconds "$secs" --json "$out/swc-b$b.json" >"$out/swc-b$b.txt" 2>&1 \
      || note_fail "swc bench batch $b" "$out/swc-b$b.txt"
  done
fi
if step sw-layer "the SW layer per stage, batch 1 and 8"; then
  "${bench[@]}" sw-layer --batch 1,8 "${layer[@]}" --out "$out" >"$out/sw-layer.txt" 2>&1 \
    || note_fail sw-layer "$out/sw-layer.txt"
fi
if step gemm "the pointwise GEMMs"; then
  if "${bench[@]}" --help 2>&1 | grep -q " gemm"; then
    "${bench[@]}" gemm --batch 1,8 "${gemm[@]}" --out "$out/gemm.md" >"$out/gemm.txt" 2>&1 || note_fail gemm "$out/gemm.txt"
  else
    echo "not measured: this ShiftWise.Bench has no gemm command" >"$out/gemm.txt"
  fi
fi
if step ort "sw-tiny end to end beside ONNX Runtime"; then
  if [ "$quick" = 1 ]; then
    echo "not measured in a quick run (the ORT peer runs the full sw-tiny)" >"$out/ort.txt"
  else
    "${bench[@]}" sw-tiny --batch 1,8 "${ort[@]}" --out "$out" >"$out/ort.txt" 2>&1 || note_fail ort "$out/ort.txt"
  fi
fi
if step torch "the PyTorch original at batch 1"; then
  "$py" "$root/bench/precision_peers.py" --device cpu --batch 1 --peers eager-fp32 --repeats 5 --warmup 1 \
    "${torch_model[@]}" --json "$out/torch.json" >"$out/torch.txt" 2>&1 || note_fail torch "$out/torch.txt"
fi
if step memory "peak memory and time to the first logits, cold and warm"; then
  work="$(mktemp -d)"
  # the original's checkpoint format: the spec network's state_dict saved by torch (seed 0)
  if (cd "$root" && "$py" - "$work/model.pth" "$work/x.npy" "$size" "$quick") >"$out/memory-setup.txt" 2>&1 <<'EOF'
import sys, numpy as np, torch
sys.path.insert(0, "tools/fixtures"); sys.path.insert(0, "tools/gpu")
import sw_torch
from bench_torch_peer import SW_TINY
cfg = dict(SW_TINY) if sys.argv[4] != "1" else dict(SW_TINY, depths=(1, 1, 1, 1), dims=(8, 16, 16, 32))
torch.manual_seed(0)
torch.save(sw_torch.ShiftWiseV2(**cfg).state_dict(), sys.argv[1])
s = int(sys.argv[3])
np.save(sys.argv[2], np.random.default_rng(0).standard_normal((1, 3, s, s)).astype(np.float32))
EOF
  then
    export SWC_CACHE_DIR="$work/cache"
    for phase in cold warm; do
      /usr/bin/time -v "${swc[@]}" run "${model[@]}" --weights "$work/model.pth" --input "$work/x.npy" \
        >"$out/time-$phase.txt" 2>&1 || note_fail "swc run ($phase)" "$out/time-$phase.txt"
    done
    unset SWC_CACHE_DIR
  else
    note_fail "the checkpoint for the memory step" "$out/memory-setup.txt"
  fi
  rm -rf "$work"
fi

"$py" "$root/bench/cpu_check_table.py" "$out" >"$out/cpu_check.md" || note_fail table "$out/cpu_check.md"
cat "$out/cpu_check.md"
if [ ${#failed[@]} -gt 0 ]; then
  echo "cpu_check: ${#failed[@]} step(s) failed: ${failed[*]}" >&2
  exit 1
fi
