#!/bin/bash
# Issue 24, deliver 5: peak memory and time to first logits of `swc run sw-tiny --weights model.pth --input x.npy`,
# measured with /usr/bin/time -v. The kernel cache is warmed first (its own SWC_CACHE_DIR), then ROUNDS interleaved
# rounds of: a run without an optimised-graph cache entry (the first run of a checkpoint) and a run with one (warm).
# BASELINE=/path/to/an/older/swc.dll adds that build's run (kernel cache warm) to each round, side by side.
# The sw-tiny checkpoint (random init, BN statistics drawn) and a (1,3,224,224) input are made once with
# /usr/bin/python3 (torch) into $WORK (default /tmp/swc-coldstart).
#   bench/coldstart.sh            # from the repository root, after a Release build
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/swc-coldstart}
ROUNDS=${ROUNDS:-3}
SWC=${SWC:-$ROOT/src/Cli/bin/Release/net10.0/swc.dll}
mkdir -p "$WORK"
cd "$WORK"
if [ ! -f model.pth ] || [ ! -f x.npy ]; then
  /usr/bin/python3 - "$ROOT" <<'EOF'
import sys, numpy as np, torch
sys.path.insert(0, sys.argv[1] + "/tools/fixtures")
import sw_torch
m = sw_torch.ShiftWiseV2()  # sw-tiny
torch.manual_seed(0)
with torch.no_grad():
    for n, b in m.named_buffers():
        if n.endswith("running_var"): b.copy_(torch.rand_like(b) + 0.5)
        elif n.endswith("running_mean"): b.copy_(torch.randn_like(b) * 0.1)
torch.save({"model": m.state_dict(), "epoch": 1}, "model.pth")
np.save("x.npy", np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32))
EOF
fi
ARGS=(run sw-tiny --weights model.pth --input x.npy)
one() { # label dll cache-dir
  SWC_CACHE_DIR=$3 /usr/bin/time -v dotnet "$2" "${ARGS[@]}" > /dev/null 2> time.txt
  printf '%-28s wall %8s  user %6s s  peak %5d MB\n' "$1" "$(grep Elapsed time.txt | awk '{print $NF}')" \
    "$(grep 'User time' time.txt | awk '{print $NF}')" "$(( $(grep Maximum time.txt | awk '{print $NF}') / 1024 ))"
}
rm -rf cache cache-base
one "prime (kernels compiled)" "$SWC" cache > /dev/null
if [ -n "${BASELINE:-}" ]; then one "prime baseline" "$BASELINE" cache-base > /dev/null; fi
for r in $(seq "$ROUNDS"); do
  if [ -n "${BASELINE:-}" ]; then one "baseline" "$BASELINE" cache-base; fi
  rm -rf cache/graph
  one "no graph entry (first run)" "$SWC" cache
  one "graph entry (warm)" "$SWC" cache
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
