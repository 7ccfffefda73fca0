#!/usr/bin/python3
"""Fixtures for tests/Runtime.Tests/OptimTests.cs: torch.optim.AdamW / SGD trajectories, the SPEC 6 LR schedule and
torch's label-smoothed cross-entropy.  Run with Debian's /usr/bin/python3 (torch 1.13, numpy):

    /usr/bin/python3 tools/gen_optim_fixtures.py   # writes tests/Runtime.Tests/Fixtures/optim.json

Every float32 value is stored with 9 significant digits, which round-trips float32 exactly; the tensors torch sees are
built from those same float32 values.
"""
import json, math, os
import numpy as np
import torch

rng = np.random.default_rng(20251201)
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "Runtime.Tests", "Fixtures", "optim.json")

def f32(a):
    return np.asarray(a, dtype=np.float32)

def enc(a):  # float32 array -> flat list of numbers that round-trip float32
    return [float(f"{x:.9g}") for x in np.asarray(a, dtype=np.float32).ravel()]

# Parameters of different ranks and names: a 4-D conv weight, its .bias, a 1-D norm weight, a 4-D GRN gamma (decays,
# SPEC 6), a 2-D head weight.
SHAPES = {
    "conv.weight": (2, 1, 2, 2),
    "conv.bias": (2,),
    "norm.weight": (3,),
    "grn.gamma": (1, 1, 1, 3),
    "head.weight": (2, 3),
}
STEPS = 5
init = {n: f32(rng.standard_normal(s)) for n, s in SHAPES.items()}
grads = [{n: f32(rng.standard_normal(s)) for n, s in SHAPES.items()} for _ in range(STEPS)]
# A changing lr per step (as the schedule sets it), to check that lr is read at every step.
adamw_lrs = [4e-3, 3e-3, 2e-3, 1e-3, 5e-4]
sgd_lrs = [0.1, 0.08, 0.06, 0.04, 0.02]

def no_decay(name, shape):  # ConvNeXt optim_factory / SPEC 6
    return len(shape) == 1 or name.endswith(".bias")

def run(make_opt, lrs, state_names):
    params = {n: torch.nn.Parameter(torch.from_numpy(init[n].copy())) for n in SHAPES}
    decay = [params[n] for n in SHAPES if not no_decay(n, SHAPES[n])]
    nodecay = [params[n] for n in SHAPES if no_decay(n, SHAPES[n])]
    opt = make_opt([{"params": decay}, {"params": nodecay, "weight_decay": 0.0}])
    traj = []
    for s in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = lrs[s]
        for n, p in params.items():
            p.grad = torch.from_numpy(grads[s][n].copy())
        opt.step()
        traj.append({n: enc(p.detach().numpy()) for n, p in params.items()})
    state = {n: {k: enc(opt.state[p][k].numpy()) for k in state_names} for n, p in params.items()}
    return traj, state

adamw_cfg = dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
adamw_traj, adamw_state = run(lambda groups: torch.optim.AdamW(groups, lr=adamw_lrs[0], foreach=False, **adamw_cfg),
                              adamw_lrs, ["exp_avg", "exp_avg_sq"])
sgd_cfg = dict(momentum=0.9, weight_decay=0.05)
sgd_traj, sgd_state = run(lambda groups: torch.optim.SGD(groups, lr=sgd_lrs[0], foreach=False, **sgd_cfg),
                          sgd_lrs, ["momentum_buffer"])

# LR schedule: the original's cosine_scheduler (utils.py) built from SPEC 6's formulas with numpy.
def schedule(base, final, warmup, total):
    warm = np.linspace(0, base, warmup)
    iters = np.arange(total - warmup)
    cos = np.array([final + 0.5 * (base - final) * (1 + math.cos(math.pi * i / len(iters))) for i in iters])
    return np.concatenate((warm, cos))

small = schedule(4e-3, 1e-6, 5, 20)
recipe = schedule(4e-3, 1e-6, 5 * 312, 300 * 312)
recipe_steps = [0, 1, 2, 780, 1558, 1559, 1560, 1561, 46020, 93598, 93599]

# Label-smoothed cross-entropy in float64 with autograd (torch.nn.CrossEntropyLoss(label_smoothing=eps)).
N, K, EPS = 4, 5, 0.1
logits = f32(rng.standard_normal((N, K)) * 3)
logits[2] *= 40  # a row with large logits: needs log-sum-exp
labels = rng.integers(0, K, size=N)
x = torch.tensor(logits.astype(np.float64), requires_grad=True)
loss = torch.nn.CrossEntropyLoss(label_smoothing=EPS)(x, torch.from_numpy(labels))
loss.backward()

fixture = {
    "shapes": {n: list(s) for n, s in SHAPES.items()},
    "init": {n: enc(a) for n, a in init.items()},
    "grads": [{n: enc(a) for n, a in g.items()} for g in grads],
    "adamw": {"lrs": adamw_lrs, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.05,
              "params": adamw_traj, "state": adamw_state},
    "sgd": {"lrs": sgd_lrs, "momentum": 0.9, "weight_decay": 0.05, "params": sgd_traj, "state": sgd_state},
    "schedule": {"base": 4e-3, "min": 1e-6, "warmup": 5, "total": 20, "values": [repr(float(v)) for v in small],
                 "recipe_steps": recipe_steps, "recipe_values": [repr(float(recipe[i])) for i in recipe_steps]},
    "ce": {"n": N, "k": K, "smoothing": EPS, "logits": enc(logits), "labels": [int(l) for l in labels],
           "loss": repr(loss.item()), "grad": [repr(float(v)) for v in x.grad.numpy().ravel()]},
}
with open(OUT, "w") as f:
    json.dump(fixture, f, separators=(",", ":"))
    f.write("\n")
print(OUT, os.path.getsize(OUT), "bytes")
