"""The images behind a head's split, as a tf.data pipeline for fine-tuning.

Images are found through the content ids the head recorded for each split: in the dataset its
cache was built from, or in another folder (``--data``) holding the same files. Every image goes
through ``featx.images.load_image``, exactly as embed and predict read it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featx.config import EmbedConfig
from featx.datasets import SPLITS
from featx.errors import FeatxError

AUGMENT_MARGIN = 1.125  # training images are read this much larger, then randomly cropped


@dataclass(frozen=True)
class SplitImages:
    """Files and their class indices (into the head's classes) of one split."""

    paths: tuple[str, ...]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)


def split_images(head, data: str | os.PathLike | None = None) -> dict[str, SplitImages]:
    """The head's train/val/test images, found by content id in its cache's dataset or ``data``."""
    if data is None:
        paths, ids, labels = _from_cache(head)
    else:
        paths, ids, labels = _from_folder(head, data)
    row_of = {content_id: row for row, content_id in enumerate(ids)}
    result = {}
    for name in SPLITS:
        rows = [row_of[i] for i in head.split.get(name, []) if i in row_of]
        rows = [r for r in rows if labels[r] >= 0]
        result[name] = SplitImages(tuple(paths[r] for r in rows), np.asarray([labels[r] for r in rows], np.int64))
    missing = len(head.split.get("train", [])) - len(result["train"])
    if missing and len(result["train"]) == 0:
        raise FeatxError(
            f"none of the {missing} training images of head {head.name} were found; set {{param}} to the folder "
            "that holds them.", param="data",
        )
    return result


def _from_cache(head):
    from featx.features import load_features

    if not head.cache_path or not Path(head.cache_path).exists():
        raise FeatxError(f"the cache head {head.name} was fitted on is gone ({head.cache_path}); set {{param}} to "
                         "the folder of its images.", param="data")
    features = load_features(head.cache_path)
    return list(features.paths), list(features.ids), head.class_indices(features)


def _from_folder(head, data):
    from featx.datasets import scan_dataset
    from featx.fileindex import index_files
    from featx.options import default_workers

    dataset = scan_dataset(data)
    table, _ = index_files(dataset.root, dataset.records, None, default_workers())
    lookup = {name: i for i, name in enumerate(head.classes)}
    labels = [lookup.get(dataset.classes[label], -1) if label >= 0 else -1 for label in table.label]
    paths = [str(dataset.root / p) for p in table.path]
    return paths, [i.decode() for i in table.id.tolist()], labels


def image_dataset(images: SplitImages, config: EmbedConfig, batch_size: int, *, shuffle: bool, augment: bool,
                  seed: int = 0):
    """A tf.data pipeline of (image batch, labels); decoding runs in threads, ahead of training."""
    from featx._tf import import_keras
    from featx.options import default_workers
    from featx.streaming import decode_stream

    tf, _ = import_keras()
    size = config.input_size
    load_size = round(size * AUGMENT_MARGIN) if augment else size
    epoch = iter(range(1 << 30))

    def generate():
        order = np.arange(len(images))
        if shuffle:
            np.random.default_rng(seed + next(epoch)).shuffle(order)
        items = ((int(i), Path(images.paths[i])) for i in order)
        for index, pixels in decode_stream(items, load_size, config.resize, default_workers(), ahead=2 * batch_size):
            if isinstance(pixels, Exception):
                raise FeatxError(f"{images.paths[index]}: {pixels}")
            yield pixels, images.labels[index]

    spec = (tf.TensorSpec((load_size, load_size, 3), tf.float32), tf.TensorSpec((), tf.int64))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=spec)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(images)))
    if augment:
        def jitter(image, label):
            image = tf.image.random_crop(image, (size, size, 3), seed=seed)
            return tf.image.random_flip_left_right(image, seed=seed), label

        dataset = dataset.map(jitter)
    return dataset.batch(batch_size).prefetch(2)
