#!/usr/bin/env bash
# Issue 9's CPU acceptance, side by side in one script: swc bench sw-tiny untuned, swc tune sw-tiny --device cpu
# --budget B, then bench tuned and untuned alternately (R rounds each, the order swapped every round; the first
# untuned bench is kept as bench-before.txt but not compared, so both sides have R runs), and a per-kernel table:
# each node's fastest run untuned and tuned over all rounds (bench's "min ms": this shared machine has bursts of
# load that move means by 2x), and their ratio; the whole model likewise.
#   bench/tune_check.sh [OUT_DIR] [BUDGET_S=120] [ROUNDS=3]
# The tuning cache goes to OUT_DIR/cache (SWC_CACHE_DIR), so the check starts from nothing.
set -euo pipefail
out="${1:-bench/results/tune-check}"
budget="${2:-120}"
rounds="${3:-3}"
here="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$out"
export SWC_CACHE_DIR="$(cd "$out" && pwd)/cache"
rm -rf "$SWC_CACHE_DIR"
swc="$here/swc"
"$swc" bench sw-tiny --seconds 3 --top 200 --untuned >"$out/bench-before.txt"
"$swc" tune sw-tiny --device cpu --budget "$budget" | tee "$out/tune.txt"
for r in $(seq 1 "$rounds"); do
  # the order alternates from round to round, and both sides get the same number of runs
  if [ $((r % 2)) -eq 1 ]; then
    "$swc" bench sw-tiny --seconds 3 --top 200 >"$out/bench-tuned-$r.txt"
    "$swc" bench sw-tiny --seconds 3 --top 200 --untuned >"$out/bench-untuned-$r.txt"
  else
    "$swc" bench sw-tiny --seconds 3 --top 200 --untuned >"$out/bench-untuned-$r.txt"
    "$swc" bench sw-tiny --seconds 3 --top 200 >"$out/bench-tuned-$r.txt"
  fi
done
python3 - "$out" "$rounds" <<'PY' | tee "$out/summary.txt"
import re, sys, glob, os
out, rounds = sys.argv[1], int(sys.argv[2])
def table(path):
    t = {}
    for line in open(path):
        m = re.match(r"^(\S+)\s+(sw_fused_\S+)\s+([0-9.]+)\s+([0-9.]+)\s*$", line)
        if m: t[m.group(1)] = (m.group(2), float(m.group(4)))
    return t
def whole(path):
    m = re.search(r"ms per batch \(median of \d+; min ([0-9.]+)", open(path).read())
    return float(m.group(1))
tuned = [table(f"{out}/bench-tuned-{r}.txt") for r in range(1, rounds + 1)]
untuned = [table(f"{out}/bench-untuned-{r}.txt") for r in range(1, rounds + 1)]
nodes = sorted(tuned[0], key=lambda n: -tuned[0][n][1])
print(f"{'node':40} {'kernel':42} {'untuned min ms':>14} {'tuned min ms':>12} {'untuned/tuned':>13}")
worst = 9e9
for n in nodes:
    u = min(t[n][1] for t in untuned if n in t); v = min(t[n][1] for t in tuned if n in t)
    worst = min(worst, u / v)
    print(f"{n:40} {tuned[0][n][0]:42} {u:14.3f} {v:12.3f} {u / v:12.2f}x")
wu = min(whole(f"{out}/bench-untuned-{r}.txt") for r in range(1, rounds + 1))
wt = min(whole(f"{out}/bench-tuned-{r}.txt") for r in range(1, rounds + 1))
print(f"whole model (fastest run): untuned {wu:.2f} ms, tuned {wt:.2f} ms per batch ({wu / wt:.2f}x); lowest SW node ratio {worst:.2f}x")
PY
