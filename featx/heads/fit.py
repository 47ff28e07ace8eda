"""Fitting heads on cached feature vectors, and comparing several heads and backbones."""

from __future__ import annotations

import inspect
import os
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

import numpy as np

from featx._versions import featx_version
from featx.cache.damage import unusable_vectors
from featx.checks import check_path, check_seed
from featx.data.records import SPLITS
from featx.errors import FeatxError, MemoryUseWarning, OptionError, OptionTypeError, SlowFitWarning
from featx.features.fusion import cache_label, display_name
from featx.features.vectors import Features, LazyVectors, content_ids, count_unusable, load_features
from featx.features.views import Views
from featx.heads.augmented import fit_inputs_with_views, resolve_views
from featx.heads.cost import TRAIN_SCORE_ROWS, long_fit_message
from featx.heads.evaluate import summary_scores
from featx.heads.head import Head
from featx.heads.registry import HeadSpec, get_head_spec, list_heads
from featx.heads.split import check_test_size, split_features
from featx.options import physical_memory

CLASS_WEIGHTS = ("balanced", "none")  # the class_weight values a head takes by name (or None)
STREAM_BATCH = 8192  # rows per mini-batch of a head that streams a lazy cache
RAM_SHARE = 0.25  # loading more than this share of the machine's RAM warns (MemoryUseWarning)


def as_features(features: Features | str | os.PathLike) -> Features:
    """Features as given, or a cache's read lazily (its vectors stay on disk until a head asks)."""
    if isinstance(features, Features):
        return features
    check_path("features", features)
    return load_features(features, lazy=True)


def in_memory(features: Features, head: str, note: Callable[[str], None] | None = None) -> Features:
    """``features`` with every vector in memory; a lazy X is announced first (``note``, and a
    :class:`MemoryUseWarning` above a quarter of the RAM), then read."""
    X = features.X
    if not isinstance(X, LazyVectors):
        return features
    message = f"loading {len(X)} vectors ({X.nbytes / 1e6:.1f} MB) into memory for the {head} head"
    if note is not None:
        note(message)
    ram = physical_memory()
    if ram and X.nbytes > RAM_SHARE * ram:
        warnings.warn(f"{message}: more than {RAM_SHARE:.0%} of this machine's {ram / 1e9:.1f} GB of RAM; "
                      "the sgd head trains in mini-batches instead.", MemoryUseWarning, stacklevel=3)
    vectors = np.asarray(X)
    bad = count_unusable(vectors)
    if bad:  # never train on them (a lazy read leaves this check to its reader): re-embedding repairs them
        raise unusable_vectors(features.cache_path or "these features", bad)
    return features.replaced(X=vectors)


def check_class_weight(class_weight: str | None) -> str | None:
    """``"balanced"`` weighs classes inversely to their frequency; ``None`` (or ``"none"``) does not."""
    if class_weight is None or str(class_weight).lower() == "none":
        return None
    if str(class_weight).lower() != "balanced":
        raise OptionError(f"{{param}} must be 'balanced' or 'none'; got {class_weight!r}.", param="class_weight")
    return "balanced"


def head_params(spec: HeadSpec, params: dict, *, seed: int, class_weight: str | None = None,
                features: Features | None = None) -> dict:
    """The parameters a head is built with: ``params``, plus ``class_weight``, a seeded ``random_state``
    and what the head takes from the ``features`` it is fitted on (its registry entry's ``context``)."""
    params = dict(params)
    spec.check_params(params)
    accepted = spec.defaults()
    class_weight = check_class_weight(class_weight)
    if class_weight is not None:
        if "class_weight" not in accepted:
            raise OptionError(f"the {spec.name} head does not take class weights; drop {{param}}.", param="class_weight")
        params["class_weight"] = class_weight
    if "random_state" in accepted and "random_state" not in params:
        params["random_state"] = seed
    if spec.context is not None and features is not None:
        params = {**spec.context(features), **params}
    return params


def fit_head(features: Features | str | os.PathLike, head: str = "logreg", *, test_size: float = 0.2,
             seed: int = 0, class_weight: str | None = None, views: bool | Views = False,
             augment: str | None = None, note: Callable[[str], None] | None = None, **params) -> Head:
    """Fit head ``head`` (see :func:`list_heads`) on cached features; ``params`` are its parameters.

    Trains on the cache's train split (or a stratified hold-out of ``1 - test_size``, drawn with
    ``seed``), validates the Keras head on the val split (or a stratified part of train), and
    records the split, the metrics and the backbone configuration in the returned :class:`Head`,
    named ``<head>-<backbone>``. ``class_weight="balanced"`` weighs rare classes up.

    ``views=True`` also trains on the cached augmented views of the training images (``featx embed
    --views K``; ``augment="crop,jitter"`` picks the recipe when several were embedded; or pass
    :class:`~featx.features.views.Views`); validation and test scores stay on plain vectors.

    A cache path is read lazily: a head that streams (``sgd``) trains in mini-batches and never
    holds all vectors; any other first says how much it loads (``note(line)``, and a
    :class:`~featx.errors.MemoryUseWarning` above a quarter of the RAM).

    >>> head = fit_head(features, head="svm", C=10)  # doctest: +SKIP
    """
    check_seed("seed", seed)
    check_test_size(test_size)
    features = as_features(features)
    spec = get_head_spec(head, param="head")
    chosen_views = resolve_views(features, views, augment, note)
    if not spec.streams or chosen_views is not None:
        features = in_memory(features, spec.name, note)
    params = head_params(spec, params, seed=seed, class_weight=class_weight, features=features)
    estimator = spec.make(**params)
    takes_validation = "validation_data" in inspect.signature(estimator.fit).parameters
    val_fraction = params.get("validation_fraction", spec.defaults().get("validation_fraction")) if takes_validation else None
    split = split_features(features, test_size=test_size, seed=seed, val_fraction=val_fraction)
    X, y = features.X, features.y
    if len(np.unique(y[split.train])) < 2:
        raise FeatxError(f"the training split of {features.cache_path} holds a single class; a head needs two or more.")
    neighbours = params.get("n_neighbors")
    if isinstance(neighbours, int) and neighbours > len(split.train):
        raise OptionError(f"n_neighbors={neighbours} of the {spec.name} head is more than the {len(split.train)} "
                          f"vectors it trains on; give at most {len(split.train)}.", param="n_neighbors")

    trained = len(split.train) * (1 + (chosen_views.count if chosen_views is not None else 0))
    announce_cost(spec, params, trained, features.feature_dim, len(np.unique(y[split.train])), note)
    fit_kwargs = {"validation_data": (X[split.val], y[split.val])} if takes_validation and len(split.val) else {}
    used_views: dict = {}
    if isinstance(X, LazyVectors):
        seconds = _timed_fit(spec, estimator, X[split.train], y[split.train], stream_seed=seed)
    elif chosen_views is not None:
        X_train, y_train, fit_kwargs, used_views = fit_inputs_with_views(
            features, split.train, chosen_views, estimator, seed=seed, validation=split.val, note=note)
        seconds = _timed_fit(spec, estimator, X_train, y_train, **fit_kwargs)
    else:
        seconds = _timed_fit(spec, estimator, X[split.train], y[split.train], **fit_kwargs)
    fitted = Head(
        kind=spec.name, estimator=estimator, params=params, classes=tuple(features.classes),
        config=dict(features.config), sources=dict(features.sources), fingerprint=features.fingerprint,
        feature_dim=features.feature_dim, split=split.record(features), fit_seconds=seconds,
        cache_path=str(os.path.abspath(features.cache_path)) if features.cache_path else None,
        featx_version=featx_version(), created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        views=used_views,
    )
    fitted.metrics = {name: _scores(fitted, X, y, split.rows(name), seed, name == "train")
                      for name in SPLITS if len(split.rows(name))}
    return fitted


def _scores(head: Head, X, y: np.ndarray, rows: np.ndarray, seed: int, sample: bool) -> dict:
    """``summary_scores`` of ``rows``; with ``sample``, of at most TRAIN_SCORE_ROWS of them drawn with
    ``seed`` (``sampled_from`` says of how many): train scores only show over-fitting, and scoring
    every training row would cost knn the square of the training set."""
    total = len(rows)
    if sample and total > TRAIN_SCORE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, TRAIN_SCORE_ROWS, replace=False))
    scores = summary_scores(y[rows], _proba(head, X[rows]))
    return scores if len(rows) == total else {**scores, "sampled_from": total}


def announce_cost(spec: HeadSpec, params: dict, n: int, d: int, k: int, note: Callable[[str], None] | None,
                  times: int = 1) -> None:
    """Say before a fit that it may take long (``note(line)``, else a :class:`SlowFitWarning`), from
    the registry's estimate for ``times`` fits on ``n`` x ``d`` vectors of ``k`` classes."""
    message = long_fit_message(spec.name, n, d, times * spec.estimate_seconds(n, d, k, params))
    if message is None:
        return
    if note is not None:
        note(message)
    else:
        warnings.warn(message, SlowFitWarning, stacklevel=3)


def _proba(head: Head, X) -> np.ndarray:
    if not isinstance(X, LazyVectors):
        return head.predict_proba(X)
    return np.concatenate([head.predict_proba(batch) for batch in X.batches(STREAM_BATCH)] or
                          [np.zeros((0, len(head.classes)))])


def stream_fit(estimator, X: LazyVectors, y: np.ndarray, *, seed: int = 0, batch_size: int | None = None) -> None:
    """Fit an (optionally scaled) ``partial_fit`` classifier from lazy vectors, one batch in memory:
    the scaler in one pass, then ``max_iter`` epochs of the classifier, rows shuffled per epoch."""
    batch_size = batch_size or STREAM_BATCH
    scaler, model = (estimator[0], estimator[-1]) if hasattr(estimator, "steps") else (None, estimator)
    if scaler is not None:
        for batch in X.batches(batch_size):
            scaler.partial_fit(batch)
    classes, rng = np.unique(y), np.random.default_rng(seed)
    for _ in range(int(model.max_iter)):
        order = rng.permutation(len(y))
        for start, batch in zip(range(0, len(y), batch_size), X[order].batches(batch_size)):
            model.partial_fit(batch if scaler is None else scaler.transform(batch),
                              y[order[start:start + batch_size]], classes=classes)


def _timed_fit(spec: HeadSpec, estimator, X, y, stream_seed: int | None = None, **fit_kwargs) -> float:
    started = time.perf_counter()
    try:
        if stream_seed is not None:
            stream_fit(estimator, X, y, seed=stream_seed)
        else:
            estimator.fit(X, y, **fit_kwargs)
    except FeatxError:  # a featx head's own refusal already names its parameter
        raise
    except (ValueError, TypeError) as exc:  # scikit-learn's parameter and data checks
        raise FeatxError(f"{spec.name} head: {str(exc).splitlines()[0]}") from exc
    return time.perf_counter() - started


def compare_heads(caches: Sequence[Features | str | os.PathLike], heads: Sequence[str] | None = None,
                  *, params: dict[str, dict] | None = None, cv: int | None = None, test_size: float = 0.2,
                  seed: int = 0, class_weight: str | None = None, views: bool = False, augment: str | None = None,
                  progress=None, note: Callable[[str], None] | None = None) -> list[dict]:
    """A leaderboard: every head (default: every registered head but zeroshot) on every cache, best accuracy first.

    ``caches`` are cache files or Features, fused ones too (:func:`featx.features.fusion.fuse_features`).

    Without ``cv`` each head is fitted on the train split and scored on the test split (the same
    images for every head, and for every cache of the same images). With ``cv=K`` the scores are
    means over a stratified K-fold of the labelled images outside the cache's test split.
    ``views=True`` (and ``augment``: see :func:`fit_head`) ranks every head twice, on plain vectors
    and with the cached augmented views of its training images; a row's ``views`` says how many
    views per image it trained with (0: none). ``progress(backbone, head)`` is called before each
    fit. Caches are read lazily and loaded into memory once, by the first head that needs them
    (announced through ``note``).
    """
    check_seed("seed", seed)
    if isinstance(caches, (str, os.PathLike)) or not isinstance(caches, Sequence):
        raise OptionTypeError(f"{{param}} must be a list of caches (paths or Features); got {caches!r:.60}.",
                              param="caches")
    heads = compared_heads(heads)
    check_test_size(test_size)
    if cv is not None and (isinstance(cv, bool) or not isinstance(cv, int)):
        raise OptionTypeError(f"{{param}} must be a number of folds (an integer); got {cv!r:.60}.", param="cv")
    if cv is not None and cv < 2:
        raise OptionError(f"{{param}} must be at least 2 folds (or None: score on the test split); got {cv}.",
                          param="cv")
    rows = []
    for cache in caches:
        lazy, loaded = as_features(cache), None
        chosen_views = resolve_views(lazy, views, augment, note)
        for name in heads:
            spec = get_head_spec(name, param="heads")
            if spec.streams and not cv and chosen_views is None:
                features = lazy
            else:
                loaded = features = loaded if loaded is not None else in_memory(lazy, spec.name, note)
            head_kwargs = head_params(spec, (params or {}).get(name, {}), seed=seed, class_weight=class_weight,
                                      features=features)
            backbone = display_name(features.config, features.sources, features.fingerprint)
            for trained_views in (None,) if chosen_views is None else (None, chosen_views):
                if progress is not None:
                    progress(backbone, name if trained_views is None else f"{name} with views")
                if cv:
                    scores = _cross_validate(features, spec, head_kwargs, cv, seed, note, trained_views)
                else:
                    head = fit_head(features, name, test_size=test_size, seed=seed, note=note,
                                    views=trained_views if trained_views is not None else False, **head_kwargs)
                    if "test" not in head.metrics:
                        raise FeatxError("compare needs test images: set {param} above 0, or cross-validate (cv).",
                                         param="test_size")
                    scores = {**head.metrics["test"], "fit_seconds": head.fit_seconds}
                rows.append({"backbone": backbone, "head": name, **scores, "cache": cache_label(features),
                             "views": trained_views.count if trained_views is not None else 0})
    return sorted(rows, key=lambda r: (-r["accuracy"], -r["macro_f1"], r["fit_seconds"]))


def compared_heads(heads: Sequence[str] | None) -> list[str]:
    """The heads :func:`compare_heads` ranks: every registered head compared by default for None; else the distinct,
    known names given (an empty list, an empty name or one given twice is refused, naming ``heads``)."""
    if heads is None:
        return [name for name in list_heads() if get_head_spec(name).compared_by_default]
    if isinstance(heads, str) or not isinstance(heads, Sequence):
        raise OptionTypeError(f"{{param}} must be a list of head names; got {heads!r:.60}.", param="heads")
    if not heads:
        raise OptionError("{param} names no head; give one or more (or None for every head).", param="heads")
    names = []
    for name in heads:
        if not isinstance(name, str) or not name.strip():
            raise OptionError(f"{{param}} holds an empty head name ({list(heads)!r:.80}); give head names, e.g. "
                              "logreg,knn.", param="heads")
        spec = get_head_spec(name.strip(), param="heads")
        if spec.name in {get_head_spec(n).name for n in names}:
            raise OptionError(f"{{param}} names the {spec.name} head twice; give each head once.", param="heads")
        names.append(name.strip())
    return names


def _cross_validate(features: Features, spec: HeadSpec, head_kwargs: dict, cv: int, seed: int,
                    note: Callable[[str], None] | None = None, views: Views | None = None) -> dict:
    """Mean and spread of test-fold scores over a stratified ``cv``-fold; each fold's head trains on
    its training images (and their ``views``) and is scored on plain vectors of the held-out fold."""
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import StratifiedKFold

    if cv < 2:
        raise OptionError(f"{{param}} must be at least 2 folds; got {cv}.", param="cv")
    rows = np.flatnonzero((features.y >= 0) & (features.split != "test"))
    rows = rows[np.argsort(content_ids(features)[rows], kind="stable")]
    y = features.y[rows]
    smallest = int(np.unique(y, return_counts=True)[1].min()) if len(y) else 0
    if smallest < cv:
        raise OptionError(f"{cv}-fold cross-validation needs at least {cv} labelled images of every class; the "
                          f"smallest class has {smallest}. Lower {{param}}.", param="cv")
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    trained = len(rows) * (cv - 1) // cv * (1 + (views.count if views is not None else 0))
    announce_cost(spec, head_kwargs, trained, features.feature_dim, len(np.unique(y)), note, times=cv)
    accuracy, macro_f1, seconds = [], [], []
    for train, test in folds.split(rows, y):
        estimator, fit_kwargs = spec.make(**head_kwargs), {}
        if views is not None:
            X_train, y_train, fit_kwargs, _ = fit_inputs_with_views(features, rows[train], views, estimator, seed=seed)
        else:
            X_train, y_train = features.X[rows[train]], y[train]
        seconds.append(_timed_fit(spec, estimator, X_train, y_train, **fit_kwargs))
        predicted = estimator.predict(features.X[rows[test]])
        accuracy.append(accuracy_score(y[test], predicted))
        macro_f1.append(f1_score(y[test], predicted, average="macro"))
    return {
        "n": int(len(rows)), "folds": cv,
        "accuracy": float(np.mean(accuracy)), "accuracy_std": float(np.std(accuracy)),
        "macro_f1": float(np.mean(macro_f1)), "macro_f1_std": float(np.std(macro_f1)),
        "fit_seconds": float(np.mean(seconds)),
    }
