"""Writing a cache's index file: attributes, classes, the segment and part tables, and virtual
datasets over the segments and parts (featx.cache.store reads it)."""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np

from featx.cache.atomic import atomic_file
from featx.cache.parts import TableLayout, write_layout
from featx.cache.schema import stamp
from featx.cache.segments import write_virtual
from featx.cache.tables import ID_DTYPE, STR, SegmentTable, SkipTable


def write_index(
    path: Path,
    *,
    attrs: dict[str, object],
    classes: list[str],
    images: TableLayout,
    skipped: SkipTable,
    segments: SegmentTable,
    feature_dim: int,
    dtype: str,
) -> None:
    """Replace the index file at ``path`` atomically; it lists ``segments`` and the image table's
    parts (both already committed: :func:`featx.cache.parts.layout_table`).

    The index is built in memory, then written as plain bytes: a full disk or an I/O error is then
    a plain OSError (one line, the temporary removed, the committed index untouched), never HDF5
    failing inside its own write, which can leave the process crashing at exit. It holds no
    per-image or per-vector data of its own: ``/vectors`` and ``/images`` are virtual datasets over
    the segments and parts, so its size follows the number of files, not of images.
    """
    image = io.BytesIO()
    with h5py.File(image, "w") as h5:
        for key, value in {**attrs, "feature_dim": feature_dim, "dtype": dtype}.items():
            if not key.startswith("encoding-"):
                h5.attrs[key] = value
        stamp(h5)
        h5.create_dataset("classes", data=np.asarray(classes, dtype=object), dtype=STR)
        group = h5.create_group("vectors")
        stamp(group)
        whole = [(name, "id", int(rows), 0, int(rows)) for name, rows in zip(segments.name, segments.rows)]
        write_virtual(group, "id", path, whole, ID_DTYPE)
        write_virtual(group, "features", path, ((name, "features", *rest) for name, _, *rest in whole), dtype,
                      feature_dim, fillvalue=np.nan)  # a missing segment reads as NaN
        write_layout(h5, path, images)
        for name, table in (("skipped", skipped), ("segments", segments)):
            group = h5.create_group(name)
            stamp(group)
            table.write(group)
    with atomic_file(path, before_rename="index-written") as tmp:
        tmp.write_bytes(image.getbuffer())
