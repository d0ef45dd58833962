"""Times flowc's CPU kernels (runtime/kernels/cpu) and prints GFLOP/s or GB/s next to the
machine's limit; GEMM and conv also against numpy's BLAS and PyTorch in the same run.

    python benchmarks/kernels_cpu.py [--threads 2] [--native]

The limits: f32 FMA peak measured on one core x threads, and the bandwidth of a large numpy copy.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "runtime" / "kernels"))
import kernels_module  # noqa: E402

rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def best_seconds(fn, min_time=0.3, min_reps=3):
    """The fastest of several timed calls, after one warm-up call."""
    fn()
    times, start = [], time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def memory_bandwidth_gbs():
    a = np.ones(64 << 20 >> 2, np.float32)
    b = np.empty_like(a)
    return 2 * a.nbytes / best_seconds(lambda: np.copyto(b, a)) / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--native", action="store_true", help="build the kernels with -march=native")
    args = ap.parse_args()
    T = args.threads
    K = kernels_module.load(native=args.native)
    try:
        import torch

        torch.set_num_threads(T)
        F = torch.nn.functional
    except ImportError:
        torch = None

    peak = max(K.peak_gflops_one_core() for _ in range(3)) * T
    bw = memory_bandwidth_gbs()
    print(f"threads {T}, {'-march=native' if args.native else 'portable'} build; numpy BLAS threads: "
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'numpy default')}")
    print(f"limits: {peak:.0f} GFLOP/s f32 FMA peak ({T} x one core, measured), {bw:.1f} GB/s copy bandwidth\n")

    print("GEMM (C = A @ B, f32)                       flowc GFLOP/s  %peak   numpy  torch   flowc/numpy flowc/torch")
    gemms = [("512^3", 512, 512, 512, False), ("1024x1024x64", 1024, 1024, 64, False),
             ("1024^3", 1024, 1024, 1024, False),
             ("BERT qkv 128x768x2304", 128, 2304, 768, False), ("BERT ffn1 128x768x3072", 128, 3072, 768, False),
             ("BERT ffn2 128x3072x768", 128, 768, 3072, False), ("BERT QK^T 128x128x64", 128, 128, 64, True),
             ("small 16^3", 16, 16, 16, False), ("small 32^3", 32, 32, 32, False), ("small 48^3", 48, 48, 48, False),
             ("small 64^3", 64, 64, 64, False), ("MLP 64x256x256", 64, 256, 256, False)]
    for name, m, n, k, tb in gemms:
        a, b = randn(m, k), (randn(n, k) if tb else randn(k, n))
        flops = 2 * m * n * k
        f = flops / best_seconds(lambda: K.gemm(a, b, trans_b=tb, threads=T)) / 1e9
        bn = b.T if tb else b
        npy = flops / best_seconds(lambda: a @ bn) / 1e9
        line = f"{name:<44}{f:>9.1f}  {100 * f / peak:>5.1f}%  {npy:>6.1f}"
        if torch is not None:
            ta, tbb = torch.from_numpy(a), torch.from_numpy(np.ascontiguousarray(bn))
            tt = flops / best_seconds(lambda: ta @ tbb) / 1e9
            line += f" {tt:>6.1f}   {f / npy:>9.2f}x {f / tt:>9.2f}x"
        else:
            line += f"   -      {f / npy:>9.2f}x"
        if k * m * n <= 64 ** 3:
            s = flops / best_seconds(lambda: K.gemm(a, b, trans_b=tb, path="small")) / 1e9
            bl = flops / best_seconds(lambda: K.gemm(a, b, trans_b=tb, path="blas", threads=T)) / 1e9
            line += f"   [own small kernel {s:.1f}, OpenBLAS {bl:.1f}]"
        print(line)

    print("\nconv2d NCHW (ResNet-18 layers, batch 1)     flowc GFLOP/s  %peak   torch   flowc/torch")
    convs = [("conv1 3->64 7x7 s2 224", 1, 3, 224, 64, 7, 2, 3, 1), ("layer1 64->64 3x3 56", 1, 64, 56, 64, 3, 1, 1, 1),
             ("layer2 64->128 3x3 s2 56", 1, 64, 56, 128, 3, 2, 1, 1), ("layer2 128->128 3x3 28", 1, 128, 28, 128, 3, 1, 1, 1),
             ("layer3 256->256 3x3 14", 1, 256, 14, 256, 3, 1, 1, 1), ("layer4 512->512 3x3 7", 1, 512, 7, 512, 3, 1, 1, 1),
             ("downsample 64->128 1x1 s2", 1, 64, 56, 128, 1, 2, 0, 1), ("layer2 128x128 3x3 28, batch 8", 8, 128, 28, 128, 3, 1, 1, 1),
             ("grouped 128->128 3x3 g32 28", 1, 128, 28, 128, 3, 1, 1, 32)]
    print_depthwise = [("depthwise 32ch 3x3 112", 1, 32, 112, 32, 3, 1, 1, 32),
                       ("depthwise 144ch 3x3 s2 56", 1, 144, 56, 144, 3, 2, 1, 144),
                       ("depthwise 240ch 5x5 28", 1, 240, 28, 240, 5, 1, 2, 240),
                       ("depthwise 672ch 5x5 s2 14", 1, 672, 14, 672, 5, 2, 2, 672)]
    for section, rows in (("", convs), ("\ndepthwise conv (MobileNet/EfficientNet)    flowc GFLOP/s  %peak   torch   flowc/torch  [im2col path GFLOP/s]", print_depthwise)):
        if section:
            print(section)
        for name, n, c, h, kout, r, s, p, g in rows:
            x, w, bias = randn(n, c, h, h), randn(kout, c // g, r, r), randn(kout)
            oh = (h + 2 * p - r) // s + 1
            flops = 2 * n * kout * oh * oh * (c // g) * r * r
            run = lambda path="auto": K.conv2d(x, w, bias, strides=[s, s], pads=[p] * 4, group=g, threads=T, path=path)  # noqa: E731
            f = flops / best_seconds(run) / 1e9
            line = f"{name:<44}{f:>9.1f}  {100 * f / peak:>5.1f}%"
            if torch is not None:
                tx, tw, tbias = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(bias)
                with torch.no_grad():
                    tt = flops / best_seconds(lambda: F.conv2d(tx, tw, tbias, stride=s, padding=p, groups=g)) / 1e9
                line += f"  {tt:>6.1f}   {f / tt:>9.2f}x"
            if g == c and g > 1:
                im = flops / best_seconds(lambda: run("im2col")) / 1e9
                line += f"   [{im:.1f}]"
            print(line)

    print("\nmemory-bound kernels                         flowc GB/s   %copy-bw  (bytes = read + written)")
    mem = []
    x = randn(64, 1000); mem.append(("softmax 64x1000", lambda: K.softmax(x, threads=T), 2 * x.nbytes))
    x2 = randn(8 * 12 * 128, 128); mem.append(("softmax attention 12288x128", lambda: K.softmax(x2, threads=T), 2 * x2.nbytes))
    x3, g3, b3 = randn(8 * 128, 768), randn(768), randn(768)
    mem.append(("layernorm 1024x768", lambda: K.layer_norm(x3, g3, b3, 1e-5, threads=T), 2 * x3.nbytes))
    x4 = randn(8, 128, 12, 64); mem.append(("transpose 8x128x12x64 (0,2,1,3)", lambda: K.transpose(x4, [0, 2, 1, 3], threads=T), 2 * x4.nbytes))
    x5 = randn(2048, 2048); mem.append(("transpose 2048x2048 (1,0)", lambda: K.transpose(x5, [1, 0], threads=T), 2 * x5.nbytes))
    x6 = randn(4 << 20); mem.append(("gelu_erf 4M", lambda: K.unary("gelu_erf", x6, threads=T), 2 * x6.nbytes))
    y6 = randn(4 << 20); mem.append(("add 4M + 4M", lambda: K.binary("add", x6, y6, threads=T), 3 * x6.nbytes))
    for name, fn, nbytes in mem:
        gbs = nbytes / best_seconds(fn) / 1e9
        print(f"{name:<44}{gbs:>9.1f}   {100 * gbs / bw:>6.1f}%")


if __name__ == "__main__":
    main()
