#!/usr/bin/python3
"""UniRepLKNet-T in PyTorch, written from its published architecture, in training and re-parameterised form.

The network (Ding et al., "UniRepLKNet: A Universal Perception Large-Kernel ConvNet ...", CVPR 2024), as the paper
and its released configuration describe the T size:
  * stem: conv 3x3 s2 (3 -> 40), LayerNorm (channels first), GELU, conv 3x3 s2 (40 -> 80), LayerNorm;
    between stages: conv 3x3 s2 + LayerNorm. ShiftWise_v2 kept this macro design, so the stem and norms are the
    same as tools/fixtures/sw_torch.py's, and its LayerNormChannelsFirst and SE modules are reused here.
  * depths 3,3,18,3, dims 80,160,320,640; depthwise kernel per block: 3 in stage 1, 13 in stage 2, 13 and 3
    alternating in stage 3 (13,3,13,3,...), 13 in stage 4 (the published T kernel table).
  * block: depthwise conv -> BN -> SE (reduction 4, ReLU, sigmoid) -> NHWC -> Linear C->4C -> GELU -> GRN ->
    Linear 4C->C (no bias) -> NCHW -> BN -> layer scale -> + input.
  * a 13x13 depthwise conv is a "dilated reparam" block in training: the 13x13 conv + BN in parallel with
    dilated depthwise convs (kernel, dilation) = (5,1), (7,2), (3,3), (3,4), (3,5), each + BN (spans 5, 13, 7,
    9, 11: all inside 13x13). A 3x3 block is a plain depthwise conv.
  * head: global average pool, LayerNorm, Linear 640 -> 1000.

Inference form (reparameterize()): each dilated branch's kernel spread onto its dense span (zeros between the
taps), BN folded in, centred in 13x13 and summed with the big conv; the block's BN folded into that one depthwise
conv; the BN after the second Linear, GRN's beta (pushed through the Linear) and the layer scale folded into the
second Linear. What is left per block: one depthwise conv with bias, SE, two Linears, GELU and a bias-free GRN.

    unireplknet.py                      # parameters and FLOPs (MACs) at 224, both forms
    unireplknet.py --bench --device cuda --batch 128 [--json F]   # images/s, bf16 autocast, channels_last
    unireplknet.py --self-test          # CPU, float64: parameter count, reparameterised == training form

The published size: about 31M parameters and 4.9 GFLOPs at 224 (papers count a multiply-add as one FLOP, so the
count printed is multiply-adds of the convs and Linears).
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "fixtures"))
from sw_torch import SE, LayerNormChannelsFirst  # noqa: E402  (the same modules as the published design)

DEPTHS = (3, 3, 18, 3)
DIMS = (80, 160, 320, 640)
T_KERNELS = ((3,) * 3, (13,) * 3, (13, 3) * 9, (13,) * 3)
# the dilated branches beside a big kernel: (kernel, dilation) pairs, each spanning dilation*(kernel-1)+1 <= big
DILATED_BRANCHES = {13: ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5)), 11: ((5, 1), (5, 2), (3, 3), (3, 4), (3, 5)),
                    9: ((5, 1), (5, 2), (3, 3), (3, 4)), 7: ((5, 1), (3, 2), (3, 3)), 5: ((3, 1), (3, 2))}
PUBLISHED = {"params_m": 31.0, "gflops": 4.9}


def folded(weight, bn, bias=None):
    """(weight, bias) of a conv/linear followed by eval-mode BN: per output channel scale a = gamma / sqrt(var+eps)."""
    a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    b0 = bias if bias is not None else torch.zeros_like(bn.running_mean)
    shape = (-1,) + (1,) * (weight.dim() - 1)
    return weight * a.view(shape), bn.bias + (b0 - bn.running_mean) * a


def dense_kernel(weight, dilation, size):
    """A depthwise (C,1,k,k) kernel applied with `dilation` as the equivalent (C,1,size,size) undilated kernel:
    taps every `dilation` pixels, zeros between, centred (odd spans centre exactly)."""
    k = weight.shape[-1]
    span = dilation * (k - 1) + 1
    assert span <= size and (size - span) % 2 == 0
    out = weight.new_zeros(weight.shape[0], 1, size, size)
    o = (size - span) // 2
    out[:, :, o:o + span:dilation, o:o + span:dilation] = weight
    return out


class DilatedReparam(nn.Module):
    """Training form of a big depthwise kernel: the big conv + BN plus dilated small convs + BN, summed."""

    def __init__(self, channels, big):
        super().__init__()
        self.big = big
        self.conv = nn.Conv2d(channels, channels, big, padding=big // 2, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.branches = nn.ModuleList()
        for k, r in DILATED_BRANCHES[big]:
            self.branches.append(nn.ModuleDict({
                "conv": nn.Conv2d(channels, channels, k, padding=r * (k - 1) // 2, dilation=r, groups=channels,
                                  bias=False),
                "bn": nn.BatchNorm2d(channels)}))

    def forward(self, x):
        y = self.bn(self.conv(x))
        for br in self.branches:
            y = y + br["bn"](br["conv"](x))
        return y

    def merged(self):
        """(weight (C,1,big,big), bias (C,)) of the one depthwise conv this block equals in eval mode."""
        w, b = folded(self.conv.weight, self.bn)
        for br in self.branches:
            wk, bk = folded(br["conv"].weight, br["bn"])
            w = w + dense_kernel(wk, br["conv"].dilation[0], self.big)
            b = b + bk
        return w, b


class GRN(nn.Module):
    """GRN on NHWC, (gamma * N(x) + 1) * x (+ beta); the inference form drops beta (folded into the next Linear)."""

    def __init__(self, channels, bias=True):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, channels))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, channels)) if bias else None

    def forward(self, x):
        g = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        y = (self.gamma * (g / (g.mean(dim=-1, keepdim=True) + 1e-6)) + 1) * x
        return y if self.beta is None else y + self.beta


class Block(nn.Module):
    def __init__(self, dim, kernel, layer_scale=1e-6):
        super().__init__()
        self.dwconv = DilatedReparam(dim, kernel) if kernel >= 7 else \
            nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim, bias=False)
        self.norm = nn.BatchNorm2d(dim)
        self.se = SE(dim, dim // 4)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.grn = GRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim, bias=False)
        self.norm2 = nn.BatchNorm2d(dim)
        self.gamma = nn.Parameter(layer_scale * torch.ones(dim)) if layer_scale > 0 else None

    def forward(self, x):
        y = self.se(self.norm(self.dwconv(x)))
        y = self.pwconv2(self.grn(F.gelu(self.pwconv1(y.permute(0, 2, 3, 1)))))
        y = self.norm2(y.permute(0, 3, 1, 2))
        return x + (y if self.gamma is None else self.gamma.view(1, -1, 1, 1) * y)

    @torch.no_grad()
    def reparameterize(self):
        if isinstance(self.norm, nn.Identity):
            return
        if isinstance(self.dwconv, DilatedReparam):
            w, b = self.dwconv.merged()
        else:
            w, b = self.dwconv.weight, None
        w, b = folded(w, self.norm, b)
        conv = nn.Conv2d(w.shape[0], w.shape[0], w.shape[-1], padding=w.shape[-1] // 2, groups=w.shape[0])
        conv = conv.to(w)
        conv.weight.copy_(w)
        conv.bias.copy_(b)
        self.dwconv, self.norm = conv, nn.Identity()
        # second Linear: y = BN(W (grn + beta)) * gamma  ->  W' grn + b'
        lin = self.pwconv2
        w2, b2 = folded(lin.weight, self.norm2, lin.weight @ self.grn.beta.view(-1))
        if self.gamma is not None:
            w2, b2 = w2 * self.gamma.view(-1, 1), b2 * self.gamma
        new = nn.Linear(lin.in_features, lin.out_features).to(w2)
        new.weight.copy_(w2)
        new.bias.copy_(b2)
        self.pwconv2, self.norm2, self.gamma = new, nn.Identity(), None
        self.grn.beta = None


class UniRepLKNet(nn.Module):
    def __init__(self, depths=DEPTHS, dims=DIMS, kernels=T_KERNELS, in_chans=3, num_classes=1000, layer_scale=1e-6):
        super().__init__()
        assert [len(k) for k in kernels] == list(depths)
        stem = nn.Sequential(nn.Conv2d(in_chans, dims[0] // 2, 3, stride=2, padding=1),
                             LayerNormChannelsFirst(dims[0] // 2), nn.GELU(),
                             nn.Conv2d(dims[0] // 2, dims[0], 3, stride=2, padding=1), LayerNormChannelsFirst(dims[0]))
        self.downsample = nn.ModuleList([stem] + [
            nn.Sequential(nn.Conv2d(dims[i - 1], dims[i], 3, stride=2, padding=1), LayerNormChannelsFirst(dims[i]))
            for i in range(1, 4)])
        self.stages = nn.ModuleList(nn.Sequential(*[Block(dims[i], k, layer_scale) for k in kernels[i]])
                                    for i in range(4))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        for down, stage in zip(self.downsample, self.stages):
            x = stage(down(x))
        return self.head(self.norm(x.mean(dim=(-2, -1))))

    def reparameterize(self):
        for m in self.modules():
            if isinstance(m, Block):
                m.reparameterize()
        return self


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def count_macs(model, image_size, in_chans=3):
    """Multiply-adds of every Conv2d and Linear for one image (the count papers call FLOPs)."""
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            total[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:
            total[0] += out.numel() * m.in_features
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    p = next(model.parameters())
    with torch.no_grad():
        model(torch.zeros(1, in_chans, image_size, image_size, dtype=p.dtype, device=p.device))
    for h in handles:
        h.remove()
    return total[0]


@torch.no_grad()
def randomise(model, seed=0):
    """Non-trivial values everywhere (BN statistics, GRN, layer scale), so that folding them is actually tested."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            for t, lo, hi in ((m.weight, 0.5, 1.5), (m.running_var, 0.5, 2.0)):
                t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) * (hi - lo) + lo)
            for t in (m.bias, m.running_mean):
                t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype) * 0.2)
        elif isinstance(m, GRN):
            m.gamma.copy_(torch.randn(m.gamma.shape, generator=g, dtype=m.gamma.dtype) * 0.3)
            m.beta.copy_(torch.randn(m.beta.shape, generator=g, dtype=m.beta.dtype) * 0.3)
        elif isinstance(m, Block):
            m.gamma.copy_(torch.rand(m.gamma.shape, generator=g, dtype=m.gamma.dtype) + 0.5)
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=m.weight.dtype)
                           * m.weight[0].numel() ** -0.5)
            if m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=m.bias.dtype) * 0.1)
    return model


def deployed(device, seed=0, **kw):
    """The inference form on `device`, eval, channels_last: what the benchmark row runs (under bf16 autocast)."""
    torch.manual_seed(seed)
    model = UniRepLKNet(**kw).eval().reparameterize()
    return model.to(device).to(memory_format=torch.channels_last)


def info(image_size=224):
    train = UniRepLKNet().eval()
    p_train, macs = count_params(train), count_macs(train, image_size)
    dep = train.reparameterize()
    p_dep, macs_dep = count_params(dep), count_macs(dep, image_size)
    return {"params_training": p_train, "params_inference": p_dep, "gmacs_training": macs / 1e9,
            "gmacs_inference": macs_dep / 1e9, "image_size": image_size,
            "published": {"params": "31M", "flops": "4.9G"}}


def self_test():
    t0 = time.perf_counter()
    rng = torch.get_rng_state()
    # 1. the dense spread of a dilated kernel is the dilated conv
    torch.manual_seed(1)
    x = torch.randn(2, 4, 15, 15, dtype=torch.float64)
    w = torch.randn(4, 1, 3, 3, dtype=torch.float64)
    a = F.conv2d(x, w, padding=4, dilation=4, groups=4)
    b = F.conv2d(x, dense_kernel(w, 4, 13), padding=6, groups=4)
    assert (a - b).abs().max() < 1e-12
    # 2. a small UniRepLKNet (every block kind: 3x3, 13x13 dilated; stage 4 at 1x1 pixels so borders count),
    #    randomised, float64: the inference form equals the training form
    kernels = ((3,), (13, 3), (13,), (13,))
    model = randomise(UniRepLKNet(depths=(1, 2, 1, 1), dims=(8, 16, 24, 32), kernels=kernels, num_classes=10)
                      .double().eval(), seed=3)
    x = torch.randn(2, 3, 48, 48, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
        got = model.reparameterize()(x)
    diff = float((got - ref).abs().max() / ref.abs().max())
    assert diff < 1e-10, diff
    assert not any(isinstance(m, (nn.BatchNorm2d, DilatedReparam)) for m in model.modules())
    print(f"self-test: reparameterised vs training form (float64, 5 blocks, 48x48): max |diff| / max |y| = "
          f"{diff:.2e}")
    # 3. UniRepLKNet-T's size: parameters (and MACs at 224) near the published 31M / 4.9G
    t = info()
    print(f"self-test: UniRepLKNet-T {t['params_training'] / 1e6:.2f}M parameters (training form; "
          f"{t['params_inference'] / 1e6:.2f}M reparameterised), {t['gmacs_inference']:.2f} GMACs at 224 "
          f"(published 31M, 4.9G)")
    assert abs(t["params_training"] / 1e6 - PUBLISHED["params_m"]) < 1.0, t
    assert abs(t["gmacs_inference"] - PUBLISHED["gflops"]) < 0.3, t
    torch.set_rng_state(rng)
    print(f"self-test passed ({time.perf_counter() - t0:.1f} s)")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--self-test", action="store_true", help="CPU, float64 checks (a few seconds)")
    ap.add_argument("--bench", action="store_true", help="time the inference form (bf16 autocast, channels_last)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json", help="write the result (architecture numbers, and the row with --bench) here")
    args = ap.parse_args(argv)
    if args.self_test:
        return self_test()
    result = info(args.image_size)
    print(f"UniRepLKNet-T: depths {DEPTHS}, dims {DIMS}; {result['params_training']:,} parameters in training form, "
          f"{result['params_inference']:,} reparameterised; {result['gmacs_training']:.2f} GMACs (training form), "
          f"{result['gmacs_inference']:.2f} GMACs (inference form) at {args.image_size}; published 31M, 4.9G")
    if args.bench:
        import precision_peers  # the same timing and row format as the side-by-side script
        row = precision_peers.bench_one("unireplknet-bf16", args)
        result["row"] = row
        print(precision_peers.format_row(row))
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=2)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
