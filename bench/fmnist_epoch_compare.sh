#!/usr/bin/env bash
# One training epoch of the same network and recipe, swc then PyTorch CPU (Debian's python3-torch), in one script on
# the same machine, and the ratio of their training times (evaluation excluded from both).
#   bench/fmnist_epoch_compare.sh [CONFIG=samples/fashion-mnist.json] [OUT_DIR=bench/results/fmnist-epoch-compare]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cfg="${1:-$here/samples/fashion-mnist.json}"
out="${2:-$here/bench/results/fmnist-epoch-compare}"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$here/swc" train "$cfg" --epochs 1 --out "$tmp/swc" | tee "$out/swc-1epoch.log"
/usr/bin/python3 "$here/bench/torch_fmnist.py" "$cfg" --epochs 1 --threads "$(nproc)" --json "$out/torch-1epoch.json" \
  | tee "$out/torch-1epoch.log"
python3 - "$out" <<'PY' | tee "$out/summary.txt"
import json, re, sys
out = sys.argv[1]
m = re.search(r"epoch 1/1: .*?, ([0-9.]+) s train \(([0-9]+) images/s\) \+ ([0-9.]+) s eval", open(f"{out}/swc-1epoch.log").read())
swc_s, swc_ips, swc_eval = float(m.group(1)), int(m.group(2)), float(m.group(3))
t = json.load(open(f"{out}/torch-1epoch.json"))
e = t["epochs"][0]
print(f"one training epoch: swc {swc_s:.1f} s ({swc_ips} img/s) + {swc_eval:.1f} s eval; "
      f"PyTorch {e['train_s']:.1f} s + {e['eval_s']:.1f} s eval; swc {e['train_s'] / swc_s:.2f}x faster")
PY
