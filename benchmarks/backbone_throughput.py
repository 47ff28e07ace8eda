"""Backbone throughput side by side: images/s of each backbone's compiled forward pass, in one run.

    python benchmarks/backbone_throughput.py [--backbones EfficientNetB0 dinov2_small] [--batches 4] [--rounds 3]

Each backbone is built at its native size with random weights (``--weights none``: the speed does
not depend on the weight values, and it stays offline: a DINOv2-small-shaped model for
``dinov2_small``), then fed the same decoded batches; rounds alternate between the backbones and
each keeps its best round, so a busy moment on a shared machine favours neither. Decoding is left
out (it costs the same for every backbone: see embed_throughput.py for the whole pipeline).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["EfficientNetB0", "dinov2_small"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", default=None, help="Keras backend (default: $KERAS_BACKEND, else tensorflow)")
    args = parser.parse_args()

    from featx.engine.extractor import FeatureExtractor
    from featx.options import EmbedOptions

    rng = np.random.default_rng(0)
    runs = {}
    for name in args.backbones:
        config = EmbedOptions(name, weights="none", backend=args.backend).resolve()
        extractor = FeatureExtractor(config, batch_size=args.batch_size, backend=args.backend)
        size = config.input_size
        batches = [rng.uniform(0, 255, (args.batch_size, size, size, 3)).astype(np.float32) for _ in range(args.batches)]
        extractor(batches[0])  # trace and warm up
        runs[name] = (config, extractor, batches)

    best = dict.fromkeys(runs, 0.0)
    for _ in range(args.rounds):
        for name, (_, extractor, batches) in runs.items():
            started = time.perf_counter()
            for batch in batches:
                extractor(batch)
            best[name] = max(best[name], args.batch_size * len(batches) / (time.perf_counter() - started))

    backend = next(iter(runs.values()))[1].backend
    print(f"{os.cpu_count()} cores, {backend}, batch {args.batch_size}, best of {args.rounds} rounds of "
          f"{args.batches * args.batch_size} images")
    first = args.backbones[0]
    for name, (config, extractor, _) in runs.items():
        print(f"{name:<28} {config.input_size:>4}px  {config.pooling:<8} {extractor.feature_dim:>5}-d  "
              f"{best[name]:7.1f} images/s  ({best[name] / best[first]:.2f}x {first})")


if __name__ == "__main__":
    main()
