"""The zero-shot head: a linear classifier made from class names, with no labelled image.

Each class's prompts (templates such as "a photo of a {}." filled with its name, or prompts of the
user's) are embedded by the text tower of the CLIP or SigLIP model that embedded the images
(:mod:`featx.backbones.text_tower`); each prompt's vector is normalised, a class's are averaged
and normalised again (prompt ensembling, as CLIP's paper does). A normalised image vector then
scores ``exp(logit_scale) * cos(image, class)`` (+ SigLIP's ``logit_bias``): softmax over the
classes for CLIP, a sigmoid per class for SigLIP, exactly the reference model's
``logits_per_image`` probabilities. It is a linear head (a unit normalisation, then one Dense
layer): it evaluates, compares, predicts and exports like the others, and fine-tuning starts from it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from featx.errors import OptionError

# A few of the 80 ImageNet templates of CLIP's paper (those its authors found to carry most of the gain).
DEFAULT_TEMPLATES = (
    "a photo of a {}.", "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.",
    "a rendering of a {}.", "graffiti of a {}.", "a cropped photo of the {}.", "a tattoo of a {}.",
    "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.",
    "a drawing of a {}.", "a photo of my {}.", "a photo of the cool {}.", "a close-up photo of a {}.",
    "a black and white photo of the {}.", "a painting of the {}.", "a pixelated photo of the {}.",
    "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.", "a photo of the small {}.",
    "a photo of the large {}.", "a photo of a nice {}.", "a photo of a weird {}.", "a cartoon {}.",
    "art of a {}.", "a sketch of the {}.", "a embroidered {}.", "a plastic {}.",
    "itap of a {}.", "a good photo of a {}.", "a toy {}.", "a low resolution photo of the {}.",
)


class ZeroShotHead(ClassifierMixin, BaseEstimator):
    """Classify by the cosine of an image's vector with each class's text prototype.

    ``text_model`` is the CLIP or SigLIP snapshot folder (or keras-hub preset) whose image features the vectors are
    (``featx fit-head`` takes it, and ``class_names``, from the cache). ``templates`` hold ``{}``
    for the class name (default: :data:`DEFAULT_TEMPLATES`); ``prompts`` replaces them with each
    class's own texts (a list in class order or a dict by name; each a text or a list of texts).
    ``fit`` embeds the prompts and ignores the images and labels it is given. Fitted: ``coef_``
    (classes x width, the prototypes times the logit scale), ``intercept_``, ``activation_``
    ("softmax" or "sigmoid"), ``prompts_``.
    """

    def __init__(self, *, text_model=None, class_names=None, templates=None, prompts=None):
        self.text_model = text_model
        self.class_names = class_names
        self.templates = templates
        self.prompts = prompts

    def fit(self, X, y=None):
        from featx.backbones.text_tower import load_text_tower

        X = validate_data(self, X, dtype=[np.float32, np.float64])
        prompts = self._class_prompts()
        if not self.text_model:
            raise OptionError("{param}: the zeroshot head needs the text tower of the CLIP or SigLIP model that "
                              "embedded these images, and this cache's backbone has none; embed with a CLIP or "
                              "SigLIP snapshot folder or keras-hub preset, or give one (-p text_model=FOLDER).", param="text_model")
        tower = load_text_tower(Path(str(self.text_model)))
        vectors = _unit(tower.encode([p for texts in prompts for p in texts]))
        ends = np.cumsum([len(texts) for texts in prompts])
        prototypes = _unit(np.stack([vectors[a:b].mean(axis=0) for a, b in zip([0, *ends[:-1]], ends)]))
        if prototypes.shape[1] != X.shape[1]:
            raise OptionError(f"{{param}}: {self.text_model}'s text vectors are {prototypes.shape[1]} wide, the image "
                              f"vectors {X.shape[1]}: they are not this model's image features (embed with "
                              "pooling 'pooled', the model's own projection).", param="text_model")
        self.coef_ = prototypes.astype(np.float64) * np.exp(tower.logit_scale)
        self.intercept_ = np.full(len(prompts), tower.logit_bias or 0.0)
        self.activation_ = "sigmoid" if tower.logit_bias is not None else "softmax"
        self.classes_ = np.arange(len(prompts))
        self.prompts_ = [list(texts) for texts in prompts]
        return self

    def _class_prompts(self) -> list[list[str]]:
        """Each class's prompts, in class order."""
        names = list(self.class_names) if self.class_names is not None else None
        prompts = self.prompts
        if prompts is not None:
            if isinstance(prompts, dict):
                if names is None:
                    names = list(prompts)
                missing = [n for n in names if n not in prompts]
                if missing:
                    raise OptionError(f"{{param}} has no prompt for the class {missing[0]!r}.", param="prompts")
                prompts = [prompts[n] for n in names]
            if isinstance(prompts, str) or (names is not None and len(prompts) != len(names)):
                raise OptionError(f"{{param}} must give each of the {len(names or [])} classes its prompts (a list in "
                                  "class order, or a dict by class name).", param="prompts")
            out = [[p] if isinstance(p, str) else list(p) for p in prompts]
        else:
            if names is None:
                raise OptionError("{param}: the zeroshot head needs the class names (featx fit-head takes them from "
                                  "the cache), or prompts.", param="class_names")
            templates = [self.templates] if isinstance(self.templates, str) else self.templates or DEFAULT_TEMPLATES
            if not all("{}" in t for t in templates):
                raise OptionError("{param}: every template holds {} where the class name goes, e.g. "
                                  "'a photo of a {}.'.", param="templates")
            out = [[t.format(n.replace("_", " ")) for t in templates] for n in names]
        if not out or not all(out) or not all(isinstance(p, str) and p for texts in out for p in texts):
            raise OptionError("{param}: every class needs at least one non-empty prompt.", param="prompts")
        return out

    def decision_function(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        return _unit(X) @ self.coef_.T + self.intercept_

    def predict_proba(self, X) -> np.ndarray:
        logits = self.decision_function(X)
        if self.activation_ == "sigmoid":
            return 1.0 / (1.0 + np.exp(-logits))
        logits = logits - logits.max(axis=1, keepdims=True)
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def zeroshot(*, text_model=None, class_names=None, templates=None, prompts=None):
    """Zero-shot: class names -> prompts -> text embeddings of a CLIP/SigLIP model; no training."""
    return ZeroShotHead(text_model=text_model, class_names=class_names, templates=templates, prompts=prompts)


def zeroshot_context(features) -> dict:
    """What the head takes from the cache: its class names, and the snapshot folder of its backbone
    when that has a text tower (else nothing: ``fit`` then says so in one line)."""
    from featx.backbones.text_tower import has_text_tower

    folder = (features.sources or {}).get("model_path")
    return {"class_names": list(features.classes), **({"text_model": folder} if has_text_tower(folder) else {})}


def zeroshot_layers(head) -> list:
    """A unit normalisation, then one Dense layer with the head's softmax or sigmoid."""
    from featx.backend import import_keras
    from featx.heads.layers import _dense, _widen

    keras = import_keras()
    estimator = head.estimator
    kernel, bias = _widen(estimator.coef_.T, estimator.intercept_, np.asarray(estimator.classes_, np.int64),
                          len(head.classes))
    return [keras.layers.UnitNormalization(axis=-1, name="featx_zeroshot_unit"),
            _dense(kernel, bias, estimator.activation_, "featx_zeroshot")]
