#!/usr/bin/env bash
# Checks that the commands of README.md and docs/*.md (not docs/ARCHITECTURE.md) run as written:
#
#   scripts/check-doc-commands.sh                     about 2.5 minutes on 2 cores
#   DOC_CHECK_FULL=1 scripts/check-doc-commands.sh    the slow commands as written too (about 30 minutes on 2 cores)
#
# Every line of a ```bash block runs as written, in order, in a temporary folder (where ./swc and scripts/* start the
# repository's own, and samples/ and tools/ are links; the README's SW-T.pth, photo.jpg and photos/ are stand-ins,
# see 0. below), with an empty SWC_CACHE_DIR; a line whose command (without
# its comment) already ran prints SAME and is not rerun. Three are slow and run as a fast equivalent (marked "fast",
# at the doc line it stands for) unless DOC_CHECK_FULL=1: scripts/test.sh, the full test suite, runs with a filter
# (the same script, build and summary line, one test), and the 16-epoch Fashion-MNIST training and its --resume run
# the same recipe on 1,024 images for one epoch, then --resume for the second. (With DOC_CHECK_FULL=1, --resume
# finds the run finished and only checks that it says so.) Lines that need nvcc or a GPU print GPU and are not run
# where there is none. Then concrete forms of commands the prose names (`swc compile ... --target cuda`, `swc grad`,
# `bench --untuned`, the documented error messages and exit codes, the GPU commands' one-line refusal without a
# GPU), and every option of docs/commands.md's synopsis against `swc CMD --help`.
# Prints one line per command (PASS/FAIL/GPU/SAME, seconds, doc line, command) and a summary; exits 1 on any FAIL,
# keeping the temporary folder with each command's output.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
full="${DOC_CHECK_FULL:-0}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/swc-doc-check.XXXXXX")"
export SWC_CACHE_DIR="$tmp/cache" DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
mkdir -p "$tmp/work/scripts" "$tmp/logs"
wrap() { printf '#!/usr/bin/env bash\nexec "%s" "$@"\n' "$1" > "$2" && chmod +x "$2"; }
wrap "$root/swc" "$tmp/work/swc"
for f in "$root"/scripts/*; do wrap "$f" "$tmp/work/scripts/$(basename "$f")"; done
ln -s "$root/samples" "$root/tools" "$tmp/work/"
cd "$tmp/work" || exit 1

has_gpu=0
command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && has_gpu=1
pass=0 fail=0 gpu=0 same=0 n=0 start=$SECONDS
declare -A ran   # a command (without its comment) already run, by the doc line that ran it

# check WHERE CMD [EXPECT [RC]]: runs CMD with bash; PASS when it exits with RC (default 0) and, if EXPECT is given,
# its output matches the extended regular expression EXPECT.
check() {
  local where="$1" cmd="$2" expect="${3:-}" want="${4:-0}" t0=$SECONDS rc log
  n=$((n + 1)); log="$tmp/logs/$n.log"
  timeout 1800 bash -c "$cmd" < /dev/null > "$log" 2>&1; rc=$?
  if [ "$rc" = "$want" ] && { [ -z "$expect" ] || tr '\r' '\n' < "$log" | grep -Eq -- "$expect"; }; then
    pass=$((pass + 1)); printf 'PASS %4ds  %-26s %s\n' $((SECONDS - t0)) "$where" "$cmd"
  else
    fail=$((fail + 1)); printf 'FAIL %4ds  %-26s %s\n' $((SECONDS - t0)) "$where" "$cmd"
    echo "     exit $rc (wanted $want)${expect:+, output should match /$expect/}; output: $log"
    tr '\r' '\n' < "$log" | tail -n 5 | sed 's/^/     | /'
  fi
}
gpu_only() { gpu=$((gpu + 1)); printf 'GPU     -   %-26s %s\n' "$1" "$2"; }

# What a doc command's output must show (its described output), by the command.
expect_of() {
  case "$1" in
    "./swc demo"*) echo 'check against the reference executor .* OK' ;;
    "./swc inspect sw-tiny"*) echo 'parameters: 31,790,260 trainable' ;;   # docs/faithfulness.md
    "./swc run "*"--input photo.jpg"*) echo '1 images classified, 0 skipped' ;;
    "./swc run "*"--output predictions.csv"*) echo 'wrote predictions.csv' ;;
    "./swc run "*) echo 'sample 0 top-5' ;;
    "./swc tune "*) echo 'cache written to' ;;
    "./swc emit "*) echo 'emitted sw-tiny' ;;
    *export_pytorch.py*) echo 'wrote out/weights.safetensors and out/model.json' ;;
  esac
}

# 0. Stand-ins for what the README's photo example downloads or the user has: SW-T.pth, a random sw-tiny saved in the
# original's save_model layout (model, epoch, args Namespace: what the released checkpoint holds), photo.jpg and a
# folder photos/ of the image fixtures.
/usr/bin/python3 -c "import argparse, sys, torch; sys.path.insert(0, 'tools/fixtures'); import sw_torch
torch.manual_seed(0); m = sw_torch.ShiftWiseV2().eval()
torch.save({'model': m.state_dict(), 'epoch': 299, 'args': argparse.Namespace(model='ShiftWise_v2_tiny')}, 'SW-T.pth')"
images="$root/tests/Frontend.Tests/Fixtures/images"
cp "$images/base420_640x480.jpg" photo.jpg && mkdir -p photos && cp "$images"/rgb_*.png "$images"/*.jpg photos/

# 1. The ```bash blocks, line by line. quick.json: the sample recipe on 1,024 training and 500 test images, 2 epochs.
/usr/bin/python3 -c "import json; c = json.load(open('samples/fashion-mnist.json'))
c['data'].update(limit_train=1024, limit_test=500); c['train']['epochs'] = 2; json.dump(c, open('quick.json', 'w'))"
while IFS=$'\t' read -r where cmd; do
  key="$(sed -E 's/[[:space:]]+#.*$//' <<< "$cmd")"
  if [ -n "${ran[$key]:-}" ]; then
    same=$((same + 1)); printf 'SAME    -   %-26s %s (ran at %s)\n' "$where" "$key" "${ran[$key]}"; continue
  fi
  ran[$key]="$where"
  case "$cmd" in
    "scripts/test.sh"*)
      if [ "$full" = 1 ]; then check "$where" "$cmd" '^[0-9]+ passed, 0 failed, [0-9]+ skipped$'
      else check "$where (fast)" 'scripts/test.sh --filter "FullyQualifiedName~ProcessReplayTests"' \
        '^[1-9][0-9]* passed, 0 failed, [0-9]+ skipped$'; fi ;;
    *" --device cuda"*) if [ "$has_gpu" = 1 ]; then check "$where" "$cmd"; else gpu_only "$where" "$cmd"; fi ;;
    "./swc train samples/fashion-mnist.json --resume"*)
      if [ "$full" = 1 ]; then check "$where" "$cmd"
      else check "$where (fast)" './swc train quick.json --resume' 'resuming after epoch 1'; fi ;;
    "./swc train samples/fashion-mnist.json"*)
      if [ "$full" = 1 ]; then check "$where" "$cmd" 'final test accuracy'
      else check "$where (fast)" './swc train quick.json --epochs 1' 'final test accuracy'; fi ;;
    "cmake "*) if command -v nvcc >/dev/null; then check "$where" "$cmd"; else gpu_only "$where" "$cmd"; fi ;;
    "./build/"*) if [ "$has_gpu" = 1 ]; then check "$where" "$cmd"; else gpu_only "$where" "$cmd"; fi ;;
    *) check "$where" "$cmd" "$(expect_of "$cmd")" ;;
  esac
done < <(for f in "$root/README.md" "$root"/docs/*.md; do
  [ "$(basename "$f")" = ARCHITECTURE.md ] && continue
  awk -v f="${f#"$root"/}" '/^```bash/ { b = 1; next } /^```/ { b = 0 }
    b { c = $0; sub(/^[ \t]+/, "", c); if (c != "" && c !~ /^#/) print f ":" FNR "\t" $0 }' "$f"
done)

# 2. Commands the prose names, in a concrete form.
check "README.md:30 (swc compile)" './swc compile sw-tiny --target cuda --out cuda-out' 'CUDA kernels to cuda-out/kernels'
check "docs/targets.md:37" 'SWC_DISABLE=nvrtc ./swc compile sw-tiny --target cuda --out cuda-out2' 'not compiled'
check "docs/commands.md:4" './swc --help' 'Commands:'
check "docs/commands.md:5" './swc --version' '^[0-9]+\.[0-9]+'
check "docs/commands.md:47" './swc inspect sw-tiny --kernel-size 51,49,47,13,4' \
  'option --kernel-size: the small kernel 4 must be odd' 2
check "docs/commands.md:106" './swc run samples/sw_layer.swir --device reference' 'output f32\[1,3,9,9\]'
check "docs/hostile-inputs.md:12" './swc inspect sw-tiny --width-factor 1e9' '--width-factor' 2
check "docs/training.md:27 (grad)" "/usr/bin/python3 -c \"import numpy as n; n.save('labels.npy', n.array([9,2,1,1,6,1,4,6]))\" \
&& ./swc grad sw-fmnist --weights runs/fashion-mnist/weights.safetensors --input images.npy --labels labels.npy \
--output g.safetensors" 'loss .* parameter gradients'
check "docs/training.md:41 (--profile)" './swc train quick.json --epochs 1 --out runs/profile --profile' 'final test accuracy'
check "docs/tuning.md:28" './swc bench sw-tiny --seconds 1' 'tuning: [0-9]+ of [0-9]+ SW kernels tuned'
check "docs/tuning.md:28" './swc bench sw-tiny --seconds 1 --untuned' 'tuning: off'
if [ "$has_gpu" = 1 ]; then
  check "docs/targets.md:68" './swc run sw-tiny --device cuda' 'sample 0 top-5'
else  # docs/targets.md: without a driver or a GPU, one line on stderr and exit code 2
  for c in './swc run sw-tiny --device cuda' './swc bench sw-tiny --device cuda --cuda-graph --tf32 --json b.json' \
           './swc tune sw-tiny --device cuda' './swc train quick.json --device cuda --out runs/gpu' \
           './swc bench sw-tiny --train --batch 64 --device cuda'; do
    check "docs/targets.md:72 (no GPU)" "$c 2> err.txt; rc=\$?; cat err.txt; [ \$(wc -l < err.txt) = 1 ] && exit \$rc" \
      'no GPU' 2
  done
fi
# docs/targets.md: the bundle is made anywhere; without a GPU gpu-check.sh checks it and exits 2 saying "no GPU"
bundle='scripts/gpu-bundle.sh bundle.tar.gz && scripts/gpu-check.sh bundle.tar.gz gpu-results'
if [ "$has_gpu" = 0 ]; then check "docs/targets.md:76" "$bundle" '^no GPU: ' 2
elif [ "$full" = 1 ]; then check "docs/targets.md:76" "$bundle"
else gpu_only "docs/targets.md:76" "$bundle"; fi
gpu_only "docs/tuning.md:48" 'GPU_CHECK_TUNE=1 scripts/gpu-check.sh bundle.tar.gz gpu-results'

# 3. Every option of docs/commands.md's synopsis (and its model options) is one `swc CMD --help` lists.
while read -r cmd opts; do
  help="$(./swc "$cmd" --help 2>&1 < /dev/null)"
  for o in $opts; do grep -qE -- "(^| )$o( |$)" <<< "$help" || echo "swc $cmd --help has no $o"; done
done > synopsis-missing.txt < <(awk '/^```/ { if (++b > 1) exit; next }
  $1 == "swc" && $2 != "--help" && $2 != "--version" { if (c) print c, o; c = $2; o = "" }
  c { while (match($0, /--[a-z0-9-]+/)) { o = o " " substr($0, RSTART, RLENGTH); $0 = substr($0, RSTART + RLENGTH) } }
  END { print c, o }' "$root/docs/commands.md"
  awk '/^A bad value/ { exit } /^Model options:/ { m = 1; printf "inspect" }
  m { while (match($0, /--[a-z0-9-]+/)) { printf " %s", substr($0, RSTART, RLENGTH); $0 = substr($0, RSTART + RLENGTH) } }
  END { print "" }' "$root/docs/commands.md")
check "docs/commands.md (synopsis)" 'cat synopsis-missing.txt; [ ! -s synopsis-missing.txt ]  # each option is in --help'

echo "$pass passed, $fail failed, $gpu GPU-only not run, $same repeated lines not rerun, in $((SECONDS - start)) s"
if [ "$fail" -gt 0 ]; then echo "logs kept in $tmp"; exit 1; fi
rm -rf "$tmp"
