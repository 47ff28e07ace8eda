"""A fine-tune row for the heads' leaderboard (``featx compare --fine-tune``).

It answers "is fine-tuning worth it here" on the user's own data: the best head of the leaderboard
that converts to Keras layers is refitted on the same split and fine-tuned
(:func:`featx.model.finetune.fine_tune`, its defaults unless given), and the fine-tuned model is
scored on the same test images as the heads. The model is written to a temporary folder and
discarded; ``featx fine-tune`` keeps one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from featx.features.fusion import cache_label
from featx.features.vectors import Features
from featx.heads.fit import as_features, fit_head, head_params
from featx.heads.registry import convertible_heads, get_head_spec


def fine_tune_row(caches: Sequence[Features | str | os.PathLike], rows: Sequence[dict], *,
                  params: dict[str, dict] | None = None, test_size: float = 0.2, seed: int = 0,
                  class_weight: str | None = None, note: Callable[[str], None] | None = None,
                  **options) -> dict | None:
    """The leaderboard row of fine-tuning from the best convertible head among ``rows`` (rows of
    :func:`featx.heads.compare_heads` on ``caches``, plain vectors only); None, said through
    ``note``, when no compared head converts. ``options`` go to :func:`~featx.model.finetune.fine_tune`.

    The row has the heads' keys (``accuracy`` and ``macro_f1`` on the test split, ``fit_seconds``:
    the whole fine-tune) plus ``kept``: "head" when validation did not improve and fine-tuning
    would keep the head's model, ``start``: the test accuracy of the warm start.
    """
    from featx.model.finetune import fine_tune

    convertible = set(convertible_heads())
    candidates = [r for r in rows if r["head"] in convertible and not r.get("views")]
    labelled = {cache_label(as_features(cache)): cache for cache in caches}
    candidates = [r for r in candidates if r.get("cache") in labelled]
    if not candidates:
        if note is not None:
            note(f"no fine-tune row: none of the compared heads converts to Keras layers "
                 f"({', '.join(sorted(convertible))} do)")
        return None
    best = max(candidates, key=lambda r: (r["accuracy"], r["macro_f1"]))
    spec = get_head_spec(best["head"])
    kwargs = head_params(spec, (params or {}).get(spec.name, {}), seed=seed, class_weight=class_weight)
    head = fit_head(labelled[best["cache"]], spec.name, test_size=test_size, seed=seed, note=note, **kwargs)
    with tempfile.TemporaryDirectory(prefix="featx-compare-") as folder:
        report = fine_tune(head, output=Path(folder) / "fine-tuned.keras", seed=seed, **options)
    test = report.after.get("test", {})
    return {"backbone": best["backbone"], "head": f"{spec.name}+fine-tune", "accuracy": test.get("accuracy", 0.0),
            "macro_f1": test.get("macro_f1", 0.0), "fit_seconds": report.seconds, "n": best["n"],
            "cache": best["cache"], "views": 0, "kept": report.kept,
            "start": report.before.get("test", {}).get("accuracy", 0.0)}
