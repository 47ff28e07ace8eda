"""Training rows with augmented views: each training image's views join it, and nothing else does.

Views (:mod:`featx.engine.views`) belong to their image: a head trains on the views of the images in its
training rows only (chosen per fit, per fold), never on those of its validation or test images,
and every score is computed on plain vectors.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np

from featx.errors import OptionError, OptionTypeError
from featx.features.fusion import is_fused
from featx.features.vectors import Features
from featx.features.views import Views, load_views
from featx.heads.split import stratified_holdout


def resolve_views(features: Features, views: bool | Views, augment: str | None = None,
                  note: Callable[[str], None] | None = None) -> Views | None:
    """The views a fit asked for: None (``views=False``), the views cached for the features' cache
    (``True``; ``augment`` names the recipe when several were embedded), or a :class:`Views` as given."""
    if augment is not None and views is not True:
        raise OptionError("{param} names the recipe of the cached views to train on; ask for views too.",
                          param="augment")
    if views is None or views is False:
        return None
    if is_fused(features.config):
        raise OptionError("{param} apply to a head of one backbone; fit the fused head without {param}.",
                          param="views")
    if isinstance(views, Views):
        chosen = views
    elif views is True:
        chosen = load_views(features, augment)
        if note is not None:
            note(f"using {chosen.count} views ({chosen.augment}) per training image from {chosen.cache_path} "
                 f"({chosen.X.nbytes / 1e6:.1f} MB)")
    else:
        raise OptionTypeError(f"{{param}} must be True, False or Views; got {views!r:.60}.", param="views")
    if chosen.plain_fingerprint != features.fingerprint:
        raise OptionError(f"{{param}} are views of other vectors (fingerprint {chosen.plain_fingerprint}, these "
                          f"features {features.fingerprint}); load the views of this cache.", param="views")
    return chosen


def with_views(features: Features, rows: np.ndarray, views: Views,
               note: Callable[[str], None] | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """The training vectors and labels of ``rows`` followed by their images' views, and what was
    used (``note`` says when some training images have no views yet)."""
    X, y = np.asarray(features.X[rows]), features.y[rows]
    view_rows, owners = views.rows_of(features.ids[rows])
    covered = len(np.unique(owners))
    if covered < len(rows) and note is not None:
        note(f"{len(rows) - covered} of {len(rows)} training images have no views yet (embedded since the views "
             f"were); 'featx embed --views {views.count}' adds theirs")
    used = {**views.describe(), "rows": int(len(view_rows)), "images": int(covered)}
    return np.concatenate([X, views.X[view_rows]]), np.concatenate([y, y[owners]]), used


def fit_inputs_with_views(features: Features, rows: np.ndarray, views: Views, estimator, *, seed: int,
                          validation: np.ndarray | None = None,
                          note: Callable[[str], None] | None = None) -> tuple[np.ndarray, np.ndarray, dict, dict]:
    """``(X, y, fit keyword arguments, views used)`` to fit ``estimator`` on ``rows`` and their views.

    A head that validates while it trains (``fit(..., validation_data=)``: the keras head) is given
    plain validation vectors: the ``validation`` rows, else a stratified share (its
    ``validation_fraction``) of ``rows`` held out before the views are added; when none can be held
    out it watches its training loss, since its own hold-out would take views of images it trains on.
    """
    fit_kwargs: dict = {}
    if "validation_data" in inspect.signature(estimator.fit).parameters:
        if validation is None or not len(validation):
            fraction = estimator.get_params().get("validation_fraction")
            held = stratified_holdout(features.y[rows], fraction, seed) if fraction else None
            rows, validation = (rows[held[0]], rows[held[1]]) if held is not None else (rows, None)
        if validation is not None:
            fit_kwargs["validation_data"] = (np.asarray(features.X[validation]), features.y[validation])
        else:
            estimator.set_params(validation_fraction=None)
    X, y, used = with_views(features, rows, views, note)
    return X, y, fit_kwargs, used
