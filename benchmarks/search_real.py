"""Does `featx search` find a planted copy of an image, on real features?

    python benchmarks/search_real.py [--backbone ../shared/models/efficientnet_lite0_imagenet_notop.keras]
                                     [--images 300] [--copies 30] [--work DIR]

Fashion-MNIST test images (Debian's dataset-fashion-mnist, upscaled by featx to the backbone's input)
go into data/train/<class>/; ``--copies`` of them, each edited (brightness +12, a 1-pixel shift,
or a JPEG re-encode at quality 80), go into data/test/<class>/. After one `featx embed`, each copy is
searched by its cached path (a query is left out of its own hits) among the train images: the
figure is how often its original is the top hit, and the cosine of copy and original against the
cosine of the nearest other image.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

FASHION = Path("/usr/share/datasets/fashion-mnist")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "models" / "efficientnet_lite0_imagenet_notop.keras"


def fashion(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` test images (28x28 uint8) and labels, drawn at random."""
    with gzip.open(FASHION / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FASHION / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    rows = np.random.default_rng(seed).choice(len(images), count, replace=False)
    return images[rows], labels[rows]


def edited(pixels: np.ndarray, kind: int) -> Image.Image:
    if kind == 0:
        return Image.fromarray(np.clip(pixels.astype(np.int16) + 12, 0, 255).astype(np.uint8))
    if kind == 1:
        return Image.fromarray(np.roll(pixels, 1, axis=1))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=80)
    return Image.open(io.BytesIO(buffer.getvalue()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default=str(SHARED))
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--copies", type=int, default=30)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    import featx

    work = args.work or Path(tempfile.mkdtemp(prefix="featx-search-real-"))
    data = work / "data"
    images, labels = fashion(args.images)
    originals = {}
    for i, (pixels, label) in enumerate(zip(images, labels)):
        path = data / "train" / f"c{label}" / f"img{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        if i < args.copies:
            copy = data / "test" / f"c{label}" / f"copy{i:04d}.png"
            copy.parent.mkdir(parents=True, exist_ok=True)
            edited(pixels, i % 3).convert("L").save(copy)
            originals[str(copy)] = str(path)
    feats = featx.embed(data, backbone=args.backbone, cache=work / "cache.h5")
    queries = sorted(originals)
    result = featx.search(feats.cache_path, queries, top=2, split="train")
    top1, own, other = 0, [], []
    for match in result:
        hits = match.hits
        top1 += hits[0].path == originals[match.query]
        own.append(hits[0].score if hits[0].path == originals[match.query] else np.nan)
        other.append(hits[1].score if hits[0].path == originals[match.query] else hits[0].score)
    print(json.dumps({
        "images": args.images, "copies": len(queries), "original_is_top_hit": top1,
        "cosine_copy_original_mean": float(np.nanmean(own)), "cosine_copy_original_min": float(np.nanmin(own)),
        "cosine_next_nearest_mean": float(np.mean(other)), "cosine_next_nearest_max": float(np.max(other)),
        "backbone": args.backbone, "seconds_search": round(result.seconds, 3),
    }, indent=1))


if __name__ == "__main__":
    main()
