"""`Head`: a fitted estimator together with what it was fitted on.

The estimator's labels are indices into ``classes``; the backbone configuration (``config``,
``sources``, ``fingerprint``) says which feature vectors it understands, and ``split`` which
images (by content id) it was trained, validated and tested on. ``save`` writes it in the format
of :mod:`featx.heads.headfile`; :func:`featx.heads.store.load_head` reads it back.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featx.cache.locate import cache_folder
from featx.config import EmbedConfig
from featx.data.records import SPLITS
from featx.errors import FeatxError
from featx.features.fusion import SEPARATOR, display_name, is_fused, part_configs
from featx.features.vectors import Features
from featx.heads.headfile import recover_head_folder, write_head_folder
from featx.heads.registry import get_head_spec

HEADS_FOLDER = "heads"  # saved heads live in <cache folder>/heads/<folder>

IDENTITY_FIELDS = ("backbone", "weights", "input_size", "resize", "pooling", "preprocessing")


@dataclass(eq=False)
class Head:
    """A fitted head: ``predict``/``predict_proba`` on feature vectors, ``save`` to a folder.

    ``name`` is fixed when the head is fitted (``<kind>-<backbone>``) and travels with it; saving
    does not change it. ``path`` is where the head was last saved or loaded from (None before):
    its folder name is what the CLI and :func:`~featx.heads.store.load_head` take to find it.
    """

    kind: str  # the registry name: "logreg", "svm", "sgd", "knn", "keras"
    estimator: object  # fitted scikit-learn estimator; labels are indices into `classes`
    params: dict
    classes: tuple[str, ...]
    config: dict
    sources: dict
    fingerprint: str
    feature_dim: int
    split: dict = field(default_factory=dict)  # method, test_size, seed, and ids per split
    metrics: dict = field(default_factory=dict)  # split name -> {n, accuracy, macro_f1}
    fit_seconds: float = 0.0
    cache_path: str | None = None
    featx_version: str = ""
    created: str = ""
    path: Path | None = None  # where it was last saved or loaded from
    name: str = ""  # fixed at fit time; "" means the default, <kind>-<backbone>
    # The augmented views it also trained on (featx.engine.views): views_per_image, augment, fingerprint,
    # cache, rows, images; {} when none.
    views: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            self.name = f"{self.kind}-{self.backbone_name}"

    @property
    def history(self) -> dict[str, list[float]] | None:
        """Per-epoch training curves (Keras head only)."""
        return getattr(self.estimator, "history_", None)

    @property
    def backbone_name(self) -> str:
        return display_name(self.config, self.sources, self.fingerprint)

    @property
    def is_fused(self) -> bool:
        """Fitted on the vectors of several backbones side by side (:mod:`featx.features.fusion`)."""
        return is_fused(self.config)

    def embed_config(self) -> EmbedConfig:
        """The backbone configuration to embed new images with, exactly as for training.

        A fused head has one per part (:meth:`embed_configs`); it has no single backbone to put under
        it for fine-tuning and export, which refuse it here with one line.
        """
        if self.is_fused:
            raise FeatxError(
                f"head {self.name} was fitted on the fused vectors of {self.backbone_name}; fine-tune and export "
                "need a head of one backbone: featx fit-head --backbone "
                f"{self.backbone_name.split(SEPARATOR)[0]}"
            )
        return EmbedConfig.from_record(self.config, self.sources, self.fingerprint)

    def embed_configs(self) -> list[EmbedConfig]:
        """The backbone configuration of each part of the head's vectors, in order (one unless fused)."""
        return part_configs(self.config, self.sources) if self.is_fused else [self.embed_config()]

    def predict_proba(self, X) -> np.ndarray:
        """(n, len(classes)) probabilities; a class absent from training gets 0."""
        X = self._check_vectors(X)
        proba = np.zeros((len(X), len(self.classes)))
        proba[:, np.asarray(self.estimator.classes_, dtype=np.int64)] = get_head_spec(self.kind).predict_proba(
            self.estimator, X)
        return proba

    def predict(self, X) -> np.ndarray:
        """The most probable class name of each row."""
        return np.asarray(self.classes, dtype=object)[np.argmax(self.predict_proba(X), axis=1)]

    def _check_vectors(self, X) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.feature_dim:
            raise FeatxError(
                f"head {self.name} takes {self.feature_dim}-dimensional feature vectors; "
                f"got an array of shape {X.shape}."
            )
        return X

    def check_compatible(self, features: Features) -> None:
        """Refuse features of another backbone configuration than the head was fitted on."""
        if features.fingerprint == self.fingerprint:
            return
        where = features.cache_path or "the features"
        if self.is_fused or is_fused(features.config):
            raise FeatxError(
                f"head {self.name} was fitted on {self.backbone_name} vectors; {where} holds "
                f"{display_name(features.config, features.sources)} vectors. Evaluate a fused head on the caches it "
                "was fitted on (no --cache), or fit a new head."
            )
        diffs = [f"{key} {self.config.get(key)!r} vs {features.config.get(key)!r}" for key in IDENTITY_FIELDS
                 if self.config.get(key) != features.config.get(key)]
        raise FeatxError(
            f"head {self.name} was fitted on features of another backbone configuration than {where} "
            f"({'; '.join(diffs) or 'fingerprint ' + self.fingerprint + ' vs ' + features.fingerprint}). "
            f"Embed the images with the head's configuration or fit a new head on this cache."
        )

    def class_indices(self, features: Features) -> np.ndarray:
        """``features.y`` translated into this head's class indices (-1 stays unlabelled)."""
        if tuple(features.classes) == self.classes:
            return features.y
        unknown = sorted(set(features.classes) - set(self.classes))
        used = set(features.y[features.y >= 0].tolist())
        unknown = [c for c in unknown if features.classes.index(c) in used]
        if unknown:
            raise FeatxError(
                f"{features.cache_path} has classes head {self.name} does not know: {', '.join(unknown)} "
                f"(the head knows {', '.join(self.classes)})."
            )
        lookup = np.asarray([self.classes.index(c) if c in self.classes else -1 for c in features.classes] + [-1])
        return lookup[features.y]  # y == -1 picks the trailing -1

    def summary(self) -> str:
        """One line: the best held-out score and the fit time."""
        name = next((s for s in reversed(SPLITS) if s in self.metrics), None)  # the most held-out
        if name is None:
            return f"{self.kind} head, fitted in {self.fit_seconds:.2f} s"
        m = self.metrics[name]
        return (f"{name} accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f} on {m['n']} images; "
                f"fitted in {self.fit_seconds:.2f} s")

    def describe(self) -> dict:
        """What a head is, for ``--json`` and listings (no split ids)."""
        return {
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "head": self.kind,
            "params": self.params,
            "classes": list(self.classes),
            "backbone": self.config.get("backbone") or self.backbone_name,
            "config": self.config,
            "fingerprint": self.fingerprint,
            "feature_dim": self.feature_dim,
            "split": {k: (len(v) if isinstance(v, list) else v) for k, v in self.split.items()},
            "metrics": self.metrics,
            "fit_seconds": round(self.fit_seconds, 4),
            "views": self.views,
            "cache": self.cache_path,
            "featx_version": self.featx_version,
            "created": self.created,
        }

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the head to the folder ``path`` (replacing a head saved there) and return it.

        The default folder is ``<cache folder>/heads/<name>``, numbered ``-2``, ``-3``... when
        taken, where the cache folder is that of the cache the head was fitted on. ``path`` is
        recorded in :attr:`path`; :attr:`name` stays as it is.
        """
        path = Path(path) if path is not None else self._free_folder()
        write_head_folder(path, self.estimator, self.record())
        self.path = path
        return path

    def record(self) -> dict:
        """What ``head.json`` holds besides the format fields: everything but the estimator."""
        described = self.describe()
        return {**{k: v for k, v in described.items() if k not in ("path", "backbone", "split")},
                "sources": self.sources, "split": self.split}

    def _free_folder(self) -> Path:
        parent = (Path(self.cache_path).parent if self.cache_path else cache_folder()) / HEADS_FOLDER
        stem = re.sub(r"[^A-Za-z0-9_.+-]+", "_", self.name)
        path, n = parent / stem, 1
        recover_head_folder(path)  # a head that a killed replace left aside is back, so its name is taken
        while path.exists():
            n += 1
            path = parent / f"{stem}-{n}"
            recover_head_folder(path)
        return path
