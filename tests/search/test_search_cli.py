"""``featx search`` is a thin layer: argv becomes the search, hits print one per line or as JSON,
refusals are one line on stderr."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from featx.cli import app
from tests.imagegen import make_class_folder
from tests.search.conftest import embed

runner = CliRunner()


def test_search_prints_hits_and_json(cache, dataset):
    original = str(dataset / "test" / "cat" / "cat_0.png")
    done = runner.invoke(app, ["search", original, "--cache", str(cache), "--top", "2", "--split", "train"])
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert lines[0] == original and lines[1].endswith(f"train:dog  {dataset / 'train' / 'dog' / 'planted.jpg'}")
    assert len(lines) == 3
    done = runner.invoke(app, ["search", original, "--cache", str(cache), "--top", "1", "--json"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    (hit,) = result["matches"][0]["hits"]
    assert set(hit) == {"path", "label", "split", "score", "id"} and hit["path"].endswith("planted.jpg")


def test_against_on_the_command_line(cache, dataset, tmp_path):
    other = make_class_folder(tmp_path / "other", per_class=2)
    (other / "cat" / "copy.png").write_bytes((dataset / "test" / "dog" / "dog_0.png").read_bytes())
    other_cache = embed(other, tmp_path / "featx" / "other.h5")
    done = runner.invoke(app, ["search", "--cache", str(cache), "--against", str(other_cache), "--top", "1"])
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines()[1].split()[1:] == ["test:dog", str(dataset / "test" / "dog" / "dog_0.png")]


def test_bad_input_is_one_line_naming_the_argument(cache, tmp_path):
    done = runner.invoke(app, ["search", "nowhere.png", "--cache", str(cache)])
    assert done.exit_code == 1
    errors = [line for line in done.stderr.splitlines() if not line.startswith("using cache")]
    assert len(errors) == 1 and errors[0].startswith("error: QUERY... 'nowhere.png' is not an image file")
    done = runner.invoke(app, ["search", "x", "--cache", str(cache), "--label", "bird"])
    assert done.exit_code == 2 and done.stderr.splitlines()[-1].startswith("error: --label 'bird' is not a class")
