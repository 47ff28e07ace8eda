"""argv becomes the right library call: the heads and fine-tune commands with the heavy call mocked
(fast, no TensorFlow). The end-to-end runs live in test_cli_heads.py and test_finetune.py."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from featx.cache.catalog import CacheChoice
from featx.cli import app
from featx.model.defaults import DEFAULT_WISE

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def calls(monkeypatch):
    """Record the library calls; return canned results."""
    seen: dict[str, tuple] = {}

    def fit_head(features, head, **kwargs):
        seen["fit_head"] = (features, head, kwargs)
        return SimpleNamespace(save=lambda path: seen.setdefault("save", path),
                               describe=lambda: {"head": head}, path=None)

    def compare_heads(caches, heads, **kwargs):
        seen["compare_heads"] = (caches, heads, kwargs)
        return [{"backbone": "X", "head": heads[0], "n": 4, "accuracy": 1.0, "macro_f1": 1.0, "fit_seconds": 0.1}]

    def choose_cache(cache, backbone):
        seen["choose_cache"] = (cache, backbone)
        return CacheChoice(Path("chosen.h5"))

    def fine_tune(head, **kwargs):
        seen["fine_tune"] = (head, kwargs)
        return SimpleNamespace(to_dict=lambda: {"ok": True})

    monkeypatch.setattr("featx.heads.fit_head", fit_head)
    monkeypatch.setattr("featx.heads.compare_heads", compare_heads)
    monkeypatch.setattr("featx.cache.catalog.choose_cache", choose_cache)
    monkeypatch.setattr("featx.cache.catalog.choose_caches",
                        lambda caches, backbones: [CacheChoice(Path(c)) for c in caches])
    monkeypatch.setattr("featx.model.finetune.fine_tune", fine_tune)
    return seen


def test_fit_head_arguments(calls, tmp_path):
    result = invoke("fit-head", "--head", "svm", "-p", "C=10", "-p", "kernel=linear", "--class-weight", "balanced",
                    "--cache", tmp_path, "-b", "ResNet50", "--test-size", "0.3", "--seed", "4",
                    "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    assert calls["choose_cache"] == (tmp_path, "ResNet50")
    features, head, kwargs = calls["fit_head"]
    note = kwargs.pop("note")  # how the library tells the CLI what it loads into memory (printed on stderr)
    assert callable(note)
    assert (features, head, kwargs) == (Path("chosen.h5"), "svm", {"test_size": 0.3, "seed": 4, "views": False, "augment": None,
                                                                   "class_weight": "balanced", "C": 10, "kernel": "linear"})
    assert calls["save"] == tmp_path / "out" and json.loads(result.stdout) == {"head": "svm"}


def test_compare_arguments(calls, tmp_path):
    cache = tmp_path / "a.h5"
    cache.write_bytes(b"")
    result = invoke("compare", "--heads", "logreg,knn", "--cache", cache, "--cv", "3",
                    "-p", "logreg.C=2", "-p", "n_neighbors=3", "--json")
    assert result.exit_code == 0, result.output
    caches, heads, kwargs = calls["compare_heads"]
    assert caches == [cache] and heads == ["logreg", "knn"] and kwargs["cv"] == 3
    assert kwargs["params"] == {"logreg": {"C": 2}, "knn": {"n_neighbors": 3}} and kwargs["views"] is False
    assert invoke("compare", "--cache", cache, "--views", "--json").exit_code == 0
    assert calls["compare_heads"][2]["views"] is True and calls["compare_heads"][2]["augment"] is None
    assert invoke("compare", "--cache", cache, "--views", "--augment", "crop", "--json").exit_code == 0
    assert (calls["compare_heads"][2]["views"], calls["compare_heads"][2]["augment"]) == (True, "crop")


def test_compare_fine_tune_adds_the_libraries_row(calls, tmp_path, monkeypatch):
    cache = tmp_path / "a.h5"
    cache.write_bytes(b"")
    seen = {}

    def fine_tune_row(caches, rows, **kwargs):
        seen["row"] = (caches, rows, kwargs)
        return {"backbone": "X", "head": "logreg+fine-tune", "n": 4, "accuracy": 1.0, "macro_f1": 1.0,
                "fit_seconds": 9.0, "kept": "head", "start": 1.0}

    monkeypatch.setattr("featx.model.leaderboard.fine_tune_row", fine_tune_row)
    result = invoke("compare", "--heads", "logreg", "--cache", cache, "--seed", "3", "--fine-tune")
    assert result.exit_code == 0, result.output
    caches, rows, kwargs = seen["row"]
    assert caches == [cache] and [r["head"] for r in rows] == ["logreg"] and kwargs["seed"] == 3
    assert "logreg+fine-tune" in result.stdout and "would keep the head's model" in result.stdout
    assert "logreg+fine-tune" not in invoke("compare", "--cache", cache, "--heads", "logreg").stdout
    result = invoke("compare", "--cache", cache, "--fine-tune", "--cv", "3")
    assert result.exit_code == 2 and "--fine-tune scores on the test split; drop --cv" in result.stderr


def test_fine_tune_arguments(calls, tmp_path):
    result = invoke("fine-tune", tmp_path / "head", "--unfreeze", "0.5", "--epochs", "3", "--learning-rate", "1e-4",
                    "--batch-size", "4", "--no-augment", "-o", tmp_path / "m.keras", "--seed", "2", "--json")
    assert result.exit_code == 0, result.output
    head, kwargs = calls["fine_tune"]
    assert head == tmp_path / "head"
    assert {k: kwargs[k] for k in ("unfreeze", "epochs", "learning_rate", "batch_size", "augment", "output", "seed")} \
        == {"unfreeze": "0.5", "epochs": 3, "learning_rate": 1e-4, "batch_size": 4, "augment": "",
            "output": tmp_path / "m.keras", "seed": 2}
    assert (kwargs["head_learning_rate"], kwargs["wise"]) == (None, DEFAULT_WISE)  # the library's defaults
    assert invoke("fine-tune", tmp_path / "head", "--head-learning-rate", "3e-3", "--wise", "0.5", "--json").exit_code == 0
    assert (calls["fine_tune"][1]["head_learning_rate"], calls["fine_tune"][1]["wise"]) == (3e-3, 0.5)
    assert invoke("fine-tune", tmp_path / "head", "--augment", "", "--json").exit_code == 0
    assert calls["fine_tune"][1]["augment"] == ""  # the same call as --no-augment
    assert invoke("fine-tune", tmp_path / "head", "--augment", "crop,jitter", "--json").exit_code == 0
    assert calls["fine_tune"][1]["augment"] == "crop,jitter"
    assert invoke("fine-tune", tmp_path / "head", "--json").exit_code == 0
    assert calls["fine_tune"][1]["augment"] == "flip,crop,jitter"  # chosen on real features (docs/finetune.md)


def test_library_errors_come_back_as_the_commands_flags(monkeypatch):
    from featx.errors import OptionError

    def refuse(*args, **kwargs):
        raise OptionError("{param} must be at least 0 and below 1; got 1.5.", param="test_size")

    monkeypatch.setattr("featx.cache.catalog.choose_cache", lambda cache, backbone: CacheChoice(Path("c.h5")))
    monkeypatch.setattr("featx.heads.fit_head", refuse)
    result = invoke("fit-head", "--test-size", "1.5")
    assert result.exit_code == 2
    assert result.stderr.endswith("error: --test-size must be at least 0 and below 1; got 1.5.\n")
