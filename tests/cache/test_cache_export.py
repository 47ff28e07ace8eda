"""featx cache export: Parquet and NumPy files that pandas, polars, DuckDB and NumPy read back."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from featx.cache.export import export_cache
from featx.errors import OptionError
from featx.features.vectors import load_features
from tests.cache.test_integrity_cache import _embed
from tests.imagegen import make_class_folder


@pytest.fixture
def cache_file(tmp_path):
    data = make_class_folder(tmp_path / "data", per_class=3)
    _embed(data, tmp_path / "c.h5")
    return tmp_path / "c.h5"


def test_parquet_streams_every_row_in_chunks(cache_file, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    assert export_cache(cache_file, tmp_path / "x.parquet", chunk_rows=4) == 6  # chunks of 4 and 2
    table = pq.read_table(tmp_path / "x.parquet")
    features = load_features(cache_file)
    assert table.column_names == ["id", "path", "label", "split", "vector"]
    X = np.asarray(table.column("vector").to_pylist(), np.float32)
    np.testing.assert_array_equal(X, features.X)
    assert table.column("path").to_pylist() == list(features.paths)
    assert table.column("label").to_pylist() == [features.classes[i] for i in features.y]


def test_npy_is_a_vector_array_and_a_csv_of_rows(cache_file, tmp_path):
    assert export_cache(cache_file, tmp_path / "out", format="npy", chunk_rows=4) == 6
    features = load_features(cache_file)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "vectors.npy", mmap_mode="r"), features.X)
    with open(tmp_path / "out" / "rows.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == list(features.ids) and [r["split"] for r in rows] == list(features.split)


def test_an_unknown_format_names_the_parameter(cache_file, tmp_path):
    with pytest.raises(OptionError, match="The 'format' parameter must be one of parquet, npy; got 'csv'"):
        export_cache(cache_file, tmp_path / "x", format="csv")


def test_the_cli_exports_the_cache_it_is_given(cache_file, tmp_path):
    from typer.testing import CliRunner

    from featx.cli.app import app

    result = CliRunner().invoke(app, ["cache", "export", str(tmp_path / "out"), "--cache", str(cache_file),
                                      "--format", "npy"])
    assert result.exit_code == 0, result.output
    assert f"wrote 6 rows of {cache_file}" in result.output
    bad = CliRunner().invoke(app, ["cache", "export", str(tmp_path / "x"), "--cache", str(cache_file),
                                   "--format", "csv"])
    assert bad.exit_code != 0 and "--format must be one of parquet, npy; got 'csv'" in bad.output
