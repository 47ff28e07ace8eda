"""How long a head will take, estimated from the size of its training vectors, to warn before a long fit.

Each registry entry names one of these functions (``HeadSpec.cost``): ``(n, d, k, params)`` →
seconds to fit on ``n`` training vectors of ``d`` dimensions and ``k`` classes, and to score the
head's splits, with ``params`` its full parameters. The constants are operations per second read
from ``benchmarks/heads.py`` on a quiet 2-core machine (10,000 and 100,000 x 2,048), rounded so the
estimates err on the slow side there (1.2-3x; the keras head's early stopping ends sooner on large
caches); a busy machine is slower. They decide a warning, never a result.
"""

from __future__ import annotations

LONG_FIT_SECONDS = 60.0  # a head estimated to take longer says so before it starts

# Throughputs, in multiply-adds per second, measured by benchmarks/heads.py (10 classes) on a quiet
# 2-core machine; measured / estimated seconds there: logreg 0.60/0.82 (10k), 3.96/8.2 (100k); keras
# 12.5/9.4 (10k, 19 epochs), 21.6/94 (100k, 8 epochs); svm 4.7/4.9, 46.6/49; sgd 4.0/6.6, 44/66;
# svm rbf 3.5/4.4; knn scoring 4.3/5.5 (10k). liblinear: from the busy machine (not re-measured).
_BLAS = 2e10  # dense matrix products (logreg's L-BFGS, the Keras network)
_DISTANCES = 3e10  # knn's cosine distances (one product, no gradients)
_KERNEL_MAP = 1e10  # Nystroem's RBF kernel between the vectors and its components
_SGD = 5e8  # scikit-learn's per-row SGD updates (the svm and sgd heads)
_LIBLINEAR = 5e7  # liblinear's solver on dense vectors (the svm head with C set)
_SCORED = 1.25  # fit_head scores train and test (and val) after fitting: rows predicted per training row
TRAIN_SCORE_ROWS = 10_000  # fit_head's train scores use at most this many training rows (a seeded sample)


def logreg_seconds(n: int, d: int, k: int, params: dict) -> float:
    """L-BFGS: about 100 passes over the data for k classes."""
    return 100 * n * d * k / _BLAS


def svm_seconds(n: int, d: int, k: int, params: dict) -> float:
    """calibration_cv + 1 fits on (folds - 1)/folds of the rows each, after an optional kernel map."""
    folds = int(params.get("calibration_cv") or 5)
    rows = n * folds  # cv fits on (cv-1)/cv of the rows, then one on all of them
    width, seconds = d, 0.0
    if params.get("kernel") == "rbf":
        width = int(params.get("n_components") or 100)
        seconds += n * _SCORED * width * d / _KERNEL_MAP  # the map, for fitting and scoring
    classes = 1 if k == 2 else k
    if params.get("C") is not None:
        return seconds + 10 * rows * width * classes / _LIBLINEAR  # a few Newton steps, several passes each
    return seconds + int(params.get("epochs") or 5) * rows * width * classes / _SGD


def sgd_seconds(n: int, d: int, k: int, params: dict) -> float:
    """``epochs`` passes, one-vs-rest."""
    return int(params.get("epochs") or 20) * n * d * (1 if k == 2 else k) / _SGD


def knn_seconds(n: int, d: int, k: int, params: dict) -> float:
    """Nothing to fit; scoring compares every scored row (train, at most TRAIN_SCORE_ROWS of them, and
    test) with every training row."""
    return (min(n, TRAIN_SCORE_ROWS) + (_SCORED - 1) * n) * n * d / _DISTANCES


def keras_seconds(n: int, d: int, k: int, params: dict) -> float:
    """Forward and backward passes (3 products) of the first layer, for about 15 epochs of early stopping."""
    epochs = min(int(params.get("epochs") or 50), 15)
    return epochs * 3 * n * d * int(params.get("units") or 256) / _BLAS


def long_fit_message(head: str, n: int, d: int, seconds: float) -> str | None:
    """One line when ``seconds`` is long, else None."""
    if seconds < LONG_FIT_SECONDS:
        return None
    took = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
    return f"the {head} head on {n} x {d} vectors may take about {took} (estimated from their size)"
