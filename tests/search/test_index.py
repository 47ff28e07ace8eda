"""The approximate index follows the cache: one file per segment beside it, keyed by segment digest
and fingerprint; adding images indexes only the new segment; stale files are rebuilt, never used;
the files are featx's own (no output lands on them; 'cache rm' deletes them)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from featx.cache.append import compact_cache
from featx.cache.delete import delete_cache
from featx.cache.locate import search_dir
from featx.cache.outputs import check_outputs, featx_owned
from featx.errors import CacheError, MissingDependencyError, OptionError
from featx.search import search
from featx.search.stored import stored_indexes
from tests.imagegen import make_class_folder
from tests.search.conftest import embed

faiss = pytest.importorskip("faiss")


class _Hits(list):
    """Hits as (path, score) per match; equal when the paths are and the scores agree within 1e-5
    (faiss and NumPy sum the products in other orders)."""

    def __eq__(self, other):
        return [[p for p, _ in m] for m in self] == [[p for p, _ in m] for m in other] and np.allclose(
            [s for m in self for _, s in m], [s for m in other for _, s in m], atol=1e-5)


def _hits(result):
    return _Hits([(h.path, h.score) for h in m.hits] for m in result)


def test_ivf_searching_every_list_finds_the_exact_hits_with_exact_scores_and_selectors_filter(monkeypatch):
    """Every list searched: the codes' REFINE x k best are re-scored on the floats, so the scores are
    exact cosines and the hits those of exact search (on vectors shaped like embeddings: clusters)."""
    from featx.search import ann
    from featx.search.exact import TopK, unit

    monkeypatch.setattr(ann, "FLAT_ROWS", 100)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 32))
    X = unit(centres[rng.integers(0, 20, 1200)] + rng.normal(0, 0.5, (1200, 32)))
    Y = unit(centres[rng.integers(0, 20, 50)] + rng.normal(0, 0.5, (50, 32)))
    Q = unit(centres[rng.integers(0, 20, 20)] + rng.normal(0, 0.5, (20, 32)))
    index = ann.build([X[:400], X[400:]], 1200, 32, sample=X[ann.training_rows(1200)])
    assert ann.lists_of(index) == 34
    flat = ann.build([Y], 50, 32)
    assert ann.lists_of(flat) == 0
    scores, rows = ann.search([(index, 0), (flat, 1200)], Q, 7, nprobe=34)
    every = np.hstack([Q @ X.T, Q @ Y.T])
    top = TopK(len(Q), 7)
    top.add(every, np.arange(1250))
    np.testing.assert_array_equal(rows, top.result()[1])
    np.testing.assert_allclose(scores, top.result()[0], atol=1e-6)  # re-scored on the floats, not the codes
    allowed = np.zeros(1250, bool)
    allowed[::3] = True
    _, rows = ann.search([(index, 0), (flat, 1200)], Q, 7, allowed=allowed, nprobe=34)
    assert (rows % 3 == 0).all()


def test_ivf_lists_hold_4_bit_product_codes_and_single_queries_run_on_one_thread(monkeypatch):
    """A query's time goes to scanning the probed lists: 4-bit codes of 4 numbers each are a sixteenth
    of float lists' bytes (the floats kept only to re-score the best), 8-bit ones where 4 does not
    divide the width; one query does not wait on a second thread."""
    import faiss

    from featx.search import ann
    from featx.search.exact import unit

    monkeypatch.setattr(ann, "FLAT_ROWS", 100)
    X = unit(np.random.default_rng(1).normal(size=(2000, 32)))
    index = ann.build([X], 2000, 32, sample=X[ann.training_rows(2000)])
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    assert isinstance(ivf, faiss.IndexIVFPQFastScan) and ivf.pq.M == 8 and ivf.pq.nbits == 4
    assert ivf.code_size == 4 and isinstance(index, faiss.IndexRefine)  # half a byte per 4 numbers
    odd = ann.build([X[:, :30]], 2000, 30, sample=unit(X[ann.training_rows(2000), :30]))
    assert faiss.extract_index_ivf(odd).code_size == 30  # one byte per number
    seen, parameters = [], ann._parameters
    monkeypatch.setattr(ann, "_parameters", lambda faiss, *args: seen.append(faiss.omp_get_max_threads())
                        or parameters(faiss, *args))
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(3)
    try:
        ann.search([(index, 0)], X[:1], 5)
        ann.search([(index, 0)], X[: ann.SINGLE_THREAD_QUERIES], 5)
        assert faiss.omp_get_max_threads() == 3
    finally:
        faiss.omp_set_num_threads(threads)
    assert seen == [1, 1, 3, 3]  # (the refine step and its coded lists, each search)


def test_a_stored_product_code_index_reads_back_with_its_floats_mapped(monkeypatch, tmp_path):
    import faiss

    from featx.search import ann
    from featx.search.exact import unit
    from featx.search.stored import _read, _store

    monkeypatch.setattr(ann, "FLAT_ROWS", 100)
    X = unit(np.random.default_rng(2).normal(size=(2000, 32)))
    index = ann.build([X], 2000, 32, sample=X[ann.training_rows(2000)])
    assert _store(faiss, index, tmp_path / "segment.faiss")
    again = _read(faiss, tmp_path / "segment.faiss", 2000, 32)
    assert isinstance(again, faiss.IndexRefine) and _read(faiss, tmp_path / "segment.faiss", 1999, 32) is None
    for a, b in zip(ann.search([(index, 0)], X[:20], 5, nprobe=8), ann.search([(again, 0)], X[:20], 5, nprobe=8)):
        np.testing.assert_array_equal(a, b)


def test_the_index_gives_exact_hits_on_small_segments_and_indexes_only_a_new_segment(cache, dataset, tmp_path):
    query = [dataset / "test" / "cat" / "cat_0.png"]
    exact = search(cache, query, top=6, method="exact")
    first = search(cache, query, top=6, method="index")
    assert first.method == "index" and _hits(first) == _hits(exact)
    assert first.notes == ("indexed 1 of 1 segments in " + first.notes[0].split(" in ")[1],)
    (stored,) = stored_indexes(cache)
    assert stored.parent == search_dir(cache)
    before = stored.stat().st_mtime_ns
    again = search(cache, query, top=6, method="index")
    assert again.notes == () and _hits(again) == _hits(exact)

    make_class_folder(dataset / "train", classes=("cat",), per_class=2)  # new images: a second segment
    embed(dataset, cache)
    grown = search(cache, query, top=6, method="index")
    assert grown.notes[0].startswith("indexed 1 of 2 segments")
    assert len(stored_indexes(cache)) == 2 and stored.stat().st_mtime_ns == before  # the old one untouched
    assert _hits(grown) == _hits(search(cache, query, top=6, method="exact"))

    compact_cache(cache)  # one segment again: both files are stale and go with the compaction
    assert stored_indexes(cache) == []
    compacted = search(cache, query, top=6, method="index")
    assert compacted.notes[0].startswith("indexed 1 of 1 segments")
    (merged,) = stored_indexes(cache)
    assert merged != stored and not stored.exists()


def test_a_stale_or_damaged_index_file_is_rebuilt_never_used(cache, dataset):
    query = [dataset / "test" / "cat" / "cat_0.png"]
    exact = _hits(search(cache, query, top=4, method="exact"))
    search(cache, query, top=4, method="index")
    (stored,) = stored_indexes(cache)
    wrong = faiss.IndexFlatIP(1280)  # the right name, other vectors: its rows are not the segment's
    wrong.add(np.ones((3, 1280), np.float32))
    faiss.write_index(wrong, str(stored))
    result = search(cache, query, top=4, method="index")
    assert result.notes and _hits(result) == exact
    stored.write_bytes(b"damaged")
    result = search(cache, query, top=4, method="index")
    assert result.notes and _hits(result) == exact
    assert faiss.read_index(str(stored)).ntotal == 13


def test_index_files_are_featx_own_and_cache_rm_deletes_them(cache, dataset, tmp_path):
    search(cache, [dataset / "test" / "cat" / "cat_0.png"], method="index")
    (stored,) = stored_indexes(cache)
    assert featx_owned(stored) and featx_owned(search_dir(cache))
    with pytest.raises(OptionError, match="is the search of the cache data.h5|inside the search folder"):
        check_outputs({"report": stored})
    (search_dir(cache) / "notes.txt").write_text("mine")
    with pytest.raises(CacheError, match="search folder holds .*notes.txt"):
        delete_cache(cache)
    assert cache.exists() and stored.exists()
    (search_dir(cache) / "notes.txt").unlink()
    delete_cache(cache)
    assert not search_dir(cache).exists() and not cache.exists()


def test_without_faiss_the_index_is_one_line_and_auto_stays_exact(cache, dataset, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    query = [dataset / "test" / "cat" / "cat_0.png"]
    with pytest.raises(MissingDependencyError, match=r"^The 'method' parameter: .*pip install \"featx\[search\]\"$"):
        search(cache, query, method="index")
    assert search(cache, query, method="auto").method == "exact"
    with pytest.raises(OptionError, match="'method' parameter must be one of auto, exact, index"):
        search(cache, query, method="fast")


def test_auto_uses_the_index_from_index_rows_on(cache, dataset, monkeypatch):
    from featx.search import run as search_run  # the module: the attribute featx.search is the function

    query = [dataset / "test" / "cat" / "cat_0.png"]
    assert search(cache, query).method == "exact"
    monkeypatch.setattr(search_run, "INDEX_ROWS", 10)
    result = search(cache, query)
    assert result.method == "index" and _hits(result) == _hits(search(cache, query, method="exact"))


def test_nprobe_reaches_the_index_and_is_refused_where_it_means_nothing(cache, dataset, monkeypatch):
    from typer.testing import CliRunner

    from featx.cli import app
    from featx.search import ann

    asked, original = [], ann.search
    monkeypatch.setattr(ann, "search", lambda *args, nprobe, **kwargs: asked.append(nprobe)
                        or original(*args, nprobe=nprobe, **kwargs))
    query = [dataset / "test" / "cat" / "cat_0.png"]
    search(cache, query, method="index")
    search(cache, query, method="index", nprobe=7)
    done = CliRunner().invoke(app, ["search", *map(str, query), "--cache", str(cache), "--method", "index",
                                    "--nprobe", "3"])
    assert done.exit_code == 0, done.output
    assert asked == [ann.NPROBE, 7, 3]
    with pytest.raises(OptionError, match="'nprobe' parameter applies to the approximate index"):
        search(cache, query, method="exact", nprobe=7)
    with pytest.raises(OptionError, match="'nprobe' parameter must be"):
        search(cache, query, method="index", nprobe=0)
