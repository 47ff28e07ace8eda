"""What featx costs as a cache grows, in time and in memory per image: each run should cost what is
new, and memory should cost bytes per image, not kilobytes.

    python benchmarks/scale.py [--sizes 100000 1000000] [--work DIR] [--phases ...] [--repeat 3]
                               [--width 16] [--dtype float32]

For each size N: a folder of N generated 32-px PNGs in 10 class folders (written once into
``--work`` and reused by later runs), a tiny custom backbone (one strided conv, 16-d vectors by default, weights
in the .keras file: no download) so that featx's own costs are what is measured, then each phase as a
user runs it, in a fresh process of its own: the first embed (``featx embed``), a plain ``os.walk`` +
``os.stat`` of the folder (the filesystem's limit for a rerun), an unchanged rerun, a rerun after
adding 1 % new images, ``featx.load_features`` and ``featx fit-head --head logreg`` (and ``sgd``,
which streams). Per phase: wall time (start-up excluded: the process imports featx and its CLI, and
Keras for an embed, before the clock starts) and PEAK memory above that process's resident memory
once imported (Linux ``VmHWM``, reset with ``/proc/self/clear_refs``), in total and per image; for
``load`` also what the returned Features still hold. Then the index file's size and the bytes the
+1 % run wrote into the cache's files (files created or modified: its new segment and any index
rewrite). ``--repeat K`` adds 200 new images to each size's cache K times, interleaved, and gives
the median time per size and their ratio: the fair comparison on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

WIDTH = 16  # default vector width of the tiny backbone: featx's own per-image costs dominate
SIDE = 32
MARK = "SCALE-PHASE "
PHASES = ("first embed", "walk+stat", "unchanged rerun", "add 1%", "load", "load traced", "fit logreg", "fit sgd")


def tiny_backbone(path: Path, width: int = WIDTH) -> Path:
    """A 32-px .keras backbone whose pooled output is ``width`` wide (one strided conv)."""
    if path.exists():
        return path
    code = (
        "import keras\n"
        f"x = keras.Input(({SIDE}, {SIDE}, 3))\n"
        f"y = keras.layers.Conv2D({width}, 8, strides=8, kernel_initializer='glorot_uniform')(x)\n"
        f"keras.Model(x, keras.layers.GlobalAveragePooling2D()(y)).save({str(path)!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


_HEADER = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", SIDE, SIDE, 8, 2, 0, 0, 0))
_END = _chunk(b"IEND", b"")


def png_bytes(i: int, base: np.ndarray) -> bytes:
    """A valid 32x32 RGB PNG, distinct for every ``i`` (its first 8 bytes of pixels), written without
    Pillow: ten times faster, so a million files take minutes, not most of an hour."""
    pixels = base.copy()
    pixels[0, :8] = np.frombuffer(i.to_bytes(8, "little"), np.uint8)
    raw = np.concatenate([np.zeros((SIDE, 1), np.uint8), pixels.reshape(SIDE, -1)], axis=1).tobytes()
    return _HEADER + _chunk(b"IDAT", zlib.compress(raw, 1)) + _END


def write_images(folder: Path, count: int, start: int = 0) -> None:
    """``count`` distinct PNGs in 10 class folders (image i always has the same bytes)."""
    base = np.random.default_rng(12345).integers(0, 256, (SIDE, SIDE * 3), dtype=np.uint8)
    for c in range(10):
        (folder / f"c{c}").mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        (folder / f"c{i % 10}" / f"img{i:08d}.png").write_bytes(png_bytes(i, base))


def remove_from(folder: Path, first: int) -> None:
    """Delete the images numbered ``first`` and above (those written by later ``write_images``)."""
    for root, _, files in os.walk(folder):
        for name in files:
            if name.startswith("img") and int(name[3:11]) >= first:
                os.unlink(os.path.join(root, name))


def unused_numbers(work: Path, n: int, count: int) -> int:
    """The first of ``count`` image numbers no earlier run in ``work`` wrote: new content, so that the +1 %
    is embedded (a cache keeps the vectors of removed images until compacted, and would reuse them)."""
    counter = work / f"added{n}"
    runs = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(runs))
    if n + (runs + 1) * count >= 10**8:
        raise SystemExit(f"{work}: image numbers used up; delete {counter} and the caches to start again")
    return n + runs * count


def dataset(work: Path, n: int) -> Path:
    """The folder of ``n`` images, made once (a marker file says it is complete)."""
    data, done = work / f"data{n}", work / f"data{n}.complete"
    if not done.exists():
        shutil.rmtree(data, ignore_errors=True)
        started = time.perf_counter()
        write_images(data, n)
        done.write_text(str(n))
        print(f"wrote {n:,} images in {time.perf_counter() - started:.1f} s", flush=True)
    else:
        remove_from(data, n)  # images a run cut short added
    return data


# ---- one phase, run in a process of its own (scale.py --phase NAME ...) ----

def _rss_kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def _walk_stat(data: str) -> None:
    for root, _, files in os.walk(data):
        for name in files:
            os.stat(os.path.join(root, name))


def run_phase(name: str, data: str, cache: str, model: str, out: str, dtype: str) -> None:
    """Import what the phase needs, then time it and its peak memory above the imported process."""
    import featx
    from featx.cli.app import app

    if name == "embed":
        from featx.backend import import_keras
        import_keras()
    if name.startswith("fit"):  # scikit-learn, SciPy and skops (with what they import): ~300 MB, not per image
        import sklearn.linear_model
        import sklearn.metrics
        import sklearn.model_selection  # noqa: F401
        import skops.io  # noqa: F401

        import featx.heads.fit
        import featx.heads.store

    def cli(*args: str) -> None:
        try:
            app(list(args), standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                raise

    held = None
    actions = {
        "embed": lambda: cli("embed", data, "--backbone", model, "--cache", cache, "--batch-size", "256", "--json",
                             "--dtype", dtype),
        "walk": lambda: _walk_stat(data),
        "load": lambda: featx.load_features(cache),
        "fit-logreg": lambda: cli("fit-head", "--cache", cache, "--head", "logreg", "--output", out, "--json"),
        "fit-sgd": lambda: cli("fit-head", "--cache", cache, "--head", "sgd", "--output", out, "--json"),
    }
    if name == "load-traced":  # Python's and NumPy's allocations, counted: no allocator slack (10x slower)
        import tracemalloc

        tracemalloc.start()
        started = time.perf_counter()
        features = featx.load_features(cache)
        seconds = time.perf_counter() - started
        held, peak = tracemalloc.get_traced_memory()
        print(MARK + json.dumps({"seconds": seconds, "peak": peak, "held": held - features.X.nbytes}), flush=True)
        return
    base = _rss_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM (peak) := now
    started = time.perf_counter()
    held = actions[name]()
    seconds = time.perf_counter() - started
    result = {"seconds": seconds, "peak": (_rss_kb("VmHWM") - base) * 1024,
              "held": (_rss_kb("VmRSS") - base) * 1024}
    del held
    print(MARK + json.dumps(result), flush=True)


def phase(name: str, data: Path, cache: Path, model: Path, out: Path, dtype: str = "float32") -> dict:
    command = [sys.executable, __file__, "--phase", name, "--data", str(data), "--cache", str(cache),
               "--model", str(model), "--out", str(out), "--dtype", dtype]
    result = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith(MARK)]
    if result.returncode or not lines:
        raise SystemExit(f"phase {name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return json.loads(lines[-1][len(MARK):])


# ---- the cache's files ----

def cache_files(cache: Path) -> dict[str, tuple[int, int, int]]:
    """Every file of the cache (``cache`` and whatever sits beside it under its name), by path:
    (size, mtime_ns, inode)."""
    found = {}
    for entry in cache.parent.iterdir():
        if not entry.name.startswith(cache.name):
            continue
        paths = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        for path in paths:
            st = path.stat()
            found[str(path)] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return found


def written(before: dict, after: dict) -> int:
    """Bytes in files created or modified between two :func:`cache_files` listings."""
    return sum(size for path, (size, *rest) in after.items() if before.get(path) != (size, *rest))


def cache_name(n: int, width: int, dtype: str) -> str:
    return f"cache{n}-{width}d-{dtype}.h5"


def measure(n: int, work: Path, model: Path, phases: list[str], width: int, dtype: str) -> dict:
    data = dataset(work, n)
    cache, out = work / cache_name(n, width, dtype), work / f"heads{n}"
    if "first embed" in phases:
        for old in work.glob(cache.name + "*"):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    elif not cache.exists():
        raise SystemExit(f"{cache} does not exist: run the 'first embed' phase first.")
    row: dict = {"images": n}
    if "first embed" not in phases and "unchanged rerun" in phases:
        phase("embed", data, cache, model, out, dtype)  # untimed: the cache as the folder is (an earlier
        # run's +1 % images were removed after it), so that the rerun below is truly unchanged

    def timed(label: str, name: str, images: int) -> None:
        shutil.rmtree(out, ignore_errors=True)
        result = phase(name, data, cache, model, out, dtype)
        row[label] = result | {"per_image": result["peak"] / images, "held_per_image": result["held"] / images}
        print(f"  {label}: {result['seconds']:.2f} s, peak +{result['peak'] / 1e6:.1f} MB "
              f"({result['peak'] / images:.0f} B/image), held +{result['held'] / 1e6:.1f} MB", flush=True)

    for label, name in (("first embed", "embed"), ("walk+stat", "walk"), ("unchanged rerun", "embed")):
        if label in phases:
            timed(label, name, n)
    extra = max(1, n // 100)
    if "add 1%" in phases:
        write_images(data, extra, start=unused_numbers(work, n, extra))
        before = cache_files(cache)
        timed("add 1%", "embed", n + extra)
        row["add 1% wrote"] = written(before, cache_files(cache))
        row["index bytes"] = cache.stat().st_size
        row["cache bytes/image"] = sum(size for size, *_ in cache_files(cache).values()) / (n + extra)
    total = len(featx_rows(cache))
    for label, name in (("load", "load"), ("load traced", "load-traced"), ("fit logreg", "fit-logreg"),
                        ("fit sgd", "fit-sgd")):
        if label in phases:
            timed(label, name, total)
    remove_from(data, n)  # back to N images for the next run
    shutil.rmtree(out, ignore_errors=True)
    return row


def featx_rows(cache: Path):
    import featx  # how many images the cache holds (ids and paths; vectors stay on disk)

    return featx.load_features(cache, lazy=True).y


def interleaved_adds(sizes: list[int], work: Path, model: Path, repeats: int, width: int,
                     dtype: str) -> dict[int, float]:
    """Median time to add 200 new images to each size's cache, the sizes taking turns ``repeats``
    times; each round's images are removed again (untimed rerun) so every round adds new content."""
    times: dict[int, list[float]] = {n: [] for n in sizes}
    for round_ in range(repeats):
        for n in sizes:
            data, cache = work / f"data{n}", work / cache_name(n, width, dtype)
            start = 10_000_000 * (round_ + 1)  # content never seen by this cache
            write_images(data, 200, start=start)
            times[n].append(phase("embed", data, cache, model, work, dtype)["seconds"])
            remove_from(data, start)
            phase("embed", data, cache, model, work, dtype)
    return {n: float(np.median(t)) for n, t in times.items()}


def table(rows: list[dict]) -> None:
    print("\n| phase | " + " | ".join(f"{r['images']:,} images" for r in rows) + " |")
    print("| --- |" + " --- |" * len(rows))
    for label in PHASES:
        if label not in rows[0]:
            continue
        cells = []
        for r in rows:
            m = r[label]
            cells.append(f"{m['seconds']:,.2f} s, peak +{m['peak'] / 1e6:,.0f} MB ({m['per_image']:,.0f} B/image)")
        print(f"| {label} | " + " | ".join(cells) + " |")
    if "load" in rows[0]:
        print("| load: Features held after (RSS) | " + " | ".join(f"+{r['load']['held'] / 1e6:,.0f} MB" for r in rows)
              + " |")
    if "load traced" in rows[0]:
        print("| load traced: Features hold beside the vectors | "
              + " | ".join(f"{r['load traced']['held_per_image']:,.0f} B/image" for r in rows) + " |")
    for key in ("index bytes", "add 1% wrote"):
        if key in rows[0]:
            print(f"| {key} | " + " | ".join(f"{r[key] / 1e6:,.1f} MB" for r in rows) + " |")
    if "cache bytes/image" in rows[0]:
        print("| cache bytes per image | " + " | ".join(f"{r['cache bytes/image']:,.0f}" for r in rows) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000])
    parser.add_argument("--width", type=int, default=WIDTH, help="Vector width of the tiny backbone (2048: the "
                        "figures of the segmented-cache release).")
    parser.add_argument("--dtype", default="float32", help="How the cache stores vectors (float16 halves them).")
    parser.add_argument("--work", type=Path, default=None,
                        help="Keep images (and the backbone) here; a later run reuses them (default: a temporary folder).")
    parser.add_argument("--phases", nargs="+", default=list(PHASES), choices=PHASES, metavar="PHASE",
                        help=f"Which phases to run (default all: {', '.join(PHASES)}); without 'first embed' the "
                             "cache of an earlier run in --work is reused.")
    parser.add_argument("--repeat", type=int, default=0,
                        help="Then add 200 images to every size K times, interleaved (medians, ratio).")
    parser.add_argument("--json", action="store_true", help="Also print every row as JSON.")
    for hidden in ("--phase", "--data", "--cache", "--model", "--out"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        run_phase(args.phase, args.data, args.cache, args.model, args.out, args.dtype)
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="featx-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    model = tiny_backbone(work / f"tiny{args.width}.keras", args.width)
    rows = []
    for n in args.sizes:
        print(f"{n:,} images", flush=True)
        rows.append(measure(n, work, model, args.phases, args.width, args.dtype))
        if args.json:
            print(json.dumps(rows[-1]), flush=True)
    table(rows)
    if args.repeat:
        medians = interleaved_adds(args.sizes, work, model, args.repeat, args.width, args.dtype)
        print(f"\nadd 200 new images, median of {args.repeat} interleaved rounds: "
              + ", ".join(f"{n:,} images {t:.2f} s" for n, t in medians.items()))
        for n in args.sizes[1:]:
            print(f"  {n:,} vs {args.sizes[0]:,}: {medians[n] / medians[args.sizes[0]]:.2f}x")


if __name__ == "__main__":
    main()
