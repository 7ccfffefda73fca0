#!/usr/bin/python3
"""Writes tests/Cli.Tests/Fixtures/grad/: a small training-mode ShiftWise_v2, one batch, and its PyTorch autograd
gradients, for the test that checks `swc grad` against PyTorch.

Model (tools/sw_torch.py), as swc options:
    sw-v2 --in-chans 3 --num-classes 10 --depths 1,1,1,1 --dims 16,24,32,48 --kernel-size 11,9,7,5,3
          --image-size 48 --batch 4
i.e. ghost_ratio 0.23, N_path 2, N_rep 4, SW BNs on, layer scale present, drop path 0. Rep channels per stage
R = 12, 18, 24, 36 (n = 4, 3, 3, 2 sub-kernels); input 4 x 3 x 48 x 48, so the stages run at 12, 6, 3, 2 pixels.

Weights (numpy.random.default_rng(0), drawn module by module in named_modules() order after construction):
  * Conv2d / Linear weights ~ N(0, 1/fan_in), fan_in = in_channels/groups * kh * kw; for the SW small convs fan_in
    counts every term summed into one shift-add output, k*k * n * N_rep * N_path (as gen_sw_v2_golden.py does;
    a train-mode BN follows them, so this scale only sets the size of their gradients, not the forward values).
  * biases ~ N(0, 0.1^2); BatchNorm and LayerNorm weights U(0.5, 1.5), biases N(0, 0.1^2); BN running_mean
    N(0, 0.1^2), running_var U(0.5, 1.5); layer-scale gamma U(0.5, 1.5); GRN gamma, beta ~ N(0, 0.5^2).
  * In every large_kernel.LoRAs.q.weight (R*n, 1, k, k), round(0.3 * R*n) whole k x k sub-kernels (output
    channels) are set to exactly 0, chosen independently per path (so a few are zero in both paths: the merged
    kernel prune-zero-subkernels would drop). A layer's draw is repeated while some rep channel would feed an
    identically zero map to one of its SW BatchNorms (see draw_zeroed).
  * x ~ N(0, 1) as float32; labels uniform in [0, 10).
  * Finally each se.down.bias is set from the data so that every SE hidden ReLU is on for 2 of the 4 samples
    (centre_se_biases): no dead units, every SE weight gets a gradient.

Gradients: the float32 weights are loaded into the model, which is converted to float64 with the input
(model.double()), put in train mode (BatchNorm uses batch statistics) and run once;
loss = F.cross_entropy(logits, labels) (mean, no label smoothing); backward. The same is repeated in float32 to
measure how close float32 can get (printed, not saved).

Files:
  weights.safetensors  float32, the state_dict (num_batches_tracked omitted) before the step
  x.npy                float32 (4, 3, 48, 48)
  labels.npy           int64 (4,)
  grads.safetensors    float64, d loss / d p for every parameter (state_dict key), plus `loss` (shape ())
  running.safetensors  float64, every BN running_mean / running_var after the one train-mode forward
                       (momentum 0.1, unbiased batch variance, torch semantics)

Deterministic (one CPU thread, numpy PCG64 draws): rerunning writes identical bytes.
Run from the repository root: /usr/bin/python3 tools/gen_grad_fixtures.py
"""
import copy
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sw_torch  # noqa: E402

MODEL = dict(in_chans=3, num_classes=10, depths=[1, 1, 1, 1], dims=[16, 24, 32, 48], kernel_size=[11, 9, 7, 5, 3],
             ghost_ratio=0.23, N_path=2, N_rep=4, bn=True, layer_scale_init_value=1e-6, drop_path_rate=0.0)
BATCH, IMAGE = 4, 48
SPARSITY = 0.3
SEED = 0
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "Cli.Tests", "Fixtures", "grad")


def build():
    return sw_torch.ShiftWiseV2(**MODEL)


def stage_planes():
    """Side of the square feature map each stage runs at (3x3 stride-2 pad-1 convs: 48 -> 24 -> 12, 6, 3, 2)."""
    side, planes = IMAGE, []
    for i in range(4):
        for _ in range(2 if i == 0 else 1):
            side = (side - 1) // 2 + 1
        planes.append(side)
    return planes


def draw_zeroed(sw, prefix, side, rng):
    """Zeroed output channels (sub-kernels) of each path's LoRAs weight: round(SPARSITY * R*n) per path, drawn
    independently per path, so some sub-kernels are zero in every path (their merged kernel is zero, as
    prune-zero-subkernels sees it). Redrawn (same rng, so still deterministic) while some rep channel would feed
    an identically zero map to one of its three SW BatchNorms, i.e. while every sub-kernel it sums for the
    horizontal, vertical or identity path is zero in all paths or shifted wholly out of the side x side map:
    train-mode BN of a constant map divides by sqrt(eps) and such a channel's gradient swamps the rest."""
    T, R, n, G, e = sw.reps * sw.nk, sw.reps, sw.nk, sw.n_rep, sw.extra_pad
    pad_hv, ident = sw.pad_hv.numpy(), sw.idx_identit.numpy()

    def in_frame(s):  # some output column x in [0, side) reads X column x - s in [0, side + 2e)
        return -(side + 2 * e - 1) <= s <= side - 1

    for attempt in range(1000):
        offs = [np.sort(rng.permutation(T)[:round(SPARSITY * T)]) for _ in range(len(sw.LoRAs))]
        dead = set.intersection(*(set(o.tolist()) for o in offs))
        ok = True
        for o in range(R):
            live = [t for t in range(o * n, o * n + n) if t not in dead]
            h = any(in_frame(pad_hv[t, g]) for t in live for g in range(G))
            v = any(in_frame(pad_hv[t, G + g]) for t in live for g in range(G))
            i = any(int(ident[o, g]) not in dead for g in range(G))
            ok = ok and h and v and i
        if ok:
            return {f"{prefix}.{q}.weight": off.tolist() for q, off in enumerate(offs)}
    raise RuntimeError(f"{prefix}: no non-degenerate zeroing found")


@torch.no_grad()
def randomise(model, rng):
    """Non-degenerate random weights (module docstring). Returns {LoRAs weight key: zeroed output channels}."""
    sw_fan_in = {}
    for name, m in model.named_modules():
        if isinstance(m, sw_torch.ShiftWiseConv):
            for q in range(len(m.LoRAs)):
                sw_fan_in[f"{name}.LoRAs.{q}"] = m.small_kernel ** 2 * m.nk * m.n_rep * len(m.LoRAs)

    def fill(t, arr):
        t.copy_(torch.from_numpy(np.asarray(arr, dtype=np.float32)))

    planes = {str(i): p for i, p in enumerate(stage_planes())}
    zeroed = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = sw_fan_in.get(name, m.weight[0].numel())
            fill(m.weight, rng.normal(0, fan_in ** -0.5, m.weight.shape))
            if m.bias is not None:
                fill(m.bias, rng.normal(0, 0.1, m.bias.shape))
            if name.endswith(".LoRAs.0"):  # zero whole sub-kernels of both paths (weights of path 1 drawn later)
                sw = model.get_submodule(name[:-len(".LoRAs.0")])
                zeroed.update(draw_zeroed(sw, name[:-2], planes[name.split(".")[1]], rng))
            if name in sw_fan_in:
                off = zeroed[name + ".weight"]
                m.weight[torch.tensor(off, dtype=torch.long)] = 0
        elif isinstance(m, nn.BatchNorm2d):
            fill(m.weight, rng.uniform(0.5, 1.5, m.weight.shape))
            fill(m.bias, rng.normal(0, 0.1, m.bias.shape))
            fill(m.running_mean, rng.normal(0, 0.1, m.running_mean.shape))
            fill(m.running_var, rng.uniform(0.5, 1.5, m.running_var.shape))
        elif isinstance(m, (nn.LayerNorm, sw_torch.LayerNormChannelsFirst)):
            fill(m.weight, rng.uniform(0.5, 1.5, m.weight.shape))
            fill(m.bias, rng.normal(0, 0.1, m.bias.shape))
        elif isinstance(m, sw_torch.GRN):
            fill(m.gamma, rng.normal(0, 0.5, m.gamma.shape))
            fill(m.beta, rng.normal(0, 0.5, m.beta.shape))
        elif isinstance(m, sw_torch.Block):
            fill(m.gamma, rng.uniform(0.5, 1.5, m.gamma.shape))
    return zeroed


def se_preactivations(model, x):
    """{stage: (B, hidden) float64 input of each SE's ReLU, bias excluded}, from a train-mode float64 forward of a
    copy of the model."""
    m = copy.deepcopy(model).double().train()
    pre = {}
    for i, stage in enumerate(m.stages):
        down = stage[0].se.down
        down.register_forward_hook(
            lambda mod, inp, out, i=i: pre.__setitem__(i, (out - mod.bias[:, None, None]).detach().flatten(1)))
    with torch.no_grad():
        m(torch.from_numpy(x).double())
    return pre


@torch.no_grad()
def centre_se_biases(model, x):
    """Sets each SE hidden unit's bias (se.down.bias) so that its ReLU is on for half the batch and off for the
    other half (bias = minus the midpoint of the two middle pre-activations), stage by stage in forward order.
    With biases ~ N(0, 0.1) instead, several SE hidden units were off for the whole batch (dead ReLU), leaving
    exact-zero rows of se.down / columns of se.up gradients."""
    for i, stage in enumerate(model.stages):
        pre = np.sort(se_preactivations(model, x)[i].numpy(), axis=0)
        mid = BATCH // 2
        stage[0].se.down.bias.copy_(torch.from_numpy(-(pre[mid - 1] + pre[mid]) / 2).float())


def train_step(state, x, labels, dtype):
    """Fresh model loaded with `state` in `dtype`, one train-mode forward + backward.
    Returns (loss, {param: grad}, {running key: value}, model)."""
    model = build().to(dtype)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v).to(dtype) for k, v in state.items()},
                                                strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    model.train()
    loss = F.cross_entropy(model(torch.from_numpy(x).to(dtype)), torch.from_numpy(labels))
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert all(p.grad is not None for p in model.parameters())
    running = {k: v.detach().clone() for k, v in model.state_dict().items()
               if k.endswith("running_mean") or k.endswith("running_var")}
    return loss.detach(), grads, running, model


def directional_check(state, x, labels, grads, rng):
    """Central difference of the float64 loss along one random direction vs <grad, d> (sanity of autograd)."""
    d = {n: torch.from_numpy(rng.standard_normal(g.shape)) for n, g in grads.items()}
    predicted = sum(float((grads[n] * d[n]).sum()) for n in grads)
    h, vals = 1e-5, []
    for sign in (1, -1):
        model = build().double()
        model.load_state_dict({k: torch.from_numpy(v).double() for k, v in state.items()}, strict=False)
        model.train()
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.add_(sign * h * d[n])
            vals.append(float(F.cross_entropy(model(torch.from_numpy(x).double()), torch.from_numpy(labels))))
    return (vals[0] - vals[1]) / (2 * h), predicted


def save_npy(path, arr):
    with open(path + ".tmp", "wb") as f:
        np.save(f, arr)
    os.replace(path + ".tmp", path)


def main():
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    model = build()
    for i, stage in enumerate(model.stages):
        sw = stage[0].large_kernel
        assert sw.reps >= 2, (i, sw.reps)
    zeroed = randomise(model, rng)
    x = rng.standard_normal((BATCH, MODEL["in_chans"], IMAGE, IMAGE)).astype(np.float32)
    labels = rng.integers(0, MODEL["num_classes"], BATCH).astype(np.int64)
    centre_se_biases(model, x)
    pre = se_preactivations(model, x)
    state = {k: v.detach().float().numpy().copy() for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}

    loss64, g64, run64, m64 = train_step(state, x, labels, torch.float64)
    loss32, g32, _, _ = train_step(state, x, labels, torch.float32)

    os.makedirs(OUT, exist_ok=True)
    sw_torch.write_safetensors(os.path.join(OUT, "weights.safetensors"), state)
    save_npy(os.path.join(OUT, "x.npy"), x)
    save_npy(os.path.join(OUT, "labels.npy"), labels)
    grads_out = {n: g.numpy() for n, g in g64.items()}
    grads_out["loss"] = np.array(loss64.item(), dtype=np.float64)
    sw_torch.write_safetensors(os.path.join(OUT, "grads.safetensors"), grads_out)
    sw_torch.write_safetensors(os.path.join(OUT, "running.safetensors"), {k: v.numpy() for k, v in run64.items()})

    # ---- report ---------------------------------------------------------------------------------------------
    print(f"loss float64 {loss64.item():.17g}   float32 {loss32.item():.9g}   "
          f"rel diff {abs(loss32.item() - loss64.item()) / abs(loss64.item()):.3g}")
    print("labels", labels.tolist())
    print("SW rep channels R per stage:", [s[0].large_kernel.reps for s in model.stages],
          " sub-kernels n:", [s[0].large_kernel.nk for s in model.stages])
    print("zeroed sub-kernels per LoRAs weight (of R*n):",
          {k: f"{len(v)}/{model.get_parameter(k).shape[0]}" for k, v in zeroed.items()})
    typical = float(np.median([float(g.norm()) for g in g64.values()]))
    print(f"\n{'parameter':45s} {'shape':16s} {'|g|':>10s} {'|g|/|w|':>10s} {'f32 relerr':>10s} {'exact 0s':>8s}")
    rel_errs, zero_like = {}, []
    for n, g in g64.items():
        w = m64.get_parameter(n).detach()
        gn = float(g.norm())
        err = float((g32[n].double() - g).norm()) / gn if gn > 0 else float("inf")
        analytic_zero = gn < 1e-10 * typical
        if analytic_zero:
            zero_like.append(n)
        else:
            rel_errs[n] = err
        exact0 = int((g == 0).sum())
        print(f"{n:45s} {str(tuple(g.shape)):16s} {gn:10.3e} {gn / float(w.norm()):10.3e} "
              f"{'(~0 grad)' if analytic_zero else f'{err:.3e}':>10s} {exact0:8d}")
    worst = max(rel_errs, key=rel_errs.get)
    print(f"\nfloat32 vs float64 relative L2 error: max {rel_errs[worst]:.3e} ({worst}), "
          f"median {np.median(list(rel_errs.values())):.3e}")
    smallest = min(rel_errs, key=lambda n: float(g64[n].norm()))
    print(f"smallest gradient norm (excluding ~0 ones): {float(g64[smallest].norm()):.3e} ({smallest})")
    print(f"gradients analytically ~0 (|g| < 1e-10 * median |g| = {typical:.3e}):")
    for n in zero_like:
        print(f"  {n}: |g64| = {float(g64[n].norm()):.3e}, |g32| = {float(g32[n].norm()):.3e}")

    # gradients at the zeroed sub-kernels: torch's dense autograd gives them a (nonzero) value
    print("\ngradient on zeroed vs kept sub-kernels of the LoRAs weights (dense autograd):")
    for k, off in zeroed.items():
        g = g64[k]
        mask = torch.zeros(g.shape[0], dtype=torch.bool)
        mask[off] = True
        print(f"  {k}: |g| zeroed {float(g[mask].norm()):.3e}  kept {float(g[~mask].norm()):.3e}")

    # BN scale invariance (a consequence of train-mode BN after the LoRAs convs): sum_q <g_q, w_q> ~ 0 per layer
    print("\nsum_q <g_q, w_q> / (|g| |w|) per SW layer (scale invariance, ~0 up to BN eps):")
    for i, stage in enumerate(m64.stages):
        sw = stage[0].large_kernel
        keys = [f"stages.{i}.0.large_kernel.LoRAs.{q}.weight" for q in range(len(sw.LoRAs))]
        dot = sum(float((g64[k] * m64.get_parameter(k)).sum()) for k in keys)
        gn = sum(float(g64[k].norm()) ** 2 for k in keys) ** 0.5
        wn = sum(float(m64.get_parameter(k).norm()) ** 2 for k in keys) ** 0.5
        print(f"  stage {i}: {dot / (gn * wn):+.3e}")

    print("\nSE ReLU inputs: units on per sample count / min |pre-activation| (margin from the kink):")
    for i, p in pre.items():
        b = model.stages[i][0].se.down.bias.detach().double()
        z = p + b
        print(f"  stage {i}: on-counts per unit {(z > 0).sum(0).tolist()}, min |z| {float(z.abs().min()):.3e}")

    fd, pred = directional_check(state, x, labels, g64, np.random.default_rng(1))
    print(f"\ndirectional derivative (float64, central difference h=1e-5): {fd:.10e} vs <g,d> {pred:.10e}, "
          f"rel {abs(fd - pred) / abs(pred):.2e}")
    assert abs(fd - pred) <= 1e-5 * abs(pred)

    # reload check: the written files reproduce the gradients bit for bit
    w_back = sw_torch.read_safetensors(os.path.join(OUT, "weights.safetensors"))
    loss_b, g_b, run_b, _ = train_step({k: np.array(v) for k, v in w_back.items()},
                                       np.load(os.path.join(OUT, "x.npy")), np.load(os.path.join(OUT, "labels.npy")),
                                       torch.float64)
    g_file = sw_torch.read_safetensors(os.path.join(OUT, "grads.safetensors"))
    assert float(g_file["loss"]) == loss_b.item() and g_file["loss"].shape == ()
    assert all(np.array_equal(g_file[n], g_b[n].numpy()) for n in g_b) and len(g_file) == len(g_b) + 1
    r_file = sw_torch.read_safetensors(os.path.join(OUT, "running.safetensors"))
    assert all(np.array_equal(r_file[k], run_b[k].numpy()) for k in run_b) and len(r_file) == len(run_b)
    print("reload from written files: loss, gradients and running stats identical")

    total = 0
    for name in sorted(os.listdir(OUT)):
        size = os.path.getsize(os.path.join(OUT, name))
        total += size
        print(f"  {name:22s} {size:9d} bytes")
    print(f"  total {total} bytes; parameters {sum(g.numel() for g in g64.values())}, tensors {len(g64)}")


if __name__ == "__main__":
    main()
