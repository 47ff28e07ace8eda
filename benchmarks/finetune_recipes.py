"""Fine-tuning recipes tried on real features, one draw at a time, with a test score after every epoch.

Not featx's own fine-tune (``benchmarks/quality.py`` part 4 measures that): a plain TensorFlow loop
over in-memory images, so that one run shows the whole curve of a recipe (validation and test
accuracy per epoch) and recipes featx does not offer can be tried — BatchNormalization trained or
re-estimated on the new images, SGD, a separate rate for the head, weight averaging with the start
(WiSE-FT). The draw is quality.py's (``n`` per class of its Fashion-MNIST pool, 20 % of them as
validation, every other image of its test set); the head is a logistic regression on frozen Lite0
features, softened by its validation temperature, as featx's warm start does.

    python benchmarks/finetune_recipes.py --lr 1e-4 --head-lr 1e-3 --augment flip,crop,jitter --epochs 4
    python benchmarks/finetune_recipes.py --bn train --lr 1e-4         # BatchNorm in training mode
    python benchmarks/finetune_recipes.py --bn adapt --epochs 0        # AdaBN: statistics re-estimated

docs/finetune.md lists what was tried and what it gave. Needs TensorFlow; minutes per epoch on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from quality_data import DEFAULT_BACKBONE, FASHION_CLASSES, write_fashion


def arguments():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", type=Path, default=DEFAULT_BACKBONE)
    p.add_argument("--work", type=Path, default=Path("/tmp/featx-quality"))
    p.add_argument("--draw", type=int, default=0)
    p.add_argument("--n", type=int, default=100, help="images per class (80 %% train, 20 %% validation)")
    p.add_argument("--bn", default="frozen", choices=("frozen", "train", "adapt"),
                   help="BatchNorm: frozen in inference mode, trained (batch statistics), or its statistics "
                        "re-estimated on the training images before the head is fitted (AdaBN)")
    p.add_argument("--opt", default="adam", choices=("adam", "sgd"), help="sgd: Nesterov momentum 0.9")
    p.add_argument("--lr", type=float, default=1e-4, help="peak rate: one epoch of warm-up, then a cosine")
    p.add_argument("--head-lr", type=float, default=None, help="the head's peak rate (default: --lr)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--augment", default="flip,crop", help="featx recipe for training batches ('' for none)")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--wise", type=float, default=0.0, help="also score the average of start and end weights, "
                   "this share on the end (WiSE-FT)")
    p.add_argument("--unfreeze", default="all", help="backbone layers trained, as featx fine-tune --unfreeze takes it")
    p.add_argument("--refit", action="store_true", help="also score a logistic regression refitted on the "
                   "fine-tuned backbone's features of the training images, after the last epoch")
    p.add_argument("--ema", type=float, default=0.0, help="also score an exponential moving average of the "
                   "weights after every epoch, this decay per step (0: none)")
    return p.parse_args()


def load_draw(a):
    """(train, val, test) as (images (N, 224, 224, 3) float32, labels), quality.py's draw ``a.draw``."""
    from featx.data.images import load_image

    root = write_fashion(a.work / f"fashion-{max(200, a.n)}-200", max(200, a.n), 200)

    def listing(split):
        return [(str(f), c) for c, name in enumerate(FASHION_CLASSES) for f in sorted((root / split / name).glob("*.png"))]

    pool, test = listing("train"), listing("test")[0::2]
    rng = np.random.default_rng(1000 + a.draw)
    labels = np.asarray([c for _, c in pool])
    train, val = [], []
    for c in range(len(FASHION_CLASSES)):
        chosen = rng.permutation(np.flatnonzero(labels == c))[:a.n]
        n_val = int(round(a.n * 0.2))
        train += list(chosen[:len(chosen) - n_val])
        val += list(chosen[len(chosen) - n_val:])

    def load(items):
        return (np.stack([load_image(f, (224, 224), "stretch") for f, _ in items]).astype(np.float32),
                np.asarray([c for _, c in items]))

    return load([pool[i] for i in train]), load([pool[i] for i in val]), load(test)


def main() -> None:
    a = arguments()
    import keras
    import tensorflow as tf
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from featx.data.augment import augment_image
    from featx.model.warmstart import choose_temperature

    (Xtr, ytr), (Xva, yva), (Xte, yte) = load_draw(a)
    backbone = keras.saving.load_model(a.backbone)
    bns = [layer for layer in backbone._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]

    def features(X, batch=64):
        return np.concatenate([np.asarray(backbone(X[i:i + batch], training=False)) for i in range(0, len(X), batch)])

    if a.bn == "adapt":  # the moving statistics become the average of the training batches' statistics
        for layer in bns:
            layer.trainable = True
        order = np.random.default_rng(0).permutation(len(Xtr))
        for k, i in enumerate(range(0, len(Xtr), 50), start=1):
            for layer in bns:
                layer.momentum = (k - 1) / k
            backbone(Xtr[order[i:i + 50]], training=True)
    Ftr, Fva, Fte = features(Xtr), features(Xva), features(Xte)
    scaler = StandardScaler().fit(Ftr)
    logreg = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(Ftr), ytr)
    head_test = logreg.score(scaler.transform(Fte), yte)
    print(f"head (logreg on frozen features): val {logreg.score(scaler.transform(Fva), yva):.3f} test {head_test:.3f}")
    kernel = (logreg.coef_ / scaler.scale_).T
    bias = logreg.intercept_ - (logreg.coef_ * scaler.mean_ / scaler.scale_).sum(1)
    proba = logreg.predict_proba(scaler.transform(Fva))
    temperature = choose_temperature(proba, yva)
    dense = keras.layers.Dense(len(FASHION_CLASSES))
    dense.build((None, Ftr.shape[1]))
    dense.set_weights([(kernel / temperature).astype(np.float32), (bias / temperature).astype(np.float32)])

    from featx.backbones.unfreeze import unfreeze_backbone

    print(f"unfrozen layers: {unfreeze_backbone(backbone, a.unfreeze, transformer=False)}")
    bn_train = a.bn == "train"
    for layer in bns:
        layer.trainable = bn_train
    start = [np.array(v) for v in [*backbone.weights, *dense.weights]]
    body, head = backbone.trainable_variables, dense.trainable_variables
    steps = -(-len(Xtr) // a.batch_size)

    def optimizer(peak):
        rate = keras.optimizers.schedules.CosineDecay(0.0, max(1, steps * (a.epochs - 1)), warmup_target=peak,
                                                      warmup_steps=steps)
        return keras.optimizers.Adam(rate) if a.opt == "adam" else keras.optimizers.SGD(rate, 0.9, nesterov=True)

    body_opt, head_opt = optimizer(a.lr), optimizer(a.head_lr or a.lr)
    trained = body + head
    averaged = [tf.Variable(v, trainable=False) for v in trained]
    updates = tf.Variable(0.0, trainable=False)
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=a.label_smoothing)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(tf.one_hot(y, len(FASHION_CLASSES)), dense(backbone(x, training=bn_train)))
        grads = tape.gradient(loss, body + head)
        body_opt.apply_gradients(zip(grads[:len(body)], body))
        head_opt.apply_gradients(zip(grads[len(body):], head))
        if a.ema:
            updates.assign_add(1.0)
            decay = tf.minimum(a.ema, (1.0 + updates) / (10.0 + updates))
            for mean, v in zip(averaged, trained):
                mean.assign(decay * mean + (1.0 - decay) * v)
        return loss

    @tf.function
    def predict(x):
        return tf.nn.softmax(dense(backbone(x, training=False)))

    def score(X, y):
        P = np.concatenate([predict(X[i:i + 64]).numpy() for i in range(0, len(X), 64)])
        return float((P.argmax(1) == y).mean()), float(-np.log(np.clip(P[np.arange(len(y)), y], 1e-7, None)).mean())

    def score_averaged():
        """(val accuracy, val loss, test accuracy) of the moving average, the trained weights put back."""
        current = [np.array(v) for v in trained]
        for v, mean in zip(trained, averaged):
            v.assign(mean)
        result = (*score(Xva, yva), score(Xte, yte)[0])
        for v, value in zip(trained, current):
            v.assign(value)
        return result

    rng = np.random.default_rng(a.draw)
    curve = [(*score(Xva, yva), score(Xte, yte)[0])]
    ema_curve = [curve[0]]
    print(f"epoch 0: val {curve[0][0]:.3f} (loss {curve[0][1]:.3f}) test {curve[0][2]:.3f}", flush=True)
    for epoch in range(1, a.epochs + 1):
        started, order, losses = time.perf_counter(), rng.permutation(len(Xtr)), []
        for s in range(steps):
            rows = order[s * a.batch_size:(s + 1) * a.batch_size]
            batch = Xtr[rows]
            if a.augment:
                batch = np.stack([augment_image(x, a.augment, rng) for x in batch]).astype(np.float32)
            losses.append(float(step(batch, ytr[rows])))
        curve.append((*score(Xva, yva), score(Xte, yte)[0]))
        print(f"epoch {epoch}: train loss {np.mean(losses):.3f} val {curve[-1][0]:.3f} (loss {curve[-1][1]:.3f}) "
              f"test {curve[-1][2]:.3f} ({time.perf_counter() - started:.0f} s)", flush=True)
        if a.ema:
            ema_curve.append(score_averaged())
            print(f"  EMA {a.ema}: val {ema_curve[-1][0]:.3f} (loss {ema_curve[-1][1]:.3f}) test {ema_curve[-1][2]:.3f}",
                  flush=True)
    if a.refit:
        Gtr, Gva, Gte = features(Xtr), features(Xva), features(Xte)
        rescale = StandardScaler().fit(Gtr)
        refit = LogisticRegression(C=1.0, max_iter=1000).fit(rescale.transform(Gtr), ytr)
        print(f"RESULT refit logreg on the last epoch's features: val {refit.score(rescale.transform(Gva), yva):.3f} "
              f"test {refit.score(rescale.transform(Gte), yte):.3f}", flush=True)
    if a.wise:
        variables = [*backbone.weights, *dense.weights]
        end = [np.array(v) for v in variables]
        for variable, first, last in zip(variables, start, end):
            variable.assign((1 - a.wise) * first + a.wise * last)
        val, _ = score(Xva, yva)
        print(f"WiSE-FT {a.wise}: val {val:.3f} test {score(Xte, yte)[0]:.3f}")
    best = max(range(len(curve)), key=lambda i: (curve[i][0], -curve[i][1]))
    print(f"RESULT {json.dumps({k: str(v) for k, v in vars(a).items()})} head {head_test:.3f} "
          f"best-val-accuracy epoch {best}: test {curve[best][2]:.3f}, last epoch test {curve[-1][2]:.3f}")
    if a.ema:
        best = max(range(len(ema_curve)), key=lambda i: (ema_curve[i][0], -ema_curve[i][1]))
        print(f"RESULT EMA best-val-accuracy epoch {best}: test {ema_curve[best][2]:.3f}, "
              f"last epoch test {ema_curve[-1][2]:.3f}")


if __name__ == "__main__":
    main()
