"""What featx costs as a cache grows: each run should cost what is new, not what is cached.

    python benchmarks/scale.py [--sizes 10000 100000] [--dtype float32] [--work DIR] [--repeat 3]

For each size N: a folder of N generated 32-px PNGs (class folders), a tiny 32-px custom backbone
that outputs 2,048-d vectors (weights in the .keras file: no download), then, each as the user runs
it (`featx embed` in a fresh process, wall time): the first embed, an unchanged rerun, adding 1 %
new images, adding a fixed 200, then `featx.load_features` (in a fresh process) and the cache's
bytes per image. A plain walk + stat of the folder is the floor for a rerun. The last table gives
the per-image cost ratio between consecutive sizes (1.0: linear; an append should stay flat).

A run's time is dominated by start-up (importing TensorFlow: seconds, and more when the machine is
busy), so one timing per size compares noise. ``--repeat K`` then adds 200 new images to each
size's cache in turn, K rounds interleaved, and gives the median time per size and their ratio:
the fair comparison on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

WIDTH = 2048


def tiny_backbone(path: Path) -> Path:
    """A 32-px .keras backbone whose pooled output is 2,048 wide (one strided conv)."""
    if path.exists():
        return path
    code = (
        "import keras\n"
        "x = keras.Input((32, 32, 3))\n"
        f"y = keras.layers.Conv2D({WIDTH}, 8, strides=8, kernel_initializer='glorot_uniform')(x)\n"
        f"keras.Model(x, keras.layers.GlobalAveragePooling2D()(y)).save({str(path)!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return path


def write_images(folder: Path, count: int, start: int = 0) -> None:
    """``count`` distinct 32x32 PNGs in 10 class folders (image i always has the same bytes)."""
    rng = np.random.default_rng(12345)
    base = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for i in range(start, start + count):
        pixels = base.copy()
        pixels.reshape(-1)[:8] = np.frombuffer(i.to_bytes(8, "little"), np.uint8)  # unique content
        target = folder / f"c{i % 10}" / f"img{i:07d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(target, compress_level=1)


def remove_from(folder: Path, first: int) -> None:
    """Delete the images numbered ``first`` and above (those written by later ``write_images``)."""
    for path in folder.rglob("img*.png"):
        if int(path.stem[3:]) >= first:
            path.unlink()


def walk_stat(folder: Path) -> float:
    started = time.perf_counter()
    for root, _, files in os.walk(folder):
        for name in files:
            os.stat(os.path.join(root, name))
    return time.perf_counter() - started


def embed(data: Path, cache: Path, model: Path, dtype: str) -> float:
    command = [sys.executable, "-m", "featx", "embed", str(data), "--backbone", str(model), "--cache", str(cache),
               "--batch-size", "256", "--json"]
    if dtype != "float32":
        command += ["--dtype", dtype]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(result.stderr)
    return time.perf_counter() - started


def load(cache: Path) -> float:
    code = (f"import time, featx; t = time.perf_counter(); f = featx.load_features({str(cache)!r}); "
            "print(time.perf_counter() - t, f.X.shape)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(result.stdout.split()[0])


def cache_bytes(cache: Path) -> int:
    files = [cache, *cache.with_name(cache.name + ".segments").glob("*.h5")]
    return sum(f.stat().st_size for f in files if f.exists())


def measure(n: int, work: Path, model: Path, dtype: str) -> dict[str, float]:
    data, cache = work / f"data{n}", work / f"cache{n}-{dtype}.h5"
    if not data.exists():
        write_images(data, n)
    row: dict[str, float] = {"images": n}
    row["walk+stat"] = walk_stat(data)
    row["first embed"] = embed(data, cache, model, dtype)
    row["unchanged rerun"] = embed(data, cache, model, dtype)
    extra = max(1, n // 100)
    write_images(data, extra, start=n)
    row["add 1%"] = embed(data, cache, model, dtype)
    write_images(data, 200, start=n + extra)
    row["add 200"] = embed(data, cache, model, dtype)
    row["load"] = load(cache)
    row["bytes/image"] = cache_bytes(cache) / (n + extra + 200)
    remove_from(data, n)  # back to N images for a rerun of the script
    return row


def interleaved_adds(sizes: list[int], work: Path, model: Path, dtype: str, repeats: int) -> dict[int, float]:
    """Median time to add 200 new images to each size's cache, the sizes taking turns ``repeats``
    times; each round's images are removed again (untimed rerun) so every round adds new content."""
    times: dict[int, list[float]] = {n: [] for n in sizes}
    for round_ in range(repeats):
        for n in sizes:
            data, cache = work / f"data{n}", work / f"cache{n}-{dtype}.h5"
            start = 10_000_000 * (round_ + 1)  # content never seen by this cache
            write_images(data, 200, start=start)
            times[n].append(embed(data, cache, model, dtype))
            remove_from(data, start)
            embed(data, cache, model, dtype)
    return {n: float(np.median(t)) for n, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--work", type=Path, default=None, help="Keep images here between runs.")
    parser.add_argument("--repeat", type=int, default=0,
                        help="Then add 200 images to every size K times, interleaved (medians, ratio).")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="featx-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    model = tiny_backbone(work / "tiny2048.keras")
    rows = []
    for n in args.sizes:
        for cache in work.glob(f"cache{n}-{args.dtype}.h5*"):  # start from an empty cache
            subprocess.run(["rm", "-rf", str(cache)], check=True)
        rows.append(measure(n, work, model, args.dtype))
        print(json.dumps(rows[-1]), flush=True)
    keys = list(rows[0])[1:]
    print("\n| measure | " + " | ".join(f"{r['images']:,} images" for r in rows) + " |")
    print("| --- |" + " --- |" * len(rows))
    for key in keys:
        unit = "" if key == "bytes/image" else " s"
        print(f"| {key} | " + " | ".join(f"{r[key]:,.2f}{unit}" for r in rows) + " |")
    for small, large in zip(rows, rows[1:]):
        scale = large["images"] / small["images"]
        print(f"\nper-image cost ratio {large['images']:,} vs {small['images']:,} images "
              "(1.0 = grows with the cache, 1/%.0f = flat):" % scale)
        for key in ("unchanged rerun", "add 200", "load"):
            print(f"  {key}: {large[key] / small[key] / scale:.2f} per image, {large[key] / small[key]:.2f}x in total")
    if args.repeat:
        medians = interleaved_adds(args.sizes, work, model, args.dtype, args.repeat)
        print(f"\nadd 200 new images, median of {args.repeat} interleaved rounds: "
              + ", ".join(f"{n:,} images {t:.2f} s" for n, t in medians.items()))
        first = args.sizes[0]
        for n in args.sizes[1:]:
            print(f"  {n:,} vs {first:,}: {medians[n] / medians[first]:.2f}x")


if __name__ == "__main__":
    main()
