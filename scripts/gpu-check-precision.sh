#!/usr/bin/env bash
# Section P of scripts/gpu-check.sh (GPU_CHECK_ONLY=precision, issue 22), sourced by it after the GPU checks: it uses
# gpu-check.sh's variables (B, R, work, py, swc, final_reserve, failed, step_no) and functions (say, run_step,
# expect_json, remaining). Kept in a file of its own so that gpu-check.sh stays readable; not meant to be run alone.
#
# P. GPU_CHECK_ONLY=precision (issue 22), within GPU_CHECK_BUDGET_S (480):
#    P1 precision_accuracy.py prepare: the seeded image-like batch of 16, sw-tiny's weights (.safetensors) and the
#       float64 reference (on the GPU), with 16-bit storage emulated in PyTorch for context   RESULTS_DIR/precision-prepare.*
#    P2 swc run sw-tiny --device cuda --precision bf16|fp16 on them, and the check: relative L2 <= 2e-2 (bf16) /
#       5e-3 (fp16), the same top-1 where the reference's top-1/top-2 gap >= 0.1   RESULTS_DIR/accuracy-*.{log,json}
#    P3 swc bench sw-tiny --device cuda --batch 128 --precision fp32|tf32|bf16|fp16   RESULTS_DIR/swc-tiny-b128-*.json
#    P3b the same with the GEMMs on cuBLASLt (SWC_GEMM_API=2: cublasLtMatmul, its bias/ReLU epilogue where that is a
#       node's whole epilogue) for bf16 and tf32, beside P3's cuBLAS rows       RESULTS_DIR/swc-tiny-b128-*-lt.json,
#       and the pair's line in RESULTS_DIR/gemm-api.txt (images/s and GEMM ms, cuBLAS vs cuBLASLt); ~50 s, from
#       what P5 would otherwise get (its P_MIN reserve is unchanged)
#    P4 bench/unireplknet.py: UniRepLKNet-T's parameters and FLOPs (both forms)        RESULTS_DIR/unireplknet.{json,log}
#    P5 bench/precision_peers.py: PyTorch eager fp32 / autocast-bf16 / autocast-fp16, torch.compile (bf16, while time
#       is left), UniRepLKNet-T (bf16, channels_last, reparameterised), beside P3's rows, and the ratio lines
#       against issue 22's targets                                           RESULTS_DIR/precision-peers.{json,md,log}
#    The big files (weights 127 MB, input 9.6 MB) stay in the temporary folder; summary.txt collects the lines.
# shellcheck disable=SC2154  # B, R, work, py, swc, final_reserve and step_no are gpu-check.sh's
precision_section() {
  A="$work/accuracy" P_MIN="${PRECISION_PEERS_MIN:-150}"   # seconds kept for P5 from the steps before it
  # a step's reserve is what the steps after it need at least (swc run or bench ~25 s, a check 5 s, unireplknet.py
  # 10 s), not their caps: the caps add up to more than the budget, and a fast step leaves its time to the next
  after_acc=$((P_MIN + 10 + 4 * 25))
  acc_py="$B/tools/gpu/precision_accuracy.py" peers_py="$B/bench/precision_peers.py" url_py="$B/bench/unireplknet.py"
  for f in "$acc_py" "$peers_py" "$url_py"; do
    [ -f "$f" ] || { say "the bundle has no ${f#"$B/"} (an older bundle)"; failed+=("${f#"$B/"} missing from the bundle"); }
  done
  # shellcheck disable=SC2086
  if run_step "accuracy: prepare input, weights, float64 reference" 120 $((after_acc + 2 * 30)) "$R/precision-prepare.log" \
       env PYTHONUNBUFFERED=1 "$py" "$acc_py" prepare --out "$A" --batch 16 --image-size 224 --device cuda \
       ${PRECISION_ACC_ARGS:-}; then
    cp "$A/prepare.json" "$R/precision-prepare.json"
    n_after=1
    for p in bf16 fp16; do
      n_after=$((n_after - 1))
      run_step "swc run sw-tiny --precision $p (batch 16)" 120 $((after_acc + 5 + 30 * n_after)) "$R/accuracy-$p-run.log" \
        "${swc[@]}" run sw-tiny --weights "$A/weights.safetensors" --input "$A/input.npy" --device cuda \
        --precision "$p" --output "$R/swc-logits-$p.npy" \
        && run_step "accuracy check $p" 30 $((after_acc + 30 * n_after)) "$R/accuracy-$p.log" "$py" "$acc_py" check \
          --logits "$R/swc-logits-$p.npy" --reference "$A/reference.npy" --precision "$p" --json "$R/accuracy-$p.json"
    done
  fi
  swc_args=()
  left=6   # P3's four rows and P3b's two
  for p in fp32 tf32 bf16 fp16; do
    left=$((left - 1))
    run_step "swc bench sw-tiny batch 128 $p" 75 $((P_MIN + 10 + 25 * left)) "$R/swc-tiny-b128-$p.log" \
      "${swc[@]}" bench sw-tiny --device cuda --batch 128 --precision "$p" --seconds 3 --json "$R/swc-tiny-b128-$p.json" \
      && expect_json "swc bench sw-tiny batch 128 $p" "$R/swc-tiny-b128-$p.json"
    [ -s "$R/swc-tiny-b128-$p.json" ] && swc_args+=(--swc "$p=$R/swc-tiny-b128-$p.json")
  done
  for p in bf16 tf32; do
    left=$((left - 1))
    run_step "swc bench sw-tiny batch 128 $p, GEMMs on cuBLASLt" 75 $((P_MIN + 10 + 25 * left)) \
      "$R/swc-tiny-b128-$p-lt.log" env SWC_GEMM_API=2 "${swc[@]}" bench sw-tiny --device cuda --batch 128 \
      --precision "$p" --seconds 3 --json "$R/swc-tiny-b128-$p-lt.json" \
      && expect_json "swc bench sw-tiny batch 128 $p (cuBLASLt)" "$R/swc-tiny-b128-$p-lt.json"
    [ -s "$R/swc-tiny-b128-$p.json" ] && [ -s "$R/swc-tiny-b128-$p-lt.json" ] \
      && { "$py" - "$p" "$R/swc-tiny-b128-$p.json" "$R/swc-tiny-b128-$p-lt.json" >>"$R/gemm-api.txt" <<'PY' || true
import json, sys
p, ex, lt = sys.argv[1], *(json.load(open(f)) for f in sys.argv[2:])
gemm = lambda r: sum(v for k, v in (r.get("ms_by_kind") or {}).items() if k.startswith("gemm"))
print(f"{p} sw-tiny b128: cuBLAS {ex['images_per_s']:.0f} img/s (GEMM {gemm(ex):.2f} ms), "
      f"cuBLASLt {lt['images_per_s']:.0f} img/s (GEMM {gemm(lt):.2f} ms): x{lt['images_per_s'] / ex['images_per_s']:.3f}")
PY
      }
  done
  run_step "unireplknet.py: parameters and FLOPs" 30 "$((P_MIN + final_reserve))" "$R/unireplknet.log" \
    "$py" "$url_py" --json "$R/unireplknet.json"
  # P5 stops its own rounds at --time-budget and rewrites its JSON after every phase, but a torch.compile cannot be
  # cut short from inside: a timeout there keeps the eager rows and is recorded as partial, not as a failure
  t=$(( $(remaining) - final_reserve ))
  step_no=$((step_no + 1))
  if [ "$t" -lt 40 ]; then
    say "step $step_no (precision peers): skipped, only ${t}s left"
    printf '%s\t%s\n' "precision peers" "skipped (out of time)" >>"$R/steps.txt"
    failed+=("precision peers (skipped: out of time)")
  else
    say "step $step_no (precision peers, batch 128), timeout ${t}s"
    # shellcheck disable=SC2086
    timeout -k 5 "$t" env PYTHONUNBUFFERED=1 "$py" "$peers_py" --device cuda --batch 128 \
      --json "$R/precision-peers.json" --time-budget $((t - 20)) "${swc_args[@]}" ${PRECISION_PEERS_ARGS:-} 2>&1 \
      | tee "$R/precision-peers.log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
      printf '%s\t%s\n' "precision peers" "partial (timed out after ${t}s; the rows measured are kept)" >>"$R/steps.txt"
    elif [ "$rc" -ne 0 ]; then
      printf '%s\t%s\n' "precision peers" "failed (exit $rc)" >>"$R/steps.txt"
      failed+=("precision peers: failed (exit $rc), see precision-peers.log")
    else
      printf '%s\t%s\n' "precision peers" "ok" >>"$R/steps.txt"
    fi
  fi
  { for p in bf16 fp16; do
      grep -h "^$p" "$R/accuracy-$p.log" 2>/dev/null || echo "$p accuracy: not measured (see accuracy-$p-run.log)"
    done
    echo; cat "$R/gemm-api.txt" 2>/dev/null || echo "cuBLASLt vs cuBLAS: not measured"
    echo; grep -h "^UniRepLKNet-T" "$R/unireplknet.log" 2>/dev/null
    echo; cat "$R/precision-peers.md" 2>/dev/null || echo "precision peers: no table (see precision-peers.log)"
    echo; cat "$R/steps.txt"; } >"$R/summary.txt"
}
