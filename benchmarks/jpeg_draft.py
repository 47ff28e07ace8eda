"""JPEG draft mode (``--jpeg-draft``): its decode speed-up and how far it moves the vectors.

    python benchmarks/jpeg_draft.py [--images 12] [--photo 4000x3000] [--size 224]
        [--backbone MobileNetV2 --backbone VGG16] [--weights none] [--backend jax] [--json]

Writes photo-like JPEGs of ``--photo`` (default 4,000×3,000, a phone photo), decodes and resizes
each with featx's exact Keras-equivalent resize and with draft mode (DCT-domain downscaling to the
smallest of 1/2, 1/4, 1/8 still at least the input size, then the same exact resize), one process,
best of ``--rounds``. Then embeds both with each ``--backbone`` and reports the cosine between the
draft and exact vector of each image (mean and worst) and their relative L2 distance.

Weights default to random (``none``): offline and reproducible; on random weights some backbones
(MobileNetV2) give vectors of tiny magnitude, so VGG16, whose random vectors are well scaled, is
measured too. Pass ``--weights imagenet`` where the ImageNet files are available.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed_throughput import write_photos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--photo", default="4000x3000", help="size of the generated JPEGs, WIDTHxHEIGHT")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--backbone", action="append", help="default: MobileNetV2 and VGG16")
    parser.add_argument("--weights", default="none")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from featx.data.images import load_image
    from featx.engine.extractor import FeatureExtractor
    from featx.options import EmbedOptions

    photo = tuple(int(v) for v in args.photo.lower().split("x"))
    data = write_photos(Path(tempfile.mkdtemp(prefix="featx-draft-")), args.images, photo, classes=1)
    paths = sorted(data.rglob("*.jpg"))
    size = (args.size, args.size)

    def decode(draft: bool) -> tuple[float, np.ndarray]:
        started = time.perf_counter()
        pixels = np.stack([load_image(p, size, jpeg_draft=draft) for p in paths])
        return len(paths) / (time.perf_counter() - started), pixels

    rates = {False: 0.0, True: 0.0}
    pixels = {}
    for _ in range(args.rounds):  # alternate, keep each one's best
        for draft in rates:
            rate, pixels[draft] = decode(draft)
            rates[draft] = max(rates[draft], rate)
    result = {
        "images": len(paths), "photo": args.photo, "size": args.size, "weights": args.weights,
        "exact_images_per_s": round(rates[False], 2), "draft_images_per_s": round(rates[True], 2),
        "speedup": round(rates[True] / rates[False], 2),
        "pixel_mean_abs_diff": round(float(np.abs(pixels[True] - pixels[False]).mean()), 3),
        "vectors": {},
    }
    for backbone in args.backbone or ["MobileNetV2", "VGG16"]:
        config = EmbedOptions(backbone, weights=args.weights, image_size=args.size, backend=args.backend).resolve()
        extractor = FeatureExtractor(config, batch_size=len(paths), backend=args.backend)
        exact, draft = extractor(pixels[False]), extractor(pixels[True])
        cosine = (exact * draft).sum(1) / (np.linalg.norm(exact, axis=1) * np.linalg.norm(draft, axis=1))
        result["vectors"][backbone] = {
            "backend": extractor.backend,
            "cosine_mean": round(float(cosine.mean()), 6), "cosine_min": round(float(cosine.min()), 6),
            "relative_l2": round(float(np.linalg.norm(draft - exact) / np.linalg.norm(exact)), 5),
        }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{len(paths)} JPEGs of {args.photo} -> {args.size}px, one process, weights {args.weights}")
    print(f"exact decode + resize : {rates[False]:7.2f} images/s")
    print(f"draft decode + resize : {rates[True]:7.2f} images/s ({result['speedup']:.2f}x)")
    print(f"pixels, mean |draft - exact| (0-255): {result['pixel_mean_abs_diff']}")
    for backbone, figures in result["vectors"].items():
        print(f"{backbone}: cosine(draft, exact) mean {figures['cosine_mean']}, worst {figures['cosine_min']}, "
              f"relative L2 {figures['relative_l2']}")


if __name__ == "__main__":
    main()
