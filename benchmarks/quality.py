"""How good are featx's heads, views and fine-tuning on real features? A script that prints figures.

Backbone: the ImageNet-trained EfficientNet-Lite0 of ``../shared/models`` (``--backbone``), at its
fixed 224 px input (the .keras file declares it; featx refuses another ``image_size`` for it).
Data: Fashion-MNIST (28 px grey, upscaled by featx's loader) and scikit-learn's digits (8 px,
written 32 px by ``featx demo``'s writer). Every image is embedded once into a featx cache in
``--work``; a draw is a split column over that cache: ``n`` random training images per class of
a pool (a stratified 20 % of them as val, which the keras head and fine-tuning validate on), tested
on a fixed test set of the official test file. Figures are mean ± standard deviation over draws.

    python benchmarks/quality.py --quick     # 1 draw, a smaller pool, 1 view, a 2-epoch fine-tune: minutes
    python benchmarks/quality.py             # the README's tables (about 30-40 min on 2 busy cores)

Parts: (1) each head at 5/20/100/500 images per class, and digits; (2) the heads' defaults
against the alternatives that were considered, at 100 per class; (3) each head with the cached
views of each recipe (``featx embed --views K``); (4) fine-tuning from the best frozen head with
``featx fine-tune``'s defaults, at 100 per class (``--fine-tune-sizes`` for more).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from quality_data import DEFAULT_BACKBONE, draw, write_digits, write_fashion

HEADS = ("logreg", "svm", "sgd", "knn", "keras")
# (label, head, params): each default next to the alternatives it was chosen against
ALTERNATIVES = (
    ("logreg C=1 (default)", "logreg", {}), ("logreg C=0.1", "logreg", {"C": 0.1}),
    ("logreg C=10", "logreg", {"C": 10.0}),
    ("svm alpha=1e-4 (default)", "svm", {}), ("svm alpha=1e-3", "svm", {"alpha": 1e-3}),
    ("svm alpha=1e-2", "svm", {"alpha": 1e-2}), ("svm calibration_cv=5", "svm", {"calibration_cv": 5}),
    ("knn k=5 cosine (default)", "knn", {}), ("knn k=10", "knn", {"n_neighbors": 10}),
    ("knn k=5 distance-weighted", "knn", {"weights": "distance"}), ("knn k=5 standardised", "knn", {"scale": True}),
    ("keras 256/0.5 (default)", "keras", {}), ("keras 512/0.5", "keras", {"units": 512}),
    ("keras 256/0.2", "keras", {"dropout": 0.2}), ("keras 256/0.5 patience 6", "keras", {"patience": 6}),
)


def mean_sd(values) -> str:
    values = np.asarray(values, np.float64)
    return f"{values.mean():.3f} ± {values.std():.3f}" if len(values) > 1 else f"{values.mean():.3f}"


def quiet(_line: str) -> None:
    pass


def accuracy(features, head: str, views=False, **params) -> float:
    from featx.heads import fit_head

    return fit_head(features, head, views=views, note=quiet, **params).metrics["test"]["accuracy"]


def embed(folder: Path, args, **options):
    import featx

    started = time.perf_counter()
    features = featx.embed(folder, str(args.backbone), cache=args.work / "cache", **options)
    print(f"  embedded {folder.name} {options or ''}: {time.perf_counter() - started:.0f} s", flush=True)
    return features


def heads_table(datasets: dict, args) -> None:
    print("\n## 1. Test accuracy of each head (default parameters), mean ± sd over draws\n")
    print("| data | per class | draws | " + " | ".join(f"`{h}`" for h in HEADS) + " |")
    print("|---|---:|---:|" + "---:|" * len(HEADS))
    for label, (features, sizes, draws) in datasets.items():
        for n in sizes:
            n_draws = draws if n is not None else 1
            scores = {h: [] for h in HEADS}
            for d in range(n_draws):
                drawn = features if n is None else draw(features, n, d)
                for head in HEADS:
                    scores[head].append(accuracy(drawn, head))
            print(f"| {label} | {n or 'all'} | {n_draws} | " + " | ".join(mean_sd(scores[h]) for h in HEADS) + " |",
                  flush=True)


def defaults_table(features, args) -> None:
    n = 100 if not args.quick else 20
    print(f"\n## 2. Heads' defaults against alternatives, Fashion-MNIST, {n} per class, {args.draws} draws\n")
    print("| head and parameters | test accuracy |\n|---|---:|")
    for label, head, params in ALTERNATIVES:
        scores = [accuracy(draw(features, n, d), head, **params) for d in range(args.draws)]
        print(f"| {label} | {mean_sd(scores)} |", flush=True)


def views_table(folder: Path, args) -> None:
    from featx.features.views import load_views

    recipes = args.recipes.split(";")
    sizes = (20, 100) if not args.quick else (20,)
    print(f"\n## 3. Heads with cached views ({args.views} per training image), Fashion-MNIST, gain over plain "
          f"vectors, mean ± sd over {args.draws} draws\n")
    print("| recipe | per class | " + " | ".join(f"`{h}`" for h in HEADS) + " |")
    print("|---|---:|" + "---:|" * len(HEADS))
    for recipe in recipes:
        features = embed(folder, args, views=args.views, augment=recipe)
        views = load_views(features, recipe)
        for n in sizes:
            gains = {h: [] for h in HEADS}
            for d in range(args.draws):
                drawn = draw(features, n, d)
                for head in HEADS:
                    gains[head].append(accuracy(drawn, head, views=views) - accuracy(drawn, head))
            print(f"| `{recipe}` | {n} | " + " | ".join(f"{np.mean(g):+.3f} ± {np.std(g):.3f}" for g in gains.values())
                  + " |", flush=True)


def fine_tune_table(features, args) -> None:
    from featx.data.augment import FINE_TUNE_AUGMENT
    from featx.heads import fit_head
    from featx.model.defaults import (
        DEFAULT_EPOCHS,
        DEFAULT_HEAD_RATE_FACTOR,
        DEFAULT_LEARNING_RATE,
        DEFAULT_UNFREEZE,
        DEFAULT_WISE,
    )
    from featx.model.finetune import fine_tune, improved

    epochs = args.epochs or DEFAULT_EPOCHS
    rate = args.learning_rate or DEFAULT_LEARNING_RATE
    head_rate = args.head_learning_rate or rate * DEFAULT_HEAD_RATE_FACTOR
    wise = DEFAULT_WISE if args.wise is None else args.wise
    augment = FINE_TUNE_AUGMENT if args.augment is None else args.augment
    print(f"\n## 4. Fine-tuning (unfreeze {DEFAULT_UNFREEZE}, learning rate {rate:g}, the head's {head_rate:g}, at most "
          f"{epochs} epochs, augment {augment or 'none'}, WiSE-FT {wise:g}) from the best frozen head (of logreg, svm, "
          "keras, by test accuracy), Fashion-MNIST, on every other image of the test set; with WiSE-FT below 1, "
          "'kept epoch' is the model before averaging (its own validation check)\n")
    print("| per class | draw | best frozen head | its test acc | kept epoch test acc (kept) | gain | fine-tuned test acc | "
          "gain | kept | epoch kept | minutes |\n|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|")
    for n in args.fine_tune_sizes:
        gains, plain_gains = [], []
        for d in range(args.first_fine_tune_draw, args.first_fine_tune_draw + args.fine_tune_draws):
            drawn = draw(features, n, d)
            test = np.flatnonzero(drawn.split == "test")
            drawn.split[test[1::2]] = ""  # half the test set: two passes of the whole network over it
            heads = {h: fit_head(drawn, h, note=quiet) for h in ("logreg", "svm", "keras")}
            name, head = max(heads.items(), key=lambda item: item[1].metrics["test"]["accuracy"])
            before = head.metrics["test"]["accuracy"]
            report = fine_tune(head, output=args.work / f"ft-{n}-{d}.keras", epochs=epochs, learning_rate=rate,
                               head_learning_rate=head_rate, wise=wise, augment=augment, seed=d,
                               **({} if args.patience is None and not args.best_epoch else {"patience": args.patience or epochs}))
            final = report.after["test"]["accuracy"] if report.kept == "fine-tuned" else before
            unaveraged = report.unaveraged or report.after
            plain_kept = improved(report.before["val"], unaveraged["val"])
            plain = unaveraged["test"]["accuracy"] if plain_kept else before
            gains.append(final - before)
            plain_gains.append(plain - before)
            print(f"| {n} | {d} | `{name}` | {before:.3f} | {unaveraged['test']['accuracy']:.3f} "
                  f"({'fine-tuned' if plain_kept else 'head'}) | {plain - before:+.3f} | "
                  f"{report.after['test']['accuracy']:.3f} | {final - before:+.3f} | {report.kept} | "
                  f"{report.kept_epoch} of {report.epochs_run} | {report.seconds / 60:.1f} |", flush=True)
        print(f"| {n} | mean | | | | {np.mean(plain_gains):+.3f} ± {np.std(plain_gains):.3f} | | "
              f"{np.mean(gains):+.3f} ± {np.std(gains):.3f} | | | |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", type=Path, default=Path(os.environ.get("FEATX_QUALITY_BACKBONE",
                                                                             DEFAULT_BACKBONE)))
    parser.add_argument("--work", type=Path, default=Path("/tmp/featx-quality"), help="images and caches (reused)")
    parser.add_argument("--quick", action="store_true", help="1 draw, 20 and 100 per class, 1 view, a 2-epoch "
                        "fine-tune at 20 per class: checks that every part runs, in minutes")
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--views", type=int, default=2, help="views per training image")
    parser.add_argument("--recipes", default="flip,crop,jitter;flip;crop", help="';'-separated view recipes")
    parser.add_argument("--fine-tune-sizes", type=lambda t: [int(x) for x in t.split(",")], default=[100])
    parser.add_argument("--fine-tune-draws", type=int, default=3)
    parser.add_argument("--first-fine-tune-draw", type=int, default=0, help="more draws without rerunning the first")
    parser.add_argument("--epochs", type=int, default=None, help="fine-tune epochs (default: fine-tune's)")
    parser.add_argument("--learning-rate", type=float, default=None, help="fine-tune's (default: its default)")
    parser.add_argument("--head-learning-rate", type=float, default=None, help="fine-tune's (default: its default)")
    parser.add_argument("--wise", type=float, default=None, help="fine-tune's WiSE-FT share (default: its default)")
    parser.add_argument("--best-epoch", action="store_true", help="keep the epoch with the best validation accuracy "
                        "(fine-tune's rule with early stopping; patience = epochs) instead of the last")
    parser.add_argument("--augment", default=None, help="fine-tune's augmentations (default: its default)")
    parser.add_argument("--patience", type=int, default=None, help="fine-tune's early-stopping patience in epochs "
                        "(default: its default; at least --epochs: the whole schedule runs)")
    parser.add_argument("--skip", default="", help="parts to skip, comma-separated: heads,defaults,views,fine-tune")
    args = parser.parse_args()
    if not args.backbone.is_file():
        sys.exit(f"--backbone {args.backbone}: no such .keras file (see ../shared/models/README.md).")
    if args.quick:
        args.draws, args.fine_tune_draws, args.epochs, args.views = 1, 1, args.epochs or 2, 1
        args.recipes, args.fine_tune_sizes = args.recipes.split(";")[0], [20]
    skip = set(args.skip.split(","))
    started = time.perf_counter()
    print(f"# featx quality benchmark: {args.backbone.name}{' (quick)' if args.quick else ''}", flush=True)
    pool, test = (100, 50) if args.quick else (200, 200)
    small = write_fashion(args.work / f"fashion-{pool}-{test}", pool, test)
    fashion = embed(small, args)
    if "heads" not in skip:
        datasets = {"Fashion-MNIST": (fashion, (20, 100) if args.quick else (5, 20, 100), args.draws)}
        if not args.quick:
            datasets["Fashion-MNIST "] = (embed(write_fashion(args.work / "fashion-500-200", 500, 200), args),
                                          (500,), 1)
        datasets["digits"] = (embed(write_digits(args.work / "digits"), args), (None,), 1)
        heads_table(datasets, args)
    if "defaults" not in skip:
        defaults_table(fashion, args)
    if "views" not in skip:
        views_table(small, args)
    if "fine-tune" not in skip:  # beyond the small pool's 200 per class, the 500 one
        fine_tune_table(fashion if max(args.fine_tune_sizes) <= pool else
                        embed(write_fashion(args.work / "fashion-500-200", 500, test), args), args)
    print(f"\ntotal {(time.perf_counter() - started) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
