"""Issue 31: saving a head fitted on a million images costs bytes, not a copy of its split: head.json
is encoded and hashed piece by piece, the split's id lists are written as they are."""

from __future__ import annotations

import hashlib
import json
import tracemalloc

import numpy as np
from sklearn.linear_model import LogisticRegression

from featx.heads.headfile import content_checksum, read_head_meta, write_head_folder


def _meta(n: int) -> dict:
    ids = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]
    return {"head": "logreg", "params": {"C": np.float64(1.0)}, "classes": ["a", "b"], "config": {}, "sources": {},
            "fingerprint": "f", "feature_dim": 4, "fit_seconds": 0.1, "metrics": {}, "cache": None,
            "featx_version": "0", "created": "2026-12-07T10:00:00+00:00",
            "split": {"method": "holdout", "test_size": np.float64(0.2), "seed": 0, "train": ids[: n // 2],
                      "val": [], "test": ids[n // 2:]}}


def test_head_json_is_what_it_was_and_saving_copies_no_split(tmp_path):
    n = 20_000
    meta = _meta(n)
    estimator = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])
    write_head_folder(tmp_path / "warm", estimator, _meta(10))  # skops imported before the count
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        write_head_folder(tmp_path / "head", estimator, meta)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (peak - before) / n < 60, (peak - before) / n  # a copy of the ids and the JSON in one str: ~320
    saved = read_head_meta(tmp_path / "head", ["logreg"])  # the checksum verifies
    assert saved["split"]["train"] == meta["split"]["train"] and saved["split"]["test_size"] == 0.2
    assert list(saved["split"]) == list(meta["split"]) and saved["params"] == {"C": 1.0}
    body = {k: v for k, v in saved.items() if k != "checksum"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    assert saved["checksum"] == content_checksum(saved) == hashlib.sha256(canonical.encode()).hexdigest()
