"""Fine-tuning the top of the backbone end to end, starting from a head trained on the cache.

The recipe: the head trained on frozen features is the starting point (a random head would wreck
the pretrained features), softened to the temperature that fits validation images it never saw
(:mod:`featx.model.warmstart`: otherwise a saturated head leaves no gradient to learn from); the
top N backbone layers are unfrozen with a low learning rate, and the backbone always runs with
``training=False`` so BatchNormalization keeps its moving statistics. The last epoch of the cosine
is kept (with early stopping, the one with the best validation accuracy: :mod:`featx.model.epochs`),
and then only if it beats the head on validation accuracy; otherwise the head's own model is saved
and the report says so (``kept == "head"``). Each epoch is backed up, so a killed run resumes
where it stopped; the resume folder records which run it belongs to (the head's
content, the options that shape training), and one of another run is discarded, saying so, instead
of being continued.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featx.backbones.unfreeze import parse_unfreeze, unfreeze_backbone
from featx.backend import import_keras, set_random_seed
from featx.cache.outputs import check_outputs
from featx.data.augment import FINE_TUNE_AUGMENT, ViewRecipe
from featx.errors import FeatxError, OptionError, OptionTypeError
from featx.model import defaults
from featx.model.build import build_classifier
from featx.model.epochs import epoch_callbacks, full_history, resumed_epoch
from featx.model.file import write_metadata
from featx.model.rates import check_rates, interpolate, schedule, two_rate_adam
from featx.model.trainingdata import image_dataset, split_images
from featx.model.warmstart import choose_temperature, hold_out_validation, soften


@dataclass
class FineTuneReport:
    """What a fine-tune did: accuracies before and after, epochs, files written."""

    model_path: Path
    backbone_path: Path
    curves_path: Path | None
    unfrozen_layers: int
    epochs_run: int
    resumed_from_epoch: int
    kept_epoch: int = 0  # the epoch whose weights were kept: the last, or with early stopping the best
    fresh_start: str = ""  # why a resume folder found was not resumed ("" if none was found, or it was)
    kept: str = "fine-tuned"  # or "head": validation did not improve, the head's model was saved
    validation: str = ""  # where the validation images came from, when not the head's val split
    temperature: float = 1.0  # the head's logits were divided by it before training (warmstart)
    before: dict = field(default_factory=dict)  # split -> {loss, accuracy}
    after: dict = field(default_factory=dict)  # of the model judged against the head (WiSE-FT averaged, if asked)
    unaveraged: dict = field(default_factory=dict)  # with wise < 1: the kept epoch's own scores, before averaging
    history: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {**{k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}}


def fine_tune(
    head,
    *,
    data: str | os.PathLike | None = None,
    unfreeze: str | int | float = defaults.DEFAULT_UNFREEZE,
    epochs: int = defaults.DEFAULT_EPOCHS,
    learning_rate: float = defaults.DEFAULT_LEARNING_RATE,
    head_learning_rate: float | None = None,
    wise: float = defaults.DEFAULT_WISE,
    batch_size: int = 16,
    augment: str = FINE_TUNE_AUGMENT,
    label_smoothing: float = defaults.DEFAULT_LABEL_SMOOTHING,
    output: str | os.PathLike | None = None,
    patience: int | None = defaults.DEFAULT_PATIENCE,
    seed: int = 0,
    backend: str | None = None,
    verbose: int = 0,
) -> FineTuneReport:
    """Fine-tune ``head`` (a fitted Head or its folder) with its backbone and save a .keras model.

    ``augment`` is the recipe of augmentations for training images, as ``featx.embed`` takes it
    (:data:`featx.data.augment.AUGMENTATIONS` names, comma-separated; ``""`` for none). ``backend``
    is the Keras backend to train on (default ``$KERAS_BACKEND``, else tensorflow). The head's layers
    train at ``head_learning_rate`` (default ``learning_rate`` times
    :data:`~featx.model.defaults.DEFAULT_HEAD_RATE_FACTOR`), the backbone at ``learning_rate``; the
    kept epoch's weights are then averaged with the start's, ``wise`` of the way to the fine-tuned
    ones (WiSE-FT; 1 for none), and that model is the one judged against the head. Validation
    images are the head's val split, else a held-out share of its training images (the head is
    then refitted without them); the report's ``kept`` says whether the fine-tuned model beat the
    head on them (``"fine-tuned"``) or the head's own model was saved (``"head"``). ``patience``: epochs
    without a better validation score before stopping early, keeping the best epoch (default None:
    the whole schedule runs and its last epoch is kept)."""
    from featx.heads.store import load_head

    started = time.perf_counter()
    head = head if hasattr(head, "estimator") else load_head(head)
    for param, value in (("epochs", epochs), ("batch_size", batch_size)):
        if value < 1:
            raise OptionError(f"{{param}} must be at least 1; got {value!r}.", param=param)
    if not 0 <= label_smoothing < 1:
        raise OptionError(f"{{param}} must be at least 0 and below 1; got {label_smoothing!r}.", param="label_smoothing")
    check_rates(learning_rate, head_learning_rate, wise)
    head_rate = learning_rate * defaults.DEFAULT_HEAD_RATE_FACTOR if head_learning_rate is None else head_learning_rate
    parse_unfreeze(unfreeze, 1)  # a bad value is reported before anything is built
    augment = _augment_recipe(augment)
    keras = import_keras(backend)
    config = head.embed_config()
    model_path = Path(output) if output else _default_output(head)
    check_outputs({"output": model_path}, inputs={"head": head.path, "data": data})
    if model_path.suffix != ".keras":
        raise OptionError(f"{{param}} {model_path}: the fine-tuned model is saved in Keras format; end the name in "
                          ".keras.", param="output")
    images = split_images(head, data)
    if len(images["train"]) == 0:
        raise FeatxError(f"head {head.name} has no training images to fine-tune on.")
    head, images, validation = hold_out_validation(head, images, seed)

    set_random_seed(seed)
    model, backbone, feature_model = build_classifier(head, config)
    temperature = _soften(model, feature_model, images.get("val"), config, batch_size)
    unfrozen = unfreeze_backbone(backbone, unfreeze, transformer=config.is_hub)  # a transformer: N counts blocks
    classes = len(head.classes)
    datasets = {name: image_dataset(split, config, batch_size, shuffle=False, one_hot=classes)
                for name, split in images.items() if len(split) and name != "train"}
    train = image_dataset(images["train"], config, batch_size, shuffle=True, augment=augment, seed=seed,
                          one_hot=classes)
    optimizer = two_rate_adam(keras, schedule(keras, learning_rate, len(train), epochs),
                              model.get_layer("featx_head").trainable_variables, head_rate / learning_rate)
    model.compile(optimizer, keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing), metrics=["accuracy"])
    scored = {"train": image_dataset(_sample(images["train"], seed), config, batch_size, shuffle=False), **datasets}
    before = {name: _evaluate(model, ds) for name, ds in scored.items()}
    start = [np.array(w) for w in model.get_weights()]

    work = model_path.with_name(model_path.name + ".training")
    run = _run_record(head, images, {"unfreeze": str(unfreeze), "learning_rate": learning_rate,
                                     "head_learning_rate": head_rate, "batch_size": batch_size, "augment": augment, "seed": seed,
                                     "label_smoothing": label_smoothing, "keep": "best" if patience else "last"})
    fresh_start = _claim(work, run)
    resumed = resumed_epoch(work)
    monitor = "val_accuracy" if "val" in datasets else "loss"
    callbacks, keeper = epoch_callbacks(keras, work, monitor, best=bool(patience))
    if patience:  # off by default (None): the cosine runs to its end (docs/finetune.md)
        callbacks.insert(-1, keras.callbacks.EarlyStopping(monitor=monitor, patience=patience,
                                                           mode="max" if "val" in datasets else "min"))
    history = model.fit(train, validation_data=datasets.get("val"), epochs=epochs, callbacks=callbacks,
                        shuffle=False, verbose=verbose)  # the pipeline shuffles, seeded per epoch
    kept_epoch = keeper.restore(model)
    after = unaveraged = {name: _evaluate(model, ds) for name, ds in scored.items()}
    if wise < 1:  # WiSE-FT: part of the way back to the start; this average is what validation judges
        model.set_weights(interpolate(start, model.get_weights(), wise))
        after = {name: _evaluate(model, ds) for name, ds in scored.items()}
    kept = "fine-tuned" if "val" not in before or improved(before["val"], after["val"]) else "head"
    if kept == "head":
        model.set_weights(start)

    report = FineTuneReport(
        model_path=model_path,
        backbone_path=model_path.with_name(model_path.stem + ".backbone.keras"),
        curves_path=None, unfrozen_layers=unfrozen, epochs_run=len(history.history.get("loss", [])), kept_epoch=kept_epoch,
        resumed_from_epoch=resumed, fresh_start=fresh_start, kept=kept, validation=validation,
        temperature=temperature, before=before, after=after, unaveraged=unaveraged if wise < 1 else {},
        history={k: [float(v) for v in vs] for k, vs in full_history(work).items()},
    )
    metadata = {
        "classes": list(head.classes), "config": head.config, "sources": head.sources,
        "fingerprint": head.fingerprint, "head": head.name, "head_kind": head.kind, "split": head.split,
        "fine_tune": {"unfreeze": str(unfreeze), "unfrozen_layers": unfrozen, "epochs": epochs, "kept_epoch": kept_epoch,
                      "learning_rate": learning_rate, "head_learning_rate": head_rate, "wise": wise,
                      "batch_size": batch_size, "augment": augment,
                      "label_smoothing": label_smoothing, "temperature": temperature, "kept": kept, "before": before, "after": after},
    }
    model_path.parent.mkdir(parents=True, exist_ok=True)
    model.compile(keras.optimizers.Adam(learning_rate), model.loss, metrics=["accuracy"])  # loads without featx
    model.save(model_path)
    write_metadata(model_path, {**metadata, "kind": "classifier"})
    feature_model.save(report.backbone_path)
    write_metadata(report.backbone_path, {**metadata, "kind": "backbone"})
    report.curves_path = _plot(head, report, model_path.with_suffix(".png"))
    shutil.rmtree(work, ignore_errors=True)
    report.seconds = time.perf_counter() - started
    return report


SCORED_TRAIN_IMAGES = 500  # before and after, the training split is scored on a seeded sample of at most this


def _sample(images, seed: int):
    """At most :data:`SCORED_TRAIN_IMAGES` of ``images``, a seeded sample (all when fewer)."""
    if len(images) <= SCORED_TRAIN_IMAGES:
        return images
    return images.subset(np.sort(np.random.default_rng(seed).permutation(len(images))[:SCORED_TRAIN_IMAGES]))


def improved(before: dict, after: dict) -> bool:
    """Whether ``after`` beats ``before`` on validation: a higher accuracy, or the same with a lower loss."""
    if after["accuracy"] != before["accuracy"]:
        return after["accuracy"] > before["accuracy"]
    return after["loss"] < before["loss"]


def _soften(model, feature_model, val, config, batch_size: int) -> float:
    """Divide the head's logits inside ``model`` by the temperature that fits the ``val`` images
    best on frozen features (:mod:`featx.model.warmstart`); returns it (1.0 without val images)."""
    if val is None or len(val) == 0:
        return 1.0
    network = model.get_layer("featx_head")
    features = feature_model.predict(image_dataset(val, config, batch_size, shuffle=False), verbose=0)
    temperature = choose_temperature(np.asarray(network.predict(features, verbose=0)), val.labels)
    soften(network, temperature)
    return temperature


def _augment_recipe(augment: str) -> str:
    """``augment`` normalised as ViewRecipe normalises it (``""`` stays: no augmentation); a bool,
    which this option was before it took a recipe, is refused with what to pass instead."""
    if not isinstance(augment, str):
        raise OptionTypeError(f"{{param}} takes a recipe of augmentations, like {FINE_TUNE_AUGMENT!r} (the "
                              f"default), or '' for none; got {type(augment).__name__} {augment!r:.60}.", param="augment")
    return ViewRecipe(augment=augment).augment if augment else ""


def _default_output(head) -> Path:
    """``<head folder>-finetuned.keras`` beside the head's folder (two heads never share one)."""
    if head.path is None:
        return Path(f"{head.name}-finetuned.keras")
    return head.path.parent / f"{head.path.name}-finetuned.keras"


def _evaluate(model, dataset) -> dict:
    """Loss (mean cross-entropy), accuracy and macro-F1 of ``model`` on a split's images."""
    from sklearn.metrics import f1_score

    proba = np.asarray(model.predict(dataset, verbose=0), np.float64)
    labels = dataset.labels
    loss = -np.log(np.clip(proba[np.arange(len(labels)), labels], 1e-7, None)).mean()
    predicted = proba.argmax(axis=1)
    return {"loss": float(loss), "accuracy": float(np.mean(predicted == labels)),
            "macro_f1": float(f1_score(labels, predicted, average="macro", labels=np.unique(labels)))}


RUN_FILE = "run.json"


def _run_record(head, images: dict, options: dict) -> dict:
    """What a resume folder must match to be resumed: the head (a checksum of its content, as its
    head.json pins it), the options that shape training, and how many images each split has.
    Epochs and patience are not in it: a resumed run may be given more."""
    from featx.heads.headfile import content_checksum

    run = {"head": content_checksum(head.record()), "head_name": head.name, "options": options,
           "images": {name: len(split) for name, split in images.items()}}
    return json.loads(json.dumps(run))  # as it reads back


def _claim(work: Path, run: dict) -> str:
    """Keep ``work`` for resuming only if it belongs to ``run``, else empty it; record ``run`` in it.
    Returns why a folder found there was not resumed ("" if it was, or if there was none)."""
    reason = ""
    if work.exists():
        try:
            recorded = json.loads((work / RUN_FILE).read_text())
        except (OSError, ValueError):
            recorded = None
        if not isinstance(recorded, dict) or not isinstance(recorded.get("options"), dict):
            reason = "it does not say which run it belongs to"
        elif recorded.get("head") != run["head"]:
            reason = f"it belongs to another head ({recorded.get('head_name')}, not {run['head_name']})"
        else:
            changed = [f"{key} {recorded['options'].get(key)!r}, now {value!r}"
                       for key, value in run["options"].items() if recorded["options"].get(key) != value]
            if recorded.get("images") != run["images"]:
                changed.append("other training images")
            if changed:
                reason = f"it was run with other options ({'; '.join(changed)})"
        if reason:
            shutil.rmtree(work)
            reason = f"{work} was not resumed: {reason}; started afresh."
    work.mkdir(parents=True, exist_ok=True)
    (work / "run.tmp").write_text(json.dumps(run))
    os.replace(work / "run.tmp", work / RUN_FILE)
    return reason


def _plot(head, report: FineTuneReport, path: Path) -> Path | None:
    """Loss and accuracy per epoch, the head's own epochs first, with fine-tuning's start marked."""
    from featx.heads.plots import plot_history

    before = head.history or {}
    history = {key: list(before.get(key, [])) + list(report.history.get(key, []))
               for key in {*before, *report.history}}
    return plot_history(history, path, title=f"{head.name}: head, then fine-tuning",
                        mark_after=len(before.get("loss", [])))
