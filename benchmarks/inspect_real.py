"""``featx inspect`` on real features: Fashion-MNIST through an ImageNet backbone, problems planted,
each kind of finding scored beside a plain scikit-learn baseline on the same vectors.

A pool of Fashion-MNIST images (from the IDX files of Debian's ``dataset-fashion-mnist``) is written
as PNG files in featx's split layout (``train/<class>/``, ``test/<class>/``), with planted problems
beside them: train images copied into ``test/`` (half byte-for-byte, half with a small edit:
brightness, a crop of a pixel or two, noise or a shift) and foreign images (scikit-learn's digits and
crops of its two sample photos) put into random class folders of ``train/``. The pool is embedded
once with the backbone through ``featx.embed`` (its cache makes reruns instant). Each planted set is
a subset of the pool's cached vectors with some labels flipped, exactly what moving those files into
a wrong class folder gives (a vector depends on the image's content, never on its folder).

Per set and kind, precision and recall among the top k findings, k = the number planted, for featx
and for the baseline of issue 25:

* label issues: 5-fold cross-validated ``StandardScaler + LogisticRegression`` on the full vectors,
  ranked by the out-of-fold probability of the given label;
* copies across splits: plain cosine similarity of the raw vectors, top pairs;
* foreign images: cosine distance to the mean vector of the image's own class.

Then the default manifest (``write_manifest(found, path)``): images kept, planted copies and foreign
images removed, clean images removed; and on the sets with nothing planted, the share kept.

    python benchmarks/inspect_real.py                 # sizes 1,400 and 4,000 (embeds ~4,100 images once)
    python benchmarks/inspect_real.py --sizes 1400 --backbone path/to/backbone.keras
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[0] = ROOT  # this folder's inspect_*.py must not shadow anything; the repository instead

import argparse  # noqa: E402
import gzip  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
BACKBONE = os.path.join(os.path.dirname(ROOT), "shared", "models", "efficientnet_lite0_imagenet_notop.keras")


def read_fashion() -> tuple[np.ndarray, np.ndarray]:
    """The 60,000 training images (28 x 28 uint8) and labels of Fashion-MNIST."""
    with gzip.open(FASHION / "train-images-idx3-ubyte.gz") as handle:
        images = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FASHION / "train-labels-idx1-ubyte.gz") as handle:
        labels = np.frombuffer(handle.read(), np.uint8, offset=8).astype(np.int64)
    return images, labels


def edited(image: np.ndarray, kind: int, rng: np.random.Generator) -> np.ndarray:
    """A near copy: the same picture brightened, cropped by a pixel or two, noised or shifted."""
    from PIL import Image

    x = image.astype(np.float32)
    if kind == 0:
        x = x * rng.uniform(1.1, 1.25) + rng.uniform(5, 15)
    elif kind == 1:
        c = int(rng.integers(1, 3))
        x = np.asarray(Image.fromarray(image[c:28 - c, c:28 - c]).resize((28, 28), Image.BILINEAR), np.float32)
    elif kind == 2:
        x = x + rng.normal(0, 8, x.shape)
    else:
        x = np.roll(x, (int(rng.choice([-1, 1])), int(rng.choice([-1, 1]))), axis=(0, 1))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def foreign(count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Images of another kind: handwritten digits and crops of two photos, alternating."""
    from PIL import Image
    from sklearn.datasets import load_digits, load_sample_images

    digits = load_digits().images
    photos = load_sample_images().images
    out = []
    for n in range(count):
        if n % 2 == 0:
            digit = digits[rng.integers(len(digits))] * (255 / 16)
            out.append(np.asarray(Image.fromarray(digit.astype(np.uint8)).resize((28, 28), Image.BILINEAR)))
        else:
            photo = photos[n // 2 % len(photos)]
            top, left = rng.integers(0, photo.shape[0] - 96), rng.integers(0, photo.shape[1] - 96)
            out.append(np.asarray(photo[top:top + 96, left:left + 96]))
    return out


@dataclass
class Pool:
    """The written pool: per image its path, true label and role ("clean", "copy", "foreign")."""

    root: Path
    paths: list[str]
    labels: np.ndarray
    roles: np.ndarray
    order: np.ndarray  # clean images: their rank in the sample (a size-n set takes the first n)
    source: dict[str, str]  # copy path -> the train image it copies


def write_pool(folder: Path, n: int, copies: int, others: int, seed: int) -> Pool:
    """n Fashion-MNIST images (80 % train) as PNG files in split folders, ``copies`` train images
    copied into test (even ones exact, odd ones edited) and ``others`` foreign images in train."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images, labels = read_fashion()
    picked = rng.choice(len(images), n, replace=False)
    split = np.where(rng.random(n) < 0.2, "test", "train")
    paths, truth, roles, order, source = [], [], [], [], {}

    def save(array: np.ndarray, split_name: str, label: int, name: str, role: str, rank: int) -> str:
        path = folder / split_name / CLASSES[label] / name
        if not path.exists():  # a rerun finds the pool written (and its vectors cached)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(path)
        paths.append(str(path))
        truth.append(label)
        roles.append(role)
        order.append(rank)
        return str(path)

    for rank, (index, where) in enumerate(zip(picked, split)):
        save(images[index], where, int(labels[index]), f"fm{index:05d}.png", "clean", rank)
    train = np.flatnonzero(split == "train")
    # Copy sources spread over the sample, so that every size's first n images hold some of them.
    sources = np.sort(rng.choice(train[train < n], copies, replace=False))
    for c, rank in enumerate(sources):
        index, label = picked[rank], int(labels[picked[rank]])
        if c % 2 == 0:
            target = folder / "test" / CLASSES[label] / f"copy{c:03d}.png"
            if not target.exists():
                shutil.copyfile(paths[rank], target)
            paths.append(str(target))
            truth.append(label)
            roles.append("copy")
            order.append(rank)
        else:
            save(edited(images[index], c // 2 % 4, rng), "test", label, f"copy{c:03d}.png", "copy", int(rank))
        source[paths[-1]] = paths[rank]
    for o, image in enumerate(foreign(others, rng)):
        save(image, "train", int(rng.integers(len(CLASSES))), f"other{o:03d}.png", "foreign", o)
    return Pool(folder, paths, np.asarray(truth), np.asarray(roles), np.asarray(order), source)


def embed_pool(pool: Pool, backbone: str, cache: Path):
    """The pool's vectors, through featx (its cache makes a rerun read them back at once)."""
    import featx

    feats = featx.embed(pool.root, backbone, cache=cache)
    where = {os.path.realpath(p): i for i, p in enumerate(pool.paths)}
    rows = np.asarray([where[os.path.realpath(p)] for p in feats.paths])
    return feats, rows


@dataclass
class Case:
    """One planted set: its features, and which rows are flipped, copies (with their source) and foreign."""

    name: str
    features: object
    flipped: set[int]
    pairs: set[frozenset[int]]
    foreign: set[int]


def make_case(name: str, feats, pool: Pool, rows: np.ndarray, n: int, flip: float, others: int, copies: bool,
              seed: int) -> Case:
    """The first ``n`` clean images of the pool, the copies of those among them (with ``copies``),
    the first ``others`` foreign images, and ``flip`` of the clean images' labels moved to another class."""
    rng = np.random.default_rng(seed)
    role, order = pool.roles[rows], pool.order[rows]
    keep = np.flatnonzero(((role == "clean") | copies & (role == "copy")) & (order < n)
                          | (role == "foreign") & (order < others))
    sub = feats.subset(keep)
    role = role[keep]
    index = {os.path.realpath(p): i for i, p in enumerate(sub.paths)}
    pairs = {frozenset((i, index[os.path.realpath(pool.source[p])])) for i, p in enumerate(sub.paths) if role[i] == "copy"}
    sources = {i for pair in pairs for i in pair}
    candidates = np.asarray([i for i in np.flatnonzero(role == "clean") if i not in sources])
    flipped = rng.choice(candidates, int(round(flip * len(candidates))), replace=False)
    y = sub.y.copy()
    y[flipped] = (y[flipped] + rng.integers(1, len(sub.classes), len(flipped))) % len(sub.classes)
    return Case(name, replace(sub, y=y), set(flipped.tolist()), pairs, set(np.flatnonzero(role == "foreign").tolist()))


def baseline_labels(feats, seed: int = 0) -> np.ndarray:
    """Rows ranked by the 5-fold out-of-fold probability of their label (StandardScaler + LogisticRegression)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    proba = cross_val_predict(model, feats.X, feats.y, cv=StratifiedKFold(5, shuffle=True, random_state=seed),
                              method="predict_proba")
    return np.argsort(proba[np.arange(len(feats.y)), feats.y], kind="stable")


def baseline_pairs(feats, k: int) -> list[frozenset[int]]:
    """The k most similar pairs by plain cosine of the raw vectors."""
    Z = feats.X / np.linalg.norm(feats.X, axis=1, keepdims=True)
    sims = Z @ Z.T
    sims[np.tril_indices(len(Z))] = -2
    top = np.argsort(sims, axis=None)[::-1][:k]
    return [frozenset(np.unravel_index(t, sims.shape)) for t in top]


def baseline_outliers(feats) -> np.ndarray:
    """Rows ranked by cosine distance to the mean vector of their own class."""
    Z = feats.X / np.linalg.norm(feats.X, axis=1, keepdims=True)
    centres = np.stack([Z[feats.y == c].mean(axis=0) for c in range(len(feats.classes))])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    return np.argsort(-(1 - np.sum(Z * centres[feats.y], axis=1)), kind="stable")


def at_k(found: list, planted: set) -> tuple[float, float]:
    """Precision and recall among the first k = len(planted) of ``found`` (fewer found: precision of those)."""
    top = found[:len(planted)]
    hits = sum(f in planted for f in top)
    return hits / max(len(top), 1), hits / max(len(planted), 1)


def featx_pairs(found) -> list[frozenset[int]]:
    """featx's duplicates as pairs, in its order (a group gives each of its pairs)."""
    return [frozenset((a, b)) for d in found.duplicates for n, a in enumerate(d.rows) for b in d.rows[n + 1:]]


def score(case: Case, folder: Path, seed: int) -> dict:
    """featx and the baselines on one case, and what the default manifest keeps."""
    import featx
    from featx.inspection import write_manifest

    started = time.perf_counter()
    found = featx.inspect(case.features, seed=seed)
    seconds = time.perf_counter() - started
    out = {"case": case.name, "images": len(case.features), "seconds": seconds,
           "accuracy": found.summary().get("label_accuracy")}
    if case.flipped:
        out["labels"] = at_k([i.row for i in found.label_issues], case.flipped), \
            at_k(list(baseline_labels(case.features, seed)), case.flipped), len(case.flipped), len(found.label_issues)
    if case.pairs:
        out["copies"] = at_k(featx_pairs(found), case.pairs), at_k(baseline_pairs(case.features, len(case.pairs)),
                                                                    case.pairs), len(case.pairs), len(found.duplicates)
    if case.foreign:
        out["foreign"] = at_k([o.row for o in found.outliers], case.foreign), \
            at_k(list(baseline_outliers(case.features)), case.foreign), len(case.foreign), len(found.outliers)
    written = write_manifest(found, folder / f"{case.name}.csv")
    kept = {os.path.basename(line.split(",")[0]) for line in written.path.read_text().splitlines()[1:]}
    names = [os.path.basename(p) for p in case.features.paths]
    gone = {i for i, name in enumerate(names) if name not in kept}
    copies_gone = sum(bool(pair & gone) for pair in case.pairs)
    planted = set().union(*case.pairs) if case.pairs else set()
    out["manifest"] = (written.kept, len(case.features), copies_gone, len(case.pairs), len(gone & case.foreign),
                       len(case.foreign), len(gone - planted - case.foreign))
    return out


def pct(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.2f} / {pair[1]:.2f}"


def report(results: list[dict]) -> None:
    """The figures as a Markdown table: precision / recall at k = planted, featx then the baseline."""
    print("\n| set | images | head accuracy | label flips: featx | baseline | copies across splits: featx | "
          "baseline | foreign images: featx | baseline | default manifest keeps | removed: copies, foreign, "
          "other | inspect s |")
    print("| --- " * 13 + "|")
    for r in results:
        cells = []
        for kind in ("labels", "copies", "foreign"):
            if kind in r:
                ours, base, k, flagged = r[kind]
                cells += [f"{pct(ours)} (k={k}, listed {flagged})", pct(base)]
            else:
                cells += ["–", "–"]
        kept, total, copies, pairs, foreign, others, clean = r["manifest"]
        acc = f"{r['accuracy']:.3f}" if r["accuracy"] is not None else "–"
        print(f"| {r['case']} | {r['images']} | {acc} | " + " | ".join(cells) +
              f" | {kept / total:.1%} | {copies}/{pairs}, {foreign}/{others}, {clean} | {r['seconds']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default=BACKBONE, help="a .keras backbone file (default: %(default)s)")
    parser.add_argument("--sizes", default="1400,4000", help="clean images of each size, comma-separated")
    parser.add_argument("--flips", default="0.02,0.05,0.1", help="shares of labels flipped, comma-separated")
    parser.add_argument("--copies", type=float, default=0.01, help="share of train images copied into test")
    parser.add_argument("--foreign", type=float, default=0.005, help="share of foreign images added")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "featx-inspect-real",
                        help="where the pool and its cache stay between runs (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not os.path.isfile(args.backbone):
        sys.exit(f"error: --backbone {args.backbone} is not a file: give the path of a .keras backbone")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    flips = [float(f) for f in args.flips.split(",")]
    biggest = sizes[-1]
    planted = "" if (args.copies, args.foreign) == (0.01, 0.005) else f"-{args.copies}-{args.foreign}"
    folder = args.work / f"pool-{biggest}-{args.seed}{planted}"
    done = folder.with_suffix(".done")
    if not done.exists():  # a half-written pool is written again
        shutil.rmtree(folder, ignore_errors=True)
    pool = write_pool(folder, biggest, int(args.copies * biggest), max(int(args.foreign * biggest), 4), args.seed)
    done.touch()
    started = time.perf_counter()
    feats, rows = embed_pool(pool, args.backbone, args.work / "cache")
    print(f"{len(feats)} images embedded with {os.path.basename(args.backbone)} (or read from the cache) in "
          f"{time.perf_counter() - started:.0f} s: {feats.X.shape[1]}-d vectors")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            others = max(int(args.foreign * n), 4)
            cases = [make_case(f"{n} clean", feats, pool, rows, n, 0.0, 0, False, args.seed)]
            cases += [make_case(f"{n} flip {f:.0%}", feats, pool, rows, n, f, others, True, args.seed) for f in flips]
            for case in cases:
                results.append(score(case, Path(tmp), args.seed))
                print(f"  {case.name}: done", flush=True)
    report(results)


if __name__ == "__main__":
    main()
