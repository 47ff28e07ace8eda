"""What a search asks for, as vectors: image files, paths listed in the cache, content ids.

An image file whose bytes the cache holds is not embedded again: its cached vector is the query.
Any other file is embedded with the cache's exact backbone configuration, through that
configuration's cache of loose files (:func:`featx.engine.files.embed_files`), so asking twice
embeds it once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featx.cache.store import read_vectors
from featx.checks import check_path
from featx.config import sha256_file
from featx.errors import ImageDecodeError, MissingFileError
from featx.options import RunOptions
from featx.search.images import CachedImages

_CONTENT_ID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Query:
    """One query as a vector; ``path`` is the cached image it names, left out of its own hits."""

    text: str
    vector: np.ndarray
    path: str | None = None


def image_queries(images: CachedImages, queries: list, *, cache_dir: str | os.PathLike | None = None,
                  run: RunOptions = RunOptions()) -> list[Query]:
    """``queries`` (image files, paths the cache lists, content ids) as vectors of the cache's configuration."""
    index = images.index
    row_of = {vid: row for row, vid in enumerate(index.vector_ids.tolist())}
    found: dict[int, tuple[str, int, str | None]] = {}  # query -> (text, vector row, path)
    to_embed: dict[int, Path] = {}
    for i, query in enumerate(queries):
        check_path("queries", query)
        text = os.fspath(query)
        path = Path(text)
        if path.is_file():
            row = row_of.get(sha256_file(path).encode())
            if row is None:
                to_embed[i] = path
            else:
                found[i] = (text, row, os.path.abspath(path))
            continue
        image = images.row_of_path(os.path.abspath(text))
        if image is not None:
            found[i] = (text, int(images.vector_row[image]), os.path.abspath(text))
        elif _CONTENT_ID.fullmatch(text) and text.encode() in row_of:
            found[i] = (text, row_of[text.encode()], None)
        else:
            raise MissingFileError(f"{{param}} {text!r} is not an image file, a path listed in {index.path} or a "
                                   "content id of it; give an image file or a cached path.", param="queries")
    vectors = read_vectors(index, np.asarray([row for _, row, _ in found.values()], np.int64))
    out: dict[int, Query] = {i: Query(text, vector, path) for (i, (text, _, path)), vector
                             in zip(found.items(), vectors)}
    if to_embed:
        out.update(_embedded(images, to_embed, cache_dir, run))
    return [out[i] for i in range(len(queries))]


def _embedded(images: CachedImages, files: dict[int, Path], cache_dir, run: RunOptions) -> dict[int, Query]:
    """Queries of files the cache does not hold, embedded under its configuration."""
    from featx.engine.files import embed_files

    config = images.features.embed_config()
    folder = cache_dir if cache_dir is not None else Path(str(images.index.path)).parent
    done = embed_files(list(files.values()), config, run, cache=folder)
    if done.skipped:
        bad = done.skipped[0]
        raise ImageDecodeError(f"{{param}} {bad.path} could not be embedded ({bad.reason}); give an image file.",
                               param="queries")
    return {i: Query(os.fspath(path), vector, None) for (i, path), vector in zip(files.items(), done.X)}


def text_queries(images: CachedImages, texts: list[str], text_model=None) -> list[Query]:
    """Sentences as vectors of the text tower of the cache's CLIP or SigLIP snapshot or keras-hub preset
    (or ``text_model``)."""
    from featx.backbones.text_tower import has_text_tower, load_text_tower
    from featx.errors import OptionError

    folder = text_model or (images.features.sources or {}).get("model_path")
    if text_model is None and not has_text_tower(folder):
        backbone = images.features.config.get("backbone")
        raise OptionError(f"{{param}}: {images.index.path} holds image vectors of {backbone}, which has no text "
                          "tower; search by text needs a cache of a CLIP or SigLIP snapshot folder or keras-hub preset "
                          "(or give its folder as text_model).", param="text")
    for text in texts:
        if not isinstance(text, str) or not text.strip():
            raise OptionError(f"{{param}} holds {text!r:.40}; give sentences to search for.", param="text")
    tower = load_text_tower(folder)
    vectors = tower.encode(texts)
    if vectors.shape[1] != images.features.feature_dim:
        raise OptionError(f"{{param}}: {folder}'s text vectors are {vectors.shape[1]} wide, the cache's image "
                          f"vectors {images.features.feature_dim}: they are not this model's image features.",
                          param="text_model")
    return [Query(text, vector) for text, vector in zip(texts, vectors)]
