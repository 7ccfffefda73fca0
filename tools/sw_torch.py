#!/usr/bin/python3
"""Pure-PyTorch ShiftWise_v2 (no custom CUDA op), written from docs/SPEC-shiftwise.md sections 1 and 3.

The SW layer reproduces the original module exactly, including its reseeding: every SW layer calls
numpy.random.seed(123) to pick the ghost channels (SPEC 1.2) and torch.manual_seed(123) to draw its shift
tables (SPEC 1.4), so the tables come from the real torch RNG. The CUDA scatter kernel (SPEC 1.5) is replaced by
the equivalent vectorised gather (zero padding + torch.gather), so the layer runs on any device and dtype
(float64 included). Module attribute names give state_dict() keys identical to the original checkpoints
(SPEC 3.1), e.g. stages.0.0.large_kernel.LoRAs.0.weight; shift tables and channel splits are plain attributes,
not buffers, so they are not part of the state_dict, as in the original.

Self-check (scatter loop vs gather, SPEC 1.8 worked example, C=80 ghost list, sw_tiny_tables.json when it can be
found, collapse of SPEC 2.2):   /usr/bin/python3 tools/sw_torch.py
"""
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------------------------------
# Tables (SPEC 1.2, 1.4)

def rep_count(channels, ghost_ratio):
    """R = 2 * floor(floor(C * (1 - gamma)) / 2), in Python floating point as the original computes it."""
    return int(channels * (1 - ghost_ratio)) // 2 * 2


def ghost_split(channels, ghost_ratio):
    """(rep, ghost): sorted channel lists. Reseeds numpy's global legacy RNG with 123, as the original does."""
    reps = rep_count(channels, ghost_ratio)
    np.random.seed(123)
    ghost = sorted(int(c) for c in np.random.choice(channels, channels - reps, replace=False))
    rep = sorted(set(range(channels)) - set(ghost))
    assert len(rep) == reps
    return rep, ghost


def real_pads(big, small):
    """(p, rho): small-conv padding p = k-1 and the block shifts rho_m = floor(B/2) - m*k - p, m < ceil(B/k)."""
    n = math.ceil(big / small)
    p = small - 1
    return p, [big // 2 - m * small - p for m in range(n)]


def shift_tables(big, small, reps, n_rep):
    """Shift tables of AddShift_mp_module(big, small, c_out=reps, c_in=reps*n, group_in=n_rep).

    Reseeds torch's global RNG with 123 (as the original does) and draws, in this order: randperm(n) for each
    (replica g, rep channel o) horizontally, then the same vertically, then for each g a vector of `reps`
    randint(0, n) draws. Returns a dict with
      perm_h, perm_v  [g][o] -> list: block m holds local sub-channel perm[m]
      picks           [g] -> list of reps local draws
      pad_hv          int64 array (reps*n, 2*n_rep): [:, g] horizontal shift, [:, n_rep+g] vertical shift
      idx_identit     int64 array (reps, n_rep): global sub-channel picked by the identity path
      idx_out         int64 array (reps*n,): t // n
      rho, n, p, e
    """
    n = math.ceil(big / small)
    p, rho = real_pads(big, small)
    e = p - small // 2
    torch.manual_seed(123)
    perm_h = [[torch.randperm(n).tolist() for _ in range(reps)] for _ in range(n_rep)]
    perm_v = [[torch.randperm(n).tolist() for _ in range(reps)] for _ in range(n_rep)]
    picks = [torch.randint(0, n, (reps,)).tolist() for _ in range(n_rep)]
    pad_hv = np.zeros((reps * n, 2 * n_rep), dtype=np.int64)
    idx_identit = np.zeros((reps, n_rep), dtype=np.int64)
    for g in range(n_rep):
        for o in range(reps):
            for m in range(n):  # the table stores the inverse map: sub-channel -> shift of its block
                pad_hv[o * n + perm_h[g][o][m], g] = rho[m]
                pad_hv[o * n + perm_v[g][o][m], n_rep + g] = rho[m]
            idx_identit[o, g] = picks[g][o] + o * n
    idx_out = np.arange(reps * n, dtype=np.int64) // n
    return dict(perm_h=perm_h, perm_v=perm_v, picks=picks, pad_hv=pad_hv, idx_identit=idx_identit,
                idx_out=idx_out, rho=rho, n=n, p=p, e=e)


# ----------------------------------------------------------------------------------------------------------------
# The shift-add (SPEC 1.5), as a gather

def shift_pads(shift_h, shift_v, e):
    """(left, right, top, bottom): the zero padding shift_add gives the shifted axes; constants of the tables.

    Computing them once on the host (ShiftWiseConv does, at construction) keeps shift_add free of the device
    synchronisation that reading a table's max/min from a GPU tensor costs on every call."""
    return (max(0, int(shift_h.max())), max(0, -int(shift_h.min()) - 2 * e),
            max(0, int(shift_v.max())), max(0, -int(shift_v.min()) - 2 * e))


def shift_add(X, shift_h, shift_v, idx_identit, height, width, e, pads=None):
    """Gather form of addshift_kernel_vmp.cu.

    X: (N, R*n, H+2e, W+2e), the summed small-conv output. shift_h, shift_v: (R*n, G) integer tensors
    (pad_hv[:, :G] and pad_hv[:, G:]). idx_identit: (R, G). Returns (Y_h, Y_v, Y_i), each (N, R, H, W):
      Y_h[b,o,y,x] = sum_{g,j} [0 <= x - s^h_{t,g} < W+2e] X[b, t, y+e, x - s^h_{t,g}]     (t = o*n + j)
      Y_v[b,o,y,x] = sum_{g,j} [0 <= y - s^v_{t,g} < H+2e] X[b, t, y - s^v_{t,g}, x+e]
      Y_i[b,o,y,x] = sum_g X[b, idx_identit[o,g], y+e, x+e]
    The clipping indicator is realised by zero padding the shifted axis before gathering; pads, when given, are
    shift_pads(shift_h, shift_v, e) (computed here from the tables otherwise).
    """
    N, T, Hp, Wp = X.shape
    R, G = idx_identit.shape
    n = T // R
    assert T == R * n and Hp == height + 2 * e and Wp == width + 2 * e
    dev = X.device
    left, right, top, bottom = pads if pads is not None else shift_pads(shift_h, shift_v, e)
    shift_h, shift_v, idx_identit = shift_h.to(dev), shift_v.to(dev), idx_identit.to(dev)

    # horizontal: rows y+e, columns x - s (gathered from a zero-padded row)
    rows = X[:, :, e:e + height, :]
    rows = F.pad(rows, (left, right))
    col = torch.arange(width, device=dev)[None, None, :] - shift_h[:, :, None] + left  # (T, G, W)
    col = col.reshape(1, T, 1, G * width).expand(N, T, height, G * width)
    y_h = torch.gather(rows, 3, col).view(N, R, n, height, G, width).sum(dim=(2, 4))

    # vertical: rows y - s (gathered from a zero-padded column), columns x+e
    cols = X[:, :, :, e:e + width]
    cols = F.pad(cols, (0, 0, top, bottom))
    row = torch.arange(height, device=dev)[None, None, :] - shift_v[:, :, None] + top  # (T, G, H)
    row = row.reshape(1, T, G * height, 1).expand(N, T, G * height, width)
    y_v = torch.gather(cols, 2, row).view(N, R, n, G, height, width).sum(dim=(2, 3))

    # identity: the picked sub-channel of every replica, cropped to the centre
    y_i = X[:, idx_identit.reshape(-1), e:e + height, e:e + width].view(N, R, G, height, width).sum(dim=2)
    return y_h, y_v, y_i


# ----------------------------------------------------------------------------------------------------------------
# Modules (SPEC 1.3, 1.6, 1.7, 3)

class ShiftWiseConv(nn.Module):
    """The SW layer (ShifthWiseConv2dImplicit): output = [BN_h(Y_h) + BN_v(Y_v) + BN_i(Y_i) + x_rep, x_ghost]."""

    def __init__(self, channels, big_kernel, small_kernel=3, ghost_ratio=0.23, n_path=2, n_rep=4, bn=True):
        super().__init__()
        if small_kernel % 2 != 1:
            raise ValueError("the SW op needs an odd small kernel (SPEC 8.6)")
        rep, ghost = ghost_split(channels, ghost_ratio)  # reseeds numpy
        self.channels, self.big_kernel, self.small_kernel = channels, big_kernel, small_kernel
        self.reps, self.n_rep = len(rep), n_rep
        self.nk = math.ceil(big_kernel / small_kernel)
        self.padding, self.real_pad = real_pads(big_kernel, small_kernel)
        self.extra_pad = self.padding - small_kernel // 2
        # plain attributes (not buffers): not checkpointed, regenerated at construction, as in the original
        self.rep = torch.tensor(rep, dtype=torch.long)
        self.ghost = torch.tensor(ghost, dtype=torch.long)
        R, T = self.reps, self.reps * self.nk
        self.LoRA = None  # set by merge_branches()
        self.LoRAs = nn.ModuleList(
            nn.Conv2d(R, T, small_kernel, stride=1, padding=self.padding, groups=R, bias=False)
            for _ in range(n_path))
        tables = shift_tables(big_kernel, small_kernel, R, n_rep)  # reseeds torch
        self.pad_hv = torch.from_numpy(tables["pad_hv"])
        self.idx_identit = torch.from_numpy(tables["idx_identit"])
        self.shift_pads = shift_pads(self.pad_hv[:, :n_rep], self.pad_hv[:, n_rep:], self.extra_pad)
        self.use_bn = bn
        if bn:
            self.bn_lora1 = nn.BatchNorm2d(R)
            self.bn_lora2 = nn.BatchNorm2d(R)
            self.bn_small = nn.BatchNorm2d(R)

    def small_conv(self, x_rep):
        if self.LoRA is not None:
            return self.LoRA(x_rep)
        out = 0
        for conv in self.LoRAs:
            out = out + conv(x_rep)
        return out

    def forward(self, x):
        _, _, height, width = x.shape
        x_rep = x.index_select(1, self.rep.to(x.device))
        x_ghost = x.index_select(1, self.ghost.to(x.device))
        G = self.n_rep
        y_h, y_v, y_i = shift_add(self.small_conv(x_rep), self.pad_hv[:, :G], self.pad_hv[:, G:],
                                  self.idx_identit, height, width, self.extra_pad, self.shift_pads)
        if self.use_bn:
            y_h, y_v, y_i = self.bn_lora1(y_h), self.bn_lora2(y_v), self.bn_small(y_i)
        return torch.cat([y_h + y_v + y_i + x_rep, x_ghost], dim=1)

    def tables_to(self, device):
        """Keep the channel splits and shift tables on `device` (they are plain attributes, which Module.to does
        not move), so that forward does no host-to-device copies. Returns self."""
        self.rep, self.ghost = self.rep.to(device), self.ghost.to(device)
        self.pad_hv, self.idx_identit = self.pad_hv.to(device), self.idx_identit.to(device)
        return self

    def merge_branches(self):
        """Replace the Q parallel convs by one conv with the summed weight (key large_kernel.LoRA.weight)."""
        if self.LoRA is not None:
            return
        first = self.LoRAs[0]
        merged = nn.Conv2d(first.in_channels, first.out_channels, first.kernel_size, stride=first.stride,
                           padding=first.padding, groups=first.groups, bias=False)
        merged = merged.to(device=first.weight.device, dtype=first.weight.dtype)
        with torch.no_grad():
            merged.weight.copy_(sum(conv.weight for conv in self.LoRAs))
        self.LoRA = merged
        del self.LoRAs


class LayerNormChannelsFirst(nn.Module):
    """LayerNorm over dim 1 of NCHW: biased variance, eps inside the sqrt."""

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ToNHWC(nn.Module):
    def forward(self, x):
        return x.permute(0, 2, 3, 1)


class ToNCHW(nn.Module):
    def forward(self, x):
        return x.permute(0, 3, 1, 2)


class GRN(nn.Module):
    """Global response normalisation on NHWC: (gamma * G/(mean_c G + 1e-6) + 1) * h + beta, G = ||h||_2 over H,W."""

    def __init__(self, channels):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, channels))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, channels))

    def forward(self, h):
        g = torch.norm(h, p=2, dim=(1, 2), keepdim=True)
        g = g / (g.mean(dim=-1, keepdim=True) + 1e-6)
        return (self.gamma * g + 1) * h + self.beta


class SE(nn.Module):
    """Squeeze-excitation: v * sigmoid(up(relu(down(avgpool(v)))))."""

    def __init__(self, channels, hidden):
        super().__init__()
        self.down = nn.Conv2d(channels, hidden, 1, bias=True)
        self.up = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, v):
        s = F.adaptive_avg_pool2d(v, 1)
        return v * torch.sigmoid(self.up(F.relu(self.down(s))))


class DropPath(nn.Module):
    """Per-sample stochastic depth (training only), divided by the keep probability."""

    def __init__(self, rate):
        super().__init__()
        self.rate = rate

    def forward(self, x):
        if not self.training or self.rate <= 0:
            return x
        keep = 1 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Block(nn.Module):
    """SW -> BN -> SE -> NHWC -> Linear C->4C -> GELU -> GRN -> Linear 4C->C -> NCHW -> BN -> gamma -> + input."""

    def __init__(self, dim, big_kernel, small_kernel=3, ghost_ratio=0.23, n_path=2, n_rep=4, bn=True,
                 layer_scale_init_value=1e-6, drop_path=0.0):
        super().__init__()
        self.large_kernel = ShiftWiseConv(dim, big_kernel, small_kernel, ghost_ratio, n_path, n_rep, bn)
        self.norm = nn.BatchNorm2d(dim)
        self.se = SE(dim, dim // 4)
        self.pwconv1 = nn.Sequential(ToNHWC(), nn.Linear(dim, 4 * dim))
        self.act = nn.Sequential(nn.GELU(), GRN(4 * dim))
        self.pwconv2 = nn.Sequential(nn.Linear(4 * dim, dim, bias=False), ToNCHW(), nn.BatchNorm2d(dim))
        if layer_scale_init_value > 0:
            self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim))
        else:
            self.gamma = None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, u):
        v = self.se(self.norm(self.large_kernel(u)))
        v = self.pwconv2(self.act(self.pwconv1(v)))
        if self.gamma is not None:
            v = self.gamma.view(1, -1, 1, 1) * v
        return u + self.drop_path(v)


class ShiftWiseV2(nn.Module):
    """ShiftWise_v2 classifier. kernel_size = [B_0, B_1, B_2, B_3, k] (per-stage big kernels, then the small one)."""

    def __init__(self, in_chans=3, num_classes=1000, depths=(3, 3, 18, 3), dims=(80, 160, 320, 640),
                 width_factor=1.0, kernel_size=(51, 49, 47, 13, 3), ghost_ratio=0.23, N_path=2, N_rep=4, bn=True,
                 layer_scale_init_value=1e-6, drop_path_rate=0.0, head_init_scale=1.0, stem_stride=4):
        super().__init__()
        if stem_stride not in (2, 4):
            raise ValueError("stem_stride must be 4 (two stride-2 stem convs) or 2 (second stem conv stride 1)")
        dims = [int(d * width_factor) for d in dims]
        assert len(depths) == 4 and len(dims) == 4 and len(kernel_size) == 5
        self.dims, self.depths, self.kernel_size = dims, list(depths), list(kernel_size)
        stem = nn.Sequential(
            nn.Conv2d(in_chans, dims[0] // 2, 3, stride=2, padding=1),
            LayerNormChannelsFirst(dims[0] // 2),
            nn.GELU(),
            nn.Conv2d(dims[0] // 2, dims[0], 3, stride=stem_stride // 2, padding=1),
            LayerNormChannelsFirst(dims[0]))
        self.downsample_layers = nn.ModuleList([stem] + [
            nn.Sequential(nn.Conv2d(dims[i - 1], dims[i], 3, stride=2, padding=1), LayerNormChannelsFirst(dims[i]))
            for i in range(1, 4)])
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        for i in range(4):
            first = sum(depths[:i])
            self.stages.append(nn.Sequential(*[
                Block(dims[i], kernel_size[i], kernel_size[-1], ghost_ratio, N_path, N_rep, bn,
                      layer_scale_init_value, rates[first + j])
                for j in range(depths[i])]))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)
        self.apply(self._init_weights)
        with torch.no_grad():
            self.head.weight.mul_(head_init_scale)
            self.head.bias.mul_(head_init_scale)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward_features(self, x):
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return self.norm(x.mean(dim=(-2, -1)))

    def forward(self, x):
        return self.head(self.forward_features(x))

    def reparameterize(self):
        """Merge the Q parallel small convs of every SW layer (state_dict then has large_kernel.LoRA.weight)."""
        for m in self.modules():
            if isinstance(m, ShiftWiseConv):
                m.merge_branches()


PRESETS = {
    "sw-tiny": dict(depths=[3, 3, 18, 3], dims=[80, 160, 320, 640]),
    "sw-small": dict(depths=[3, 3, 27, 3], dims=[96, 192, 384, 768]),
    "sw-base": dict(depths=[3, 3, 27, 3], dims=[128, 256, 512, 1024]),
    "sw-large": dict(depths=[3, 3, 27, 3], dims=[192, 384, 768, 1536]),
}


def build_from_options(opts):
    """ShiftWiseV2 from an options.json / model.json dict."""
    return ShiftWiseV2(in_chans=opts["in_chans"], num_classes=opts["num_classes"], depths=opts["depths"],
                       dims=opts["dims"], width_factor=opts.get("width_factor", 1.0),
                       kernel_size=opts["kernel_size"], ghost_ratio=opts["ghost_ratio"], N_path=opts["N_path"],
                       N_rep=opts["N_rep"], bn=opts["bn"],
                       layer_scale_init_value=opts.get("layer_scale_init_value", 1e-6),
                       stem_stride=opts.get("stem_stride", 4))


# ----------------------------------------------------------------------------------------------------------------
# safetensors (hand-written: 8-byte LE header length, JSON header sorted by name, space padded to 8, raw data)

_ST_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4"}


def write_safetensors(path, tensors):
    """tensors: {name: numpy array}, written in the array's dtype (cast beforehand). Atomic (temp + replace)."""
    codes = {np.dtype(v): k for k, v in _ST_DTYPES.items()}
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        arr = np.asarray(tensors[name])  # not ascontiguousarray: it would turn a 0-d array into shape (1,)
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        data = arr.tobytes(order="C")
        header[name] = {"dtype": codes[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def read_safetensors(path):
    """{name: numpy array} from a safetensors file (the dtypes above only)."""
    with open(path, "rb") as f:
        raw = f.read()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    base = 8 + length
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(raw[base + lo:base + hi], dtype=_ST_DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


# ----------------------------------------------------------------------------------------------------------------
# Self-check

def scatter_reference(X, pad_hv, idx_identit, idx_out, reps, height, width, e):
    """Literal per-element loop of SPEC 1.5's scatter (one 'thread' per element of X), numpy float64."""
    N, T, Hp, Wp = X.shape
    G = idx_identit.shape[1]
    y_h = np.zeros((N, reps, height, width))
    y_v = np.zeros_like(y_h)
    y_i = np.zeros_like(y_h)
    for b in range(N):
        for t in range(T):
            o = idx_out[t]
            for i in range(Hp):
                for j in range(Wp):
                    val = X[b, t, i, j]
                    for g in range(G):
                        sh, sv = pad_hv[t, g], pad_hv[t, G + g]
                        if 0 <= i - e < height and 0 <= j + sh < width:
                            y_h[b, o, i - e, j + sh] += val
                        if 0 <= i + sv < height and 0 <= j - e < width:
                            y_v[b, o, i + sv, j - e] += val
                        if t == idx_identit[o, g] and 0 <= i - e < height and 0 <= j - e < width:
                            y_i[b, o, i - e, j - e] += val
    return y_h, y_v, y_i


def collapsed_kernels(layer):
    """SPEC 2.2: per rep channel, the eval-mode SW layer as one cross-shaped kernel K_o (square, odd side,
    centred) plus bias_o. Returns (K (R, 1, S, S), bias (R,)) in float64."""
    R, n, k, G = layer.reps, layer.nk, layer.small_kernel, layer.n_rep
    mu, r = layer.big_kernel // 2, (k - 1) // 2
    tables = shift_tables(layer.big_kernel, k, R, G)
    w = (layer.LoRA.weight if layer.LoRA is not None else sum(c.weight for c in layer.LoRAs)).detach().double()
    w = w[:, 0]
    half = max(mu, n * k - 1 - mu, r)
    S = 2 * half + 1
    if layer.use_bn:
        def affine(bnm):
            a = bnm.weight.double() / torch.sqrt(bnm.running_var.double() + bnm.eps)
            return a.detach(), (bnm.bias.double() - bnm.running_mean.double() * a).detach()
        (a_h, b_h), (a_v, b_v), (a_i, b_i) = affine(layer.bn_lora1), affine(layer.bn_lora2), affine(layer.bn_small)
    else:
        a_h = a_v = a_i = torch.ones(R, dtype=torch.float64)
        b_h = b_v = b_i = torch.zeros(R, dtype=torch.float64)
    K = torch.zeros(R, S, S, dtype=torch.float64)
    for o in range(R):
        for g in range(G):
            for m in range(n):
                blk_h = w[o * n + tables["perm_h"][g][o][m]]
                blk_v = w[o * n + tables["perm_v"][g][o][m]]
                for u in range(k):
                    for v in range(k):
                        K[o, half + u - r, half + v + m * k - mu] += a_h[o] * blk_h[u, v]
                        K[o, half + u + m * k - mu, half + v - r] += a_v[o] * blk_v[u, v]
            K[o, half - r:half + r + 1, half - r:half + r + 1] += a_i[o] * w[tables["idx_identit"][o, g]]
        K[o, half, half] += 1.0
    return K[:, None], b_h + b_v + b_i


def self_check(verbose=True):
    say = print if verbose else (lambda *a: None)
    torch_state, np_state = torch.random.get_rng_state(), np.random.get_state()

    # 1. gather == literal scatter loop, float64
    gen = np.random.default_rng(7)
    worst = 0.0
    for big, small, reps, G, H, W, N in [(7, 3, 2, 2, 5, 6, 2), (13, 5, 3, 3, 4, 7, 1), (11, 3, 2, 4, 6, 3, 1),
                                        (51, 3, 2, 4, 9, 8, 1), (9, 3, 4, 1, 5, 5, 1)]:
        tb = shift_tables(big, small, reps, G)
        e = tb["e"]
        X = gen.standard_normal((N, reps * tb["n"], H + 2 * e, W + 2 * e))
        ref = scatter_reference(X, tb["pad_hv"], tb["idx_identit"], tb["idx_out"], reps, H, W, e)
        pad = torch.from_numpy(tb["pad_hv"])
        got = shift_add(torch.from_numpy(X), pad[:, :G], pad[:, G:], torch.from_numpy(tb["idx_identit"]), H, W, e)
        for a, b in zip(got, ref):
            worst = max(worst, float(np.abs(a.numpy() - b).max()))
    assert worst <= 1e-12, worst
    say(f"gather vs literal scatter loop (5 cases, float64): max |diff| = {worst:.3g}")

    # 2. SPEC 1.8 worked example
    rep, ghost = ghost_split(3, 0.23)
    assert (rep, ghost) == ([1, 2], [0]), (rep, ghost)
    tb = shift_tables(7, 3, 2, 2)
    assert tb["n"] == 3 and tb["p"] == 2 and tb["e"] == 1 and tb["rho"] == [1, -2, -5]
    assert tb["perm_h"] == [[[1, 2, 0], [0, 1, 2]], [[1, 0, 2], [0, 2, 1]]], tb["perm_h"]
    assert tb["perm_v"] == [[[2, 1, 0], [2, 0, 1]], [[0, 2, 1], [1, 2, 0]]], tb["perm_v"]
    assert [[p + o * 3 for o, p in enumerate(pk)] for pk in tb["picks"]] == [[0, 3], [1, 4]], tb["picks"]
    expect = [[-5, -2, -5, 1], [1, 1, -2, -5], [-2, -5, 1, -2], [1, 1, -2, -5], [-2, -5, -5, 1], [-5, -2, 1, -2]]
    assert tb["pad_hv"].tolist() == expect, tb["pad_hv"].tolist()
    assert tb["idx_identit"].tolist() == [[0, 1], [3, 4]] and tb["idx_out"].tolist() == [0, 0, 0, 1, 1, 1]
    say("SPEC 1.8 worked example (B=7, k=3, C=3, G=2): ghost, permutations, picks, pad_hv, idx_identit, idx_out ok")

    # 3. C=80 ghost list (SPEC 1.2)
    rep, ghost = ghost_split(80, 0.23)
    assert len(rep) == 60 and ghost == [4, 8, 9, 23, 29, 31, 37, 43, 44, 53, 58, 59, 62, 64, 69, 72, 75, 77, 78, 79]
    say("C=80 ghost list ok (R=60)")

    # 4. sw_tiny_tables.json, when it can be found
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.environ.get("SW_TABLES_JSON", ""),
                  os.path.join(here, "..", "..", "shared", "data", "sw_tiny_tables.json"),
                  os.path.join(here, "..", "shared", "data", "sw_tiny_tables.json")]
    found = next((c for c in candidates if c and os.path.isfile(c)), None)
    if found:
        with open(found) as f:
            stages = json.load(f)["stages"]
        for st in stages:
            rep, ghost = ghost_split(st["dim"], 0.23)
            assert rep == st["rep"] and ghost == st["ghost"], st["dim"]
            tb = shift_tables(st["big"], st["small"], st["repN"], st["N_rep"])
            assert tb["pad_hv"].tolist() == st["pad_hv"] and tb["idx_identit"].tolist() == st["idx_identit"]
            assert tb["rho"] == st["real_pad"] and tb["e"] == st["extra_pad"] and tb["n"] == st["nk"]
        say(f"{os.path.normpath(found)}: all {len(stages)} stages' ghost lists and tables match")
    else:
        say("sw_tiny_tables.json not found (set SW_TABLES_JSON); skipped")

    # 5. SPEC 2.2: eval-mode SW layer == depthwise conv with the collapsed cross kernel; merge_branches exact
    worst = 0.0
    for C, big, small, G, H, W in [(10, 13, 3, 4, 11, 9), (9, 11, 5, 2, 6, 7), (12, 47, 3, 3, 14, 14)]:
        torch.manual_seed(1)
        layer = ShiftWiseConv(C, big, small, 0.23, 2, G, True).double().eval()
        with torch.no_grad():
            for conv in layer.LoRAs:
                conv.weight.normal_(0, 0.3)
            for bnm in (layer.bn_lora1, layer.bn_lora2, layer.bn_small):
                bnm.weight.uniform_(0.5, 1.5); bnm.bias.normal_(0, 0.1)
                bnm.running_mean.normal_(0, 0.2); bnm.running_var.uniform_(0.5, 2)
            x = torch.randn(2, C, H, W, dtype=torch.float64)
            y = layer(x)
            K, bias = collapsed_kernels(layer)
            ref = F.conv2d(x[:, layer.rep], K, bias, padding=K.shape[-1] // 2, groups=layer.reps)
            worst = max(worst, float((y[:, :layer.reps] - ref).abs().max()))
            assert torch.equal(y[:, layer.reps:], x[:, layer.ghost])
            layer.merge_branches()
            worst = max(worst, float((layer(x) - y).abs().max()))
    assert worst <= 1e-12, worst
    say(f"SW layer (eval) vs collapsed cross-kernel conv, and merge_branches: max |diff| = {worst:.3g}")

    torch.random.set_rng_state(torch_state)
    np.random.set_state(np_state)
    say("self-check passed")


if __name__ == "__main__":
    self_check()
