"""The command line end to end: argv → API call → output and exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from featx.cli import app
from tests.imagegen import make_class_folder

runner = CliRunner()
FAST = ["--weights", "none", "--image-size", "32"]


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_backbones_table_and_json():
    result = invoke("backbones")
    assert result.exit_code == 0
    assert "Xception" in result.stdout and "299" in result.stdout
    rows = json.loads(invoke("backbones", "--json").stdout)
    assert len(rows) == 40 + 10  # the Keras applications, then the curated keras-hub transformers
    xception = next(r for r in rows if r["name"] == "Xception")
    assert xception == {"name": "Xception", "input_size": 299, "feature_dim": 2048,
                        "preprocessing": "tf", "params": 20_861_480}
    assert [r["name"] for r in json.loads(invoke("backbones", "resnet5", "--json").stdout)] == ["ResNet50", "ResNet50V2"]


@pytest.mark.integration
def test_embed_json_then_rerun_then_cache_info(tmp_path, cache_dir):
    data = make_class_folder(tmp_path / "data", per_class=2)
    (data / "dog" / "bad.jpg").write_bytes(b"")
    first = invoke("embed", data, "--backbone", "mobilenetv2", *FAST, "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert (report["images"], report["embedded"], report["reused"], report["feature_dim"]) == (5, 4, 0, 1280)
    assert report["skipped"] == [{"path": str(data / "dog" / "bad.jpg"), "reason": "empty file (0 bytes)"}]
    assert os.path.dirname(report["cache"]) == str(cache_dir)

    again = invoke("embed", data, "-b", "MobileNetV2", *FAST)
    assert again.exit_code == 0
    assert "5 images: 0 embedded, 4 reused, 1 skipped" in again.stdout
    assert "skipped " + str(data / "dog" / "bad.jpg") + ": empty file (0 bytes)" in again.stdout

    info = json.loads(invoke("cache", "info", "--json").stdout)
    assert [(c["backbone"], c["images"], c["vectors"], c["skipped"]) for c in info] == [("MobileNetV2", 5, 4, 1)]
    text = invoke("cache", "info", report["cache"])
    assert text.exit_code == 0 and "input_size=32" in text.stdout and "dataset   " + str(data) in text.stdout


@pytest.mark.integration
@pytest.mark.parametrize(
    "args,code,message",
    [
        (["embed", "{data}", "--backbone", "Xceptoin"], 2, "Did you mean Xception"),
        (["embed", "{data}", "--resize", "squash"], 2, "--resize must be one of stretch, crop, pad"),
        (["embed", "{data}", "--pooling", "mean"], 2, "--pooling must be one of avg, max"),
        (["embed", "{data}", "--weights", "nope.h5"], 2, "--weights 'nope.h5' is neither"),
        (["embed", "{data}/missing"], 1, "does not exist"),
        (["cache", "info", "{data}/cat/cat_0.png"], 1, "not a readable featx cache"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(tmp_path, cache_dir, args, code, message):
    data = make_class_folder(tmp_path / "data", per_class=1)
    result = invoke(*(a.format(data=data) for a in args))
    assert result.exit_code == code
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


@pytest.mark.integration
def test_python_dash_m_featx():
    result = subprocess.run([sys.executable, "-m", "featx", "--help"], capture_output=True, text=True, check=True)
    assert "embed" in result.stdout and "backbones" in result.stdout


@pytest.mark.integration
def test_rerun_on_an_unchanged_folder_does_not_import_tensorflow(tmp_path, cache_dir):
    data = make_class_folder(tmp_path / "data", per_class=2)
    assert invoke("embed", data, *FAST, "-q").exit_code == 0
    argv = ["embed", str(data), "--weights", "none", "--image-size", "32", "--json"]
    code = (
        "import sys; from featx.cli import app; "
        f"app({argv!r}, standalone_mode=False); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    )
    env = {**os.environ, "FEATX_CACHE_DIR": str(cache_dir)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["reused"] == 4


@pytest.mark.integration
def test_demo_writes_digits_embeds_offline_and_fits_a_head(tmp_path, cache_dir):
    result = runner.invoke(app, ["demo", str(tmp_path / "demo"), "--image-size", "32"])
    assert result.exit_code == 0, result.output
    assert "ImageNet weights unavailable" in result.stderr and "continuing with --weights none" in result.stderr
    assert "embedded 1797 images with MobileNetV2 (weights none)" in result.stdout
    assert "logreg head: test accuracy" in result.stdout
    assert sorted(p.name for p in (tmp_path / "demo" / "train").iterdir()) == [str(d) for d in range(10)]
    assert len(list((tmp_path / "demo").rglob("*.png"))) == 1797
    assert len(list((cache_dir / "heads").iterdir())) == 1


# ------------------------------------------- argv becomes the right API call (the heavy call mocked)


def test_embed_flags_become_one_embed_options(tmp_path, monkeypatch):
    from featx.features.reports import EmbedReport
    from featx.options import EmbedOptions

    calls = []

    def fake_update_cache(data, options, **kwargs):
        calls.append((data, options, kwargs))
        return EmbedReport(cache_path=tmp_path / "c.h5", images=3, embedded=2, reused=1, feature_dim=7)

    monkeypatch.setattr("featx.cli.embed.update_cache", fake_update_cache)
    result = invoke("embed", tmp_path, "-b", "ResNet50", "--weights", "none", "--seed", "3", "--image-size", "64",
                    "--resize", "crop", "--pooling", "max", "--batch-size", "8", "--workers", "2",
                    "--max-pixels", "1000", "--cache", tmp_path / "cache", "--no-wait", "--json")
    assert result.exit_code == 0, result.output
    [(data, options, kwargs)] = calls
    assert str(data) == str(tmp_path)  # a str: DATA may be a URL, which a Path would mangle
    assert options == EmbedOptions("ResNet50", weights="none", seed=3, image_size=64, resize="crop", pooling="max",
                                   batch_size=8, workers=2, max_pixels=1000)
    assert kwargs["cache"] == tmp_path / "cache" and kwargs["wait"] is False and kwargs["progress"] is None
    assert json.loads(result.stdout)["embedded"] == 2


def test_embed_defaults_and_strict(tmp_path, monkeypatch):
    from featx.features.reports import EmbedReport, SkippedImage
    from featx.options import EmbedOptions

    calls = []

    def fake_update_cache(data, options, **kwargs):
        calls.append(options)
        return EmbedReport(cache_path=tmp_path / "c.h5", images=2, embedded=1, feature_dim=7,
                           skipped=[SkippedImage(str(tmp_path / "x.jpg"), "empty file (0 bytes)")])

    monkeypatch.setattr("featx.cli.embed.update_cache", fake_update_cache)
    result = invoke("embed", tmp_path, "--strict")
    assert calls == [EmbedOptions()]
    assert result.exit_code == 1 and "--strict" in result.stderr
    assert "skipped " + str(tmp_path / "x.jpg") + ": empty file (0 bytes)" in result.stdout


def test_option_errors_name_the_flag_and_exit_2_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr("featx.cli.embed.update_cache", lambda *a, **k: pytest.fail("must not run"))
    result = invoke("embed", tmp_path, "--batch-size", "0")
    assert result.exit_code == 2
    assert result.stderr == "error: --batch-size must be an integer from 1 to 65536; got 0.\n"


def test_version():
    import featx

    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"featx {featx.__version__}\n"
