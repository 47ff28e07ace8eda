"""How fast and how exact is ``featx search``'s approximate index? A script that prints figures.

For each size N (default 100,000 and 1,000,000 vectors of width 768) it generates vectors shaped
like a backbone's (images of 1,000 kinds: clusters in a 64-dimensional space mapped up to D and
ReLU'd, plus noise; queries are new images of the same kinds, not in the index), then:

- builds the index of one segment of N vectors with the functions a cache's segments use
  (``featx.search.ann``: an IVF of sqrt(N) lists trained on a seeded sample; flat under 50,000);
- adds 1 % more images as a new segment (what an incremental embed makes) and times its index,
  against the full build;
- times single queries (one at a time, median and p95) over both segments through featx
  (``featx.search.ann.search``), a bare faiss search of the same two indexes with the same
  parameters in the same run (the ratio is featx's own cost, whatever the machine's load), and
  the exact blocked search of ``featx.search.exact`` on the same vectors for comparison;
- with ``--load``, times opening the stored index as ``featx search`` does (floats memory-mapped)
  against reading it whole;
- reports recall@10 of the index against the exact top 10.

    python benchmarks/search.py                         # 100k and 1M x 768 (1M: ~3 GB of vectors, twice)
    python benchmarks/search.py --n 100000 --nprobe 16 --queries 100
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from featx.search import ann
from featx.search.exact import TopK, unit

KINDS, LATENT, CHUNK = 1000, 64, 100_000


def generate(n: int, dim: int, rng: np.random.Generator, centres: np.ndarray, lift: np.ndarray,
             spread: float = 0.5) -> np.ndarray:
    """``n`` unit vectors: a kind's centre plus a per-image offset in the latent space, mapped up, ReLU'd, noised."""
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        z = centres[rng.integers(0, KINDS, m)] + rng.normal(0, spread, (m, LATENT)).astype(np.float32)
        x = np.maximum(z @ lift, 0) + rng.normal(0, 0.05, (m, dim)).astype(np.float32)
        out[start : start + m] = unit(x)
    return out


def exact(X_parts: list[np.ndarray], Q: np.ndarray, k: int) -> np.ndarray:
    """The exact top-k rows, blocked as featx.search.exact scans a segment."""
    top, start = TopK(len(Q), k), 0
    for X in X_parts:
        for s in range(0, len(X), 4096):
            block = X[s : s + 4096]
            top.add(Q @ block.T, np.arange(start + s, start + s + len(block)))
        start += len(X)
    return top.result()[1]


def run(n: int, args) -> None:
    rng = np.random.default_rng(args.seed)
    centres = rng.normal(0, 1, (KINDS, LATENT)).astype(np.float32)
    lift = rng.normal(0, 1 / np.sqrt(LATENT), (LATENT, args.dim)).astype(np.float32)
    X = generate(n, args.dim, rng, centres, lift, args.spread)
    added = generate(max(1, n // 100), args.dim, rng, centres, lift, args.spread)
    Q = generate(args.queries, args.dim, rng, centres, lift, args.spread)

    started = time.perf_counter()
    sample = X[ann.training_rows(n, args.seed)] if ann.lists_for(n) else None
    main = ann.build((X[s : s + 4096] for s in range(0, n, 4096)), n, args.dim, sample=sample, seed=args.seed)
    full = time.perf_counter() - started
    started = time.perf_counter()
    small = ann.build([added], len(added), args.dim)
    increment = time.perf_counter() - started
    parts = [(main, 0), (small, n)]

    truth = exact([X, added], Q, 10)
    if args.query_threads:
        import faiss

        faiss.omp_set_num_threads(args.query_threads)
    exact_times = []
    for q in Q[: min(10, len(Q))]:
        started = time.perf_counter()
        exact([X, added], q[None], 10)
        exact_times.append(time.perf_counter() - started)
    print(f"N={n:>9,} D={args.dim}  index {ann.lists_for(n) and f'IVF{ann.lists_of(main)},{ann.list_codes(args.dim)}' or 'flat (exact)'} + a flat "
          f"segment of {len(added):,} (+1 %)")
    print(f"  build {full:7.1f} s   adding 1 %: {increment:6.2f} s ({100 * increment / full:.1f} % of the build)   "
          f"exact blocked scan per query {1000 * np.median(exact_times):7.1f} ms")
    import faiss

    for nprobe in args.nprobe:
        latencies, bare, found = [], [], []
        params = [ann._parameters(faiss, index, nprobe, None) for index, _ in parts]
        threads = faiss.omp_get_max_threads()
        for i, q in enumerate(Q):  # featx and bare faiss alternate (the second finds the lists in the CPU's cache)
            if i % 2:
                bare.append(_bare(faiss, parts, params, q, args.query_threads or 1, threads))
            started = time.perf_counter()
            _, rows = ann.search(parts, q[None], 10, nprobe=nprobe)
            latencies.append(time.perf_counter() - started)
            found.append(rows[0])
            if not i % 2:
                bare.append(_bare(faiss, parts, params, q, args.query_threads or 1, threads))
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
        ms, bare_ms = np.asarray(latencies) * 1000, np.asarray(bare) * 1000
        print(f"  nprobe {nprobe:4d}: query median {np.median(ms):6.2f} ms  p95 {np.percentile(ms, 95):6.2f} ms   "
              f"bare faiss median {np.median(bare_ms):6.2f} ms (featx/bare {np.median(ms) / np.median(bare_ms):.2f})   "
              f"recall@10 vs exact {recall:.3f}  ({len(Q)} queries)", flush=True)
    if args.load:
        _time_loading(faiss, main)


def _bare(faiss, parts, params, q: np.ndarray, query_threads: int, threads: int) -> float:
    """Seconds faiss alone takes to search every part for ``q``, with featx's parameters."""
    faiss.omp_set_num_threads(query_threads)
    started = time.perf_counter()
    for (index, _), chain in zip(parts, params):
        index.search(q[None], 10, params=chain[-1])
    took = time.perf_counter() - started
    faiss.omp_set_num_threads(threads)
    return took


def _time_loading(faiss, index) -> None:
    """Opening the stored index as featx does (floats memory-mapped) against reading it whole."""
    import tempfile

    from featx.search.stored import _read

    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as folder:
        path = os.path.join(folder, "segment.faiss")
        faiss.write_index(index, path)
        started = time.perf_counter()
        faiss.read_index(path)
        whole = time.perf_counter() - started
        started = time.perf_counter()
        _read(faiss, __import__("pathlib").Path(path), index.ntotal, index.d)
        mapped = time.perf_counter() - started
        print(f"  opening the stored index ({os.path.getsize(path) / 1e9:.2f} GB): {mapped:.2f} s as featx does "
              f"(floats memory-mapped), {whole:.2f} s read whole", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="100000,1000000", help="sizes, comma-separated")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--nprobe", type=lambda text: [int(x) for x in text.split(",")], default=[ann.NPROBE],
                        help="lists searched per IVF segment, comma-separated to compare several")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spread", type=float, default=0.5, help="an image's spread around its kind (latent std; "
                        "the kinds' centres have std 1): larger is harder")
    parser.add_argument("--query-threads", type=int, default=0, help="faiss threads while querying (0: featx's "
                        "choice, one thread for a single query)")
    parser.add_argument("--float-lists", action="store_true", help="IVF lists of float vectors (the first layout), "
                        "to compare")
    parser.add_argument("--list-codes", help='what IVF lists hold, a faiss factory string: "SQ8,RFlat" (8-bit codes, '
                        'the layout before 4-bit product codes), to compare')
    parser.add_argument("--load", action="store_true", help="also time opening the stored index (writes it to $TMPDIR)")
    args = parser.parse_args()
    if args.float_lists or args.list_codes:
        ann.LIST_CODES = "Flat" if args.float_lists else args.list_codes
    import faiss

    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {os.cpu_count()} CPUs")
    for n in (int(x) for x in args.n.split(",")):
        run(n, args)


if __name__ == "__main__":
    main()
