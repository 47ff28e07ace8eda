"""Heads: classifiers trained in seconds on cached feature vectors.

``list_heads()`` names them (one registry, :mod:`featx.heads.registry`, says everything about each
kind), ``make_head(name, **params)`` builds an unfitted scikit-learn estimator (for ``Pipeline``,
``cross_val_score``, ``GridSearchCV``), ``fit_head(features, name)`` fits one on a cache's split
and returns a :class:`Head` that ``save``s and ``load_head`` reads back safely, by folder or by
name. Nothing here imports TensorFlow except fitting the Keras head, embedding images and turning
a head into Keras layers (:mod:`featx.heads.layers`).
"""

from __future__ import annotations

from featx.heads.evaluate import Evaluation, evaluate_head
from featx.heads.fit import compare_heads, fit_head
from featx.heads.head import Head
from featx.heads.keras_head import KerasHead
from featx.heads.predict import Predictions, predict_images
from featx.heads.registry import HEADS, HeadSpec, get_head_spec, list_heads, make_head
from featx.heads.split import Split, split_features
from featx.heads.store import find_heads, load_head, save_head

__all__ = [
    "HEADS",
    "Evaluation",
    "Head",
    "HeadSpec",
    "KerasHead",
    "Predictions",
    "Split",
    "compare_heads",
    "evaluate_head",
    "find_heads",
    "fit_head",
    "get_head_spec",
    "list_heads",
    "load_head",
    "make_head",
    "predict_images",
    "save_head",
    "split_features",
]
