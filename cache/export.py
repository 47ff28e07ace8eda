"""A cache out to the rest of the ecosystem: id, path, label, split and vector per image file,
streamed in chunks (memory holds one chunk, whatever the size of the cache).

``parquet``: one file, a vector column of fixed-size float32 lists (pandas, polars, DuckDB, Spark,
vector databases). ``npy``: a folder with ``vectors.npy`` (N×D float32, written through a memory map)
and ``rows.csv`` (id, path, label, split, in the same order).
"""

from __future__ import annotations

import csv
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from featx.cache.damage import unusable_vectors
from featx.cache.outputs import check_outputs
from featx.cache.store import CacheIndex, read_vectors, usable_rows, vector_rows
from featx.errors import MissingDependencyError, OptionError

EXPORT_FORMATS = ("parquet", "npy")
COLUMNS = ("id", "path", "label", "split")
NPY_FILES = ("vectors.npy", "rows.csv")  # what an npy export writes in its folder


def export_cache(cache: str | os.PathLike, out: str | os.PathLike, *, format: str = "parquet",
                 chunk_rows: int = 8192, force: bool = False) -> int:
    """Write every embedded image of ``cache`` to ``out`` as ``format``; returns the rows written.
    An ``npy`` folder that already holds ``vectors.npy`` or ``rows.csv`` is refused unless ``force``."""
    if format not in EXPORT_FORMATS:
        raise OptionError(f"{{param}} must be one of {', '.join(EXPORT_FORMATS)}; got {format!r}.", param="format")
    if format == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise MissingDependencyError('{param} parquet needs pyarrow, not installed: pip install "featx[parquet]", or '
                                     "export with {param} npy, which needs nothing more.", param="format")
    check_outputs({"out": out}, inputs={"cache": cache}, writes={"out": NPY_FILES if format == "npy" else ()},
                  force=force)
    index = CacheIndex.read(cache)
    out = Path(out)
    made = [p for p in ([out] if format == "parquet" else [out / name for name in NPY_FILES]) if not p.exists()]
    try:
        return (_parquet if format == "parquet" else _npy)(index, out, chunk_rows)
    except BaseException:  # a failed export leaves none of the files it started
        for path in made:
            path.unlink(missing_ok=True)
        raise


def _chunks(index: CacheIndex, chunk_rows: int) -> Iterator[tuple[dict[str, list], np.ndarray]]:
    """(columns, float32 vectors) of the images that have a vector, ``chunk_rows`` at a time."""
    rows = vector_rows(index)
    present = np.flatnonzero(rows >= 0)
    root = str(index.attrs.get("root", ""))
    images, classes = index.images, list(index.classes)
    for start in range(0, len(present), chunk_rows):
        take = present[start : start + chunk_rows]
        columns = {
            "id": [images.id[i].decode() for i in take],
            "path": [os.path.join(root, images.path[i]) for i in take],
            "label": [classes[images.label[i]] if images.label[i] >= 0 else "" for i in take],
            "split": [str(images.split[i]) for i in take],
        }
        X = read_vectors(index, rows[take])
        if not usable_rows(X).all():  # never exported, as never trained on
            raise unusable_vectors(index.path)
        yield columns, X


def _parquet(index: CacheIndex, out: Path, chunk_rows: int) -> int:
    import pyarrow as pa  # export_cache checked it is installed
    import pyarrow.parquet as pq

    width = int(index.attrs.get("feature_dim", 0))
    schema = pa.schema([*(pa.field(c, pa.string()) for c in COLUMNS), pa.field("vector", pa.list_(pa.float32(), width))])
    total = 0
    with pq.ParquetWriter(out, schema) as writer:
        for columns, X in _chunks(index, chunk_rows):
            vector = pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1), pa.float32()), width)
            writer.write_table(pa.table([*(pa.array(columns[c], pa.string()) for c in COLUMNS), vector], schema=schema))
            total += len(X)
    return total


def _npy(index: CacheIndex, out: Path, chunk_rows: int) -> int:
    out.mkdir(parents=True, exist_ok=True)
    known = set(index.vector_ids.tolist())
    count = sum(1 for i in index.images.id.tolist() if i in known)
    vectors = np.lib.format.open_memmap(out / "vectors.npy", mode="w+", dtype=np.float32,
                                        shape=(count, int(index.attrs.get("feature_dim", 0))))
    total = 0
    with open(out / "rows.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for columns, X in _chunks(index, chunk_rows):
            writer.writerows(zip(*(columns[c] for c in COLUMNS)))
            vectors[total : total + len(X)] = X
            total += len(X)
    vectors.flush()
    del vectors
    return total
