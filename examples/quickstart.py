"""flowc's main job on the example CNN that ships with the repo.

    python examples/quickstart.py [--out build/quickstart] [--target cpu|reference] [--max-batch 8] [--batch 4]

Compiles examples/models/tinycnn.onnx for the CPU (a C++ project that flowc builds
with CMake) for any batch up to --max-batch, loads the artifact and runs it on one
image and on a batch of random images, checks each answer against flowc's numpy
reference interpreter on the graph as imported (before any optimisation), and draws
the optimised graph with Graphviz.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import flowc
from flowc.frontend.onnx import load as import_onnx
from flowc.ir.viz import render

MODEL = Path(__file__).resolve().parent / "models" / "tinycnn.onnx"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="build/quickstart", help="artifact folder (default: %(default)s)")
    ap.add_argument("--target", default="cpu", help="compile target (default: %(default)s)")
    ap.add_argument("--max-batch", type=int, default=8, help="the largest batch it runs (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=4, help="the batch it runs after one image (default: %(default)s)")
    args = ap.parse_args(argv)

    start = time.perf_counter()
    artifact = flowc.compile(MODEL, target=args.target, out_dir=args.out, max_batch=args.max_batch)
    print(f"compiled {MODEL.name} for {args.target}, batch 1 to {args.max_batch}, in "
          f"{time.perf_counter() - start:.2f} s -> {artifact.path}")

    model = flowc.load(artifact.path)
    reference = import_onnx(MODEL)
    ok = True
    for batch in sorted({1, args.batch}):
        image = np.random.default_rng(batch).standard_normal([batch, 3, 32, 32]).astype(np.float32)
        start = time.perf_counter()
        logits = model.run({"image": image})["logits"]
        print(f"batch {batch}: ran in {1000 * (time.perf_counter() - start):.2f} ms, logits {list(logits.shape)}, "
              f"predicted classes {logits.argmax(axis=1).tolist()}")
        expected = flowc.ir.run(reference, {"image": image})["logits"]
        err = float(np.max(np.abs(logits - expected)))
        match = bool(np.allclose(logits, expected, rtol=1e-4, atol=1e-5))
        print(f"  max |compiled - reference| = {err:.2e}: {'match' if match else 'MISMATCH'}")
        ok = ok and match

    try:
        print(f"graph picture: {render(artifact.graph, Path(artifact.path) / 'graph.svg')}")
    except flowc.FlowcError as e:   # no Graphviz: the .dot file is written, and the message says how to get it
        print(f"graph picture: {e}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
