"""``featx fine-tune`` and ``featx export``: from a head on cached vectors to one deployable model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featx.cli.app import EXIT_USAGE, BackendOption, app, fail, handle_errors, info, print_json
from featx.data.augment import AUGMENTATIONS, FINE_TUNE_AUGMENT
from featx.model.defaults import (
    DEFAULT_EPOCHS,
    DEFAULT_HEAD_RATE_FACTOR,
    DEFAULT_LEARNING_RATE,
    DEFAULT_UNFREEZE,
    DEFAULT_WISE,
)


@app.command("fine-tune")
@handle_errors
def fine_tune_command(
    head: Annotated[Path, typer.Argument(help="A head folder from 'featx fit-head', or the name of one in "
                                               "<cache dir>/heads (keras, logreg or linear svm).")],
    data: Annotated[Path | None, typer.Option(help="Where the images are, if not where the cache found them.")] = None,
    unfreeze: Annotated[str, typer.Option(
        help="Top backbone layers to train: N, a FRACTION or 'all' (transformers: N blocks, with the final LayerNorm).",
    )] = DEFAULT_UNFREEZE,
    epochs: Annotated[int, typer.Option(help="Epochs of the cosine (no early stopping); the last is kept.")] = DEFAULT_EPOCHS,
    learning_rate: Annotated[float, typer.Option("--learning-rate", help="Adam's peak learning rate (one epoch of warm-up, then a cosine decay).")]
    = DEFAULT_LEARNING_RATE,
    head_learning_rate: Annotated[float | None, typer.Option(
        "--head-learning-rate", help="The head's peak rate (default: " + ("--learning-rate" if DEFAULT_HEAD_RATE_FACTOR == 1 else
                                                 f"{DEFAULT_HEAD_RATE_FACTOR:g} x --learning-rate") + ").",
        show_default=False)] = None,
    wise: Annotated[float, typer.Option(help="WiSE-FT: average the fine-tuned weights with the start's, this share on "
                                             "the fine-tuned (0-1; 1: no averaging).")] = DEFAULT_WISE,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 16,
    augment: Annotated[str | None, typer.Option(
        help=f"Augmentations of the training images, comma-separated: {', '.join(AUGMENTATIONS)} (default: "
             f"{FINE_TUNE_AUGMENT}; '' for none).", show_default=False,
    )] = None,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="No augmentation (--augment '').")] = False,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="The .keras file to write.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for shuffling and augmentation.")] = 0,
    backend: BackendOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Fine-tune the top of the backbone end to end, starting from HEAD; resumes a killed run."""
    from featx.model.finetune import fine_tune

    if no_augment and augment is not None:
        raise fail("--no-augment and --augment both say which augmentations to use; give one.", EXIT_USAGE)
    augment = "" if no_augment else FINE_TUNE_AUGMENT if augment is None else augment
    report = fine_tune(head, data=data, unfreeze=unfreeze, epochs=epochs, learning_rate=learning_rate,
                       head_learning_rate=head_learning_rate, wise=wise, batch_size=batch_size, augment=augment,
                       output=output, seed=seed, backend=backend, verbose=0 if as_json else 2)
    if as_json:
        print_json(report.to_dict())
        return
    if report.fresh_start:
        info(report.fresh_start)
    if report.validation:
        info(report.validation)
    if report.resumed_from_epoch:
        info(f"resumed from epoch {report.resumed_from_epoch}")
    for split in ("val", "test"):
        if split in report.before:
            typer.echo(f"{split} accuracy: {report.before[split]['accuracy']:.3f} (head on frozen features) -> "
                       f"{report.after[split]['accuracy']:.3f} (fine-tuned)")
    if report.unaveraged.get("val"):
        typer.echo(f"val accuracy of the kept epoch before WiSE-FT averaging: {report.unaveraged['val']['accuracy']:.3f}")
    typer.echo(f"unfroze {report.unfrozen_layers} layers, {report.epochs_run} epochs (kept epoch {report.kept_epoch}), "
               f"{report.seconds:.0f} s "
               f"(the head's logits divided by a temperature of {report.temperature:.3g} first)")
    if report.kept == "head":
        typer.echo("validation did not improve on the head: the model saved is the head's, on frozen features")
    typer.echo(f"model: {report.model_path}\nfeatures, for 'featx embed --backbone': {report.backbone_path}")
    typer.echo(f"curves: {report.curves_path}")


@app.command("export")
@handle_errors
def export_command(
    source: Annotated[Path, typer.Argument(help="A head folder, or a fine-tuned .keras model.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the model.")],
    format: Annotated[str, typer.Option(help="keras, onnx, savedmodel or tflite (the last two need TensorFlow).")]
    = "keras",
    backend: BackendOption = None,
) -> None:
    """Export one model: raw RGB image of any size in, class probabilities out."""
    from featx.model.export import export

    path = export(source, output, format=format, backend=backend)
    typer.echo(f"exported {path}: raw RGB (uint8 or float 0-255, any size) in, class probabilities out")
