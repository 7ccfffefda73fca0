#!/usr/bin/python3
"""Generate golden float64 fixtures for the ShiftWise reference executor.

Writes tests/IR.Tests/Fixtures/reference_ops.json: one case per op configuration
(conv2d, shift_add, batchnorm, layernorm, linear, activations, grn, mean, add/mul
broadcasting, channel_select, concat, permute, reshape, softmax, cross_entropy),
each with its inputs and expected outputs as flat row-major lists.

All tensors are torch.float64 (integer labels are int64). The RNG is seeded once
with torch.manual_seed(0) and every draw happens in the fixed order of the cases
below, so the output is reproducible. ShiftAdd is computed with a literal
per-element scatter loop following SPEC-shiftwise.md section 1.5 ("Scatter
semantics, as written") and is cross-checked against the gather formula.

Rerun from the repository root with:

    python3 tools/gen_reference_fixtures.py

(python3 must be the interpreter that has torch, e.g. Debian's /usr/bin/python3.)
"""
import json
import math
import os

import torch
import torch.nn.functional as F

torch.manual_seed(0)
DT = torch.float64
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                   "tests", "IR.Tests", "Fixtures", "reference_ops.json")
cases = []


def randn(*shape):
    return torch.randn(*shape, dtype=DT)


def enc(t):
    dtype = "i64" if t.dtype == torch.int64 else "f64"
    conv = int if dtype == "i64" else float
    return {"shape": list(t.shape), "dtype": dtype,
            "data": [conv(v) for v in t.reshape(-1).tolist()]}


def add(name, op, attrs, inputs, outputs):
    cases.append({"name": name, "op": op, "attrs": attrs,
                  "inputs": [enc(t) for t in inputs],
                  "outputs": [enc(t) for t in outputs]})


def close(a, b, tol=1e-12):
    assert torch.allclose(a, b, rtol=tol, atol=tol), (a - b).abs().max()


# ---------------------------------------------------------------- conv2d
def conv_case(name, xs, ws, bias, stride, padding, dilation, groups):
    x, w = randn(*xs), randn(*ws)
    b = randn(ws[0]) if bias else None
    y = F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    attrs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    add(name, "conv2d", attrs, [x, w] + ([b] if bias else []), [y])


conv_case("conv2d_basic", (2, 3, 6, 7), (4, 3, 3, 3), True, [1, 1], [1, 1], [1, 1], 1)
conv_case("conv2d_strided_grouped", (1, 4, 9, 8), (6, 2, 3, 3), False, [2, 1], [1, 2], [1, 2], 2)
conv_case("conv2d_depthwise_full", (1, 2, 5, 5), (6, 1, 3, 3), False, [1, 1], [2, 2], [1, 1], 2)


# ---------------------------------------------------------------- shift_add
def shift_geometry(big, small):
    n = math.ceil(big / small)
    p = small - 1
    e = p - small // 2
    rho = [big // 2 - m * small - p for m in range(n)]
    return n, e, rho


def tables_from_perms(perm_h, perm_v, picks, n, rho):
    """perm_*[g][o] is a list of length n; picks[g][o] in [0, n). SPEC 1.4."""
    G, R = len(perm_h), len(perm_h[0])
    pad_hv = [[0] * (2 * G) for _ in range(R * n)]
    for g in range(G):
        for o in range(R):
            for m in range(n):
                pad_hv[o * n + perm_h[g][o][m]][g] = rho[m]
                pad_hv[o * n + perm_v[g][o][m]][G + g] = rho[m]
    idx_identit = [[o * n + picks[g][o] for g in range(G)] for o in range(R)]
    return pad_hv, idx_identit


def shift_add_scatter(X, pad_hv, idx_identit, n, e, H, W):
    """Literal emulation of addshift_kernel_vmp.cu (SPEC 1.5, scatter as written)."""
    N, Rn, Hin, Win = X.shape
    R, G = len(idx_identit), len(idx_identit[0])
    Yh, Yv, Yi = (torch.zeros(N, R, H, W, dtype=DT) for _ in range(3))
    Xl = X.tolist()
    for b in range(N):
        for t in range(Rn):
            o = t // n  # idx_out[t]
            for i in range(Hin):
                for j in range(Win):
                    v = Xl[b][t][i][j]
                    for g in range(G):
                        sh, sv = pad_hv[t][g], pad_hv[t][G + g]
                        if 0 <= i - e < H and 0 <= j + sh < W:
                            Yh[b, o, i - e, j + sh] += v
                        if 0 <= i + sv < H and 0 <= j - e < W:
                            Yv[b, o, i + sv, j - e] += v
                        if t == idx_identit[o][g] and 0 <= i - e < H and 0 <= j - e < W:
                            Yi[b, o, i - e, j - e] += v
    return Yh, Yv, Yi


def shift_add_gather(X, pad_hv, idx_identit, n, e, H, W):
    """Independent check: the gather formula of SPEC 1.5."""
    N, Rn, Hin, Win = X.shape
    R, G = len(idx_identit), len(idx_identit[0])
    Yh, Yv, Yi = (torch.zeros(N, R, H, W, dtype=DT) for _ in range(3))
    for o in range(R):
        for g in range(G):
            Yi[:, o] += X[:, idx_identit[o][g], e:e + H, e:e + W]
            for j in range(n):
                t = o * n + j
                for y in range(H):
                    for x in range(W):
                        xs, ys = x - pad_hv[t][g], y - pad_hv[t][G + g]
                        if 0 <= xs < Win:
                            Yh[:, o, y, x] += X[:, t, y + e, xs]
                        if 0 <= ys < Hin:
                            Yv[:, o, y, x] += X[:, t, ys, x + e]
    return Yh, Yv, Yi


def shift_case(name, big, small, G, R, N, H, W, tables=None):
    n, e, rho = shift_geometry(big, small)
    if tables is None:  # random valid tables, drawn in the SPEC 1.4 order
        perm_h = [[torch.randperm(n).tolist() for _ in range(R)] for _ in range(G)]
        perm_v = [[torch.randperm(n).tolist() for _ in range(R)] for _ in range(G)]
        picks = [torch.randint(0, n, (R,)).tolist() for _ in range(G)]
        tables = tables_from_perms(perm_h, perm_v, picks, n, rho)
    pad_hv, idx_identit = tables
    X = randn(N, R * n, H + 2 * e, W + 2 * e)
    ys = shift_add_scatter(X, pad_hv, idx_identit, n, e, H, W)
    for a, b in zip(ys, shift_add_gather(X, pad_hv, idx_identit, n, e, H, W)):
        close(a, b)
    attrs = {"big": big, "small": small, "nrep": G, "pad_hv": pad_hv, "idx_identit": idx_identit}
    add(name, "shift_add", attrs, [X], list(ys))


# SPEC 1.8 worked example: tables exactly as printed, and rebuilt from the printed draws.
EX_PAD_HV = [[-5, -2, -5, 1], [1, 1, -2, -5], [-2, -5, 1, -2],
             [1, 1, -2, -5], [-2, -5, -5, 1], [-5, -2, 1, -2]]
EX_IDX = [[0, 1], [3, 4]]
_n, _e, _rho = shift_geometry(7, 3)
assert (_n, _e, _rho) == (3, 1, [1, -2, -5])
assert tables_from_perms([[[1, 2, 0], [0, 1, 2]], [[1, 0, 2], [0, 2, 1]]],
                         [[[2, 1, 0], [2, 0, 1]], [[0, 2, 1], [1, 2, 0]]],
                         [[0, 0], [1, 1]], _n, _rho) == (EX_PAD_HV, EX_IDX)
assert shift_geometry(5, 3) == (2, 1, [0, -3])
assert shift_geometry(11, 5) == (3, 2, [1, -4, -9])

shift_case("shift_add_example", 7, 3, G=2, R=2, N=2, H=5, W=6, tables=(EX_PAD_HV, EX_IDX))
shift_case("shift_add_offcentre", 5, 3, G=3, R=3, N=2, H=4, W=3)
shift_case("shift_add_k5", 11, 5, G=2, R=2, N=1, H=6, W=7)


# ---------------------------------------------------------------- batchnorm
def bn_inputs():
    x, w, b, rm = randn(2, 3, 4, 5), randn(3), randn(3), randn(3)
    rv = torch.empty(3, dtype=DT).uniform_(0.5, 2.0)
    return x, w, b, rm, rv


EPS, MOM = 1e-5, 0.1
c = (None, slice(None), None, None)  # broadcast a (C,) vector over N, H, W

x, w, b, rm, rv = bn_inputs()
y = (x - rm[c]) / torch.sqrt(rv[c] + EPS) * w[c] + b[c]
close(y, F.batch_norm(x, rm.clone(), rv.clone(), w, b, training=False, eps=EPS))
add("batchnorm_eval", "batchnorm", {"mode": "eval", "eps": EPS, "momentum": MOM},
    [x, w, b, rm, rv], [y])

x, w, b, rm, rv = bn_inputs()
mu = x.mean(dim=(0, 2, 3))
var_b = ((x - mu[c]) ** 2).mean(dim=(0, 2, 3))
cnt = x.numel() // x.shape[1]
y = (x - mu[c]) / torch.sqrt(var_b[c] + EPS) * w[c] + b[c]
new_rm = (1 - MOM) * rm + MOM * mu
new_rv = (1 - MOM) * rv + MOM * var_b * cnt / (cnt - 1)
trm, trv = rm.clone(), rv.clone()
close(y, F.batch_norm(x, trm, trv, w, b, training=True, momentum=MOM, eps=EPS))
close(new_rm, trm)
close(new_rv, trv)
add("batchnorm_train", "batchnorm", {"mode": "train", "eps": EPS, "momentum": MOM},
    [x, w, b, rm, rv], [y, new_rm, new_rv])

# ---------------------------------------------------------------- layernorm
x, w, b = randn(2, 4, 3, 5), randn(4), randn(4)
u = x.mean(1, keepdim=True)
s = ((x - u) ** 2).mean(1, keepdim=True)
y = w[:, None, None] * (x - u) / torch.sqrt(s + 1e-6) + b[:, None, None]
close(y, F.layer_norm(x.permute(0, 2, 3, 1), (4,), w, b, 1e-6).permute(0, 3, 1, 2))
add("layernorm_channels_first", "layernorm", {"layout": "channels_first", "eps": 1e-6},
    [x, w, b], [y])

x, w, b = randn(2, 3, 5, 4), randn(4), randn(4)
add("layernorm_channels_last", "layernorm", {"layout": "channels_last", "eps": 1e-6},
    [x, w, b], [F.layer_norm(x, (4,), w, b, 1e-6)])

# ---------------------------------------------------------------- linear
x, w, b = randn(2, 3, 5), randn(4, 5), randn(4)
add("linear_bias", "linear", {"bias": True}, [x, w, b], [x @ w.T + b])
x, w = randn(3, 6), randn(2, 6)
add("linear_nobias", "linear", {"bias": False}, [x, w], [x @ w.T])

# ---------------------------------------------------------------- activations
x = randn(2, 3, 4) * 2
add("gelu", "gelu", {"approximate": "none"}, [x], [F.gelu(x)])
x = randn(2, 3, 4)
add("relu", "relu", {}, [x], [torch.relu(x)])
x = randn(2, 3, 4) * 3
add("sigmoid", "sigmoid", {}, [x], [torch.sigmoid(x)])


# ---------------------------------------------------------------- grn (NHWC)
def grn(x, gamma, beta):
    Gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
    Nx = Gx / (Gx.mean(dim=-1, keepdim=True) + 1e-6)
    return gamma * (x * Nx) + beta + x


x, gamma, beta = randn(2, 3, 4, 5), randn(1, 1, 1, 5), randn(1, 1, 1, 5)
add("grn", "grn", {"eps": 1e-6, "has_beta": True}, [x, gamma, beta], [grn(x, gamma, beta)])
x, gamma = randn(1, 2, 3, 4), randn(1, 1, 1, 4)
add("grn_nobeta", "grn", {"eps": 1e-6, "has_beta": False}, [x, gamma], [grn(x, gamma, 0.0)])

# ---------------------------------------------------------------- reductions / elementwise
x = randn(2, 3, 4, 5)
add("mean_keepdim", "mean", {"axes": [2, 3], "keepdim": True}, [x], [x.mean(dim=(2, 3), keepdim=True)])
x = randn(2, 3, 4, 5)
add("mean_nokeep", "mean", {"axes": [2, 3], "keepdim": False}, [x], [x.mean(dim=(2, 3))])
a, bb = randn(2, 3, 4, 5), randn(1, 3, 1, 1)
add("add_broadcast", "add", {}, [a, bb], [a + bb])
a, bb = randn(2, 3, 4, 5), randn(2, 3, 1, 1)
add("mul_broadcast", "mul", {}, [a, bb], [a * bb])

# ---------------------------------------------------------------- shape ops
x = randn(2, 5, 3, 3)
idx = [4, 0, 2]
add("channel_select", "channel_select", {"axis": 1, "indices": idx}, [x],
    [torch.index_select(x, 1, torch.tensor(idx))])
a, bb = randn(2, 2, 3), randn(2, 3, 3)
add("concat", "concat", {"axis": 1}, [a, bb], [torch.cat([a, bb], dim=1)])
x = randn(2, 3, 4, 5)
add("permute", "permute", {"perm": [0, 2, 3, 1]}, [x], [x.permute(0, 2, 3, 1).contiguous()])
x = randn(2, 3, 4)
add("reshape", "reshape", {"shape": [6, 4]}, [x], [x.reshape(6, 4)])

# ---------------------------------------------------------------- softmax / loss
x = randn(3, 5)
add("softmax", "softmax", {"axis": -1}, [x], [torch.softmax(x, dim=-1)])
for name, ls in (("cross_entropy", 0.0), ("cross_entropy_smooth", 0.1)):
    logits, labels = randn(4, 5), torch.randint(0, 5, (4,), dtype=torch.int64)
    loss = F.cross_entropy(logits, labels, label_smoothing=ls)
    logp = torch.log_softmax(logits, dim=-1)  # explicit formula check
    ref = (-(1 - ls) * logp.gather(1, labels[:, None])[:, 0] - ls * logp.mean(dim=1)).mean()
    close(loss, ref)
    add(name, "cross_entropy", {"label_smoothing": ls, "reduction": "mean"},
        [logits, labels], [loss])

# ---------------------------------------------------------------- write
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump({"generator": "tools/gen_reference_fixtures.py, torch %s, float64" % torch.__version__,
               "cases": cases}, f, separators=(",", ":"))
    f.write("\n")
print("wrote %d cases to %s (%d bytes)" % (len(cases), os.path.normpath(OUT), os.path.getsize(OUT)))
