"""PyTorch peer of bench/engine.ts: the same workloads, shapes and call counts.

Run with Debian's /usr/bin/python3 (python3-torch).
  engine_torch.py --threads N [--repeats R]   runs everything, prints one JSON object.
  engine_torch.py --threads N --serve         prints the info JSON, then answers each
                                              "NAME ITERS" line on stdin with one JSON line,
                                              [seconds, page faults] per call; engine.ts uses
                                              this to interleave its repeats with ours.
"""
import argparse
import json
import platform
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

# Keep these in step with bench/engine.ts.
CONV = dict(n=16, cin=64, cout=64, h=32, w=32, k=3)
MATMUL_N = 1024
OPS_PER_BLOCK = 1000
CONV_FWD_FLOPS = 2 * CONV["n"] * CONV["cout"] * CONV["h"] * CONV["w"] * CONV["cin"] * CONV["k"] ** 2


def make_benches():
    """name -> (fn, warmup, iters); fn is one call, as on the Node side."""
    c = CONV
    x = torch.randn(c["n"], c["cin"], c["h"], c["w"])
    w = torch.randn(c["cout"], c["cin"], c["k"], c["k"]) * 0.05
    b = torch.zeros(c["cout"])
    xg = x.clone().requires_grad_()
    wg = w.clone().requires_grad_()
    upstream = torch.ones(c["n"], c["cout"], c["h"], c["w"])
    ma = torch.randn(MATMUL_N, MATMUL_N)
    mb = torch.randn(MATMUL_N, MATMUL_N)
    a1 = torch.ones(1)
    b1 = torch.ones(1)

    def conv_fwd():
        F.conv2d(x, w, b, padding=1)

    def conv_fwd_bwd():
        F.conv2d(xg, wg, b, padding=1).backward(upstream)
        xg.grad = None  # as zeroGrad([x, w]) does
        wg.grad = None

    def matmul():
        torch.matmul(ma, mb)

    def add():
        for _ in range(OPS_PER_BLOCK):
            torch.add(a1, b1)

    return {
        "conv_fwd": (conv_fwd, 3, 10),
        "conv_fwd_bwd": (conv_fwd_bwd, 2, 4),
        "matmul": (matmul, 3, 20),
        "add": (add, 50, 100),
    }


def time_repeat(fn, iters):
    """(wall seconds, minor page faults) per call of fn, as timeRepeat in bench/common.ts."""
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    seconds = (time.perf_counter() - t0) / iters
    return seconds, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / iters


def serve(benches, info):
    print(json.dumps(info), flush=True)  # also says "ready"
    for line in sys.stdin:
        name, iters = line.split()
        print(json.dumps(time_repeat(benches[name][0], int(iters))), flush=True)


def standalone(benches, repeats):
    def median_seconds(name):
        fn, warmup, iters = benches[name]
        time_repeat(fn, warmup)
        return statistics.median(time_repeat(fn, iters)[0] for _ in range(repeats))

    gflops = lambda flops, s: round(flops / s / 1e9, 2)
    return {
        "conv2d_fwd_gflops": gflops(CONV_FWD_FLOPS, median_seconds("conv_fwd")),
        "conv2d_fwd_bwd_gflops": gflops(3 * CONV_FWD_FLOPS, median_seconds("conv_fwd_bwd")),
        "matmul_gflops": gflops(2 * MATMUL_N**3, median_seconds("matmul")),
        "add_us_per_call": round(median_seconds("add") / OPS_PER_BLOCK * 1e6, 3),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--serve", action="store_true")
    args = p.parse_args()
    # Debian's libtorch starts with one thread: match the Node side explicitly.
    torch.set_num_threads(args.threads)
    benches = make_benches()
    info = {
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "num_threads": torch.get_num_threads(),
    }
    if args.serve:
        serve(benches, info)
        return
    print(json.dumps({**info, **standalone(benches, args.repeats)}))


if __name__ == "__main__":
    main()
