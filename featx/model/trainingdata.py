"""The images behind a head's split, as a Keras ``PyDataset`` for fine-tuning on any backend.

Images are found through the content ids the head recorded for each split: in the dataset its
cache was built from, or in another folder (``--data``) holding the same files. Every image goes
through ``featx.backbones.hub_pipeline.load_model_input``, exactly as embed and predict read it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featx.backbones.hub_pipeline import load_model_input
from featx.config import EmbedConfig
from featx.data.augment import augment_image
from featx.data.records import SPLITS
from featx.errors import FeatxError


@dataclass(frozen=True)
class SplitImages:
    """Files, their class indices (into the head's classes) and content ids, of one split."""

    paths: tuple[str, ...]
    labels: np.ndarray
    ids: tuple[str, ...] = ()

    def subset(self, rows: np.ndarray) -> SplitImages:
        """The images at positions ``rows``."""
        return SplitImages(tuple(self.paths[r] for r in rows), self.labels[rows],
                           tuple(self.ids[r] for r in rows) if self.ids else ())

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
        result[name] = SplitImages(tuple(paths[r] for r in rows), np.asarray([labels[r] for r in rows], np.int64),
                                   tuple(ids[r] for r in rows))
    missing = len(head.split.get("train", [])) - len(result["train"])
    if missing and len(result["train"]) == 0:
        raise FeatxError(
            f"none of the {missing} training images of head {head.name} were found; set {{param}} to the folder "
            "that holds them.", param="data",
        )
    return result


def _from_cache(head):
    from featx.features.vectors import load_features

    if not head.cache_path or not Path(head.cache_path).exists():
        raise FeatxError(f"the cache head {head.name} was fitted on is gone ({head.cache_path}); set {{param}} to "
                         "the folder of its images.", param="data")
    features = load_features(head.cache_path)
    return list(features.paths), list(features.ids), head.class_indices(features)


def _from_folder(head, data):
    from featx.data.layouts import scan_dataset
    from featx.engine.fileindex import index_files
    from featx.options import default_workers

    dataset = scan_dataset(data)
    table, _, _ = index_files(dataset.root, dataset.records, None, default_workers())
    lookup = {name: i for i, name in enumerate(head.classes)}
    labels = [lookup.get(dataset.classes[label], -1) if label >= 0 else -1 for label in table.label]
    paths = [str(dataset.root / p) for p in table.path]
    return paths, [i.decode() for i in table.id.tolist()], labels


def image_dataset(images: SplitImages, config: EmbedConfig, batch_size: int, *, shuffle: bool, augment: str = "",
                  seed: int = 0, one_hot: int = 0):
    """A Keras ``PyDataset`` of (image batch, labels) on any backend (no tf.data, no TensorFlow).

    Batches decode in threads, ahead of training; each epoch's order and augmentation (the recipe
    ``augment``, as :func:`featx.data.augment.augment_image` applies it to views; ``""`` for none)
    come from ``seed``, the epoch and the batch. ``one_hot=K`` gives the labels as (batch, K) one-hot
    rows (for a loss with label smoothing) instead of class indices.
    """
    from featx.backend import import_keras
    from featx.options import default_workers

    keras = import_keras()
    size = config.input_size

    class ImageBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=default_workers(), use_multiprocessing=False, max_queue_size=2)
            self.epoch = 0
            self.order = self._order()
            self.labels = images.labels  # in order when not shuffled: what predictions are scored against

        def _order(self) -> np.ndarray:
            order = np.arange(len(images))
            if shuffle:
                np.random.default_rng(seed + self.epoch).shuffle(order)
            return order

        def __len__(self) -> int:
            return -(-len(images) // batch_size)

        def __getitem__(self, index: int):
            rows = self.order[index * batch_size:(index + 1) * batch_size]
            batch = np.stack([self._load(int(row)) for row in rows])
            if augment:
                rng = np.random.default_rng([seed, self.epoch, index])
                batch = np.stack([augment_image(image, augment, rng) for image in batch]).astype(np.float32, copy=False)
            labels = images.labels[rows]
            return batch, (np.eye(one_hot, dtype=np.float32)[labels] if one_hot else labels)

        def _load(self, row: int) -> np.ndarray:
            try:
                return load_model_input(images.paths[row], size, config.resize, jpeg_draft=config.jpeg_draft)
            except (OSError, ValueError) as exc:
                raise FeatxError(f"{images.paths[row]}: {exc}") from None

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self.order = self._order()

    return ImageBatches()
