"""CPU time per image in featx's decoder, in the parent and in the workers: threads vs processes.

    python benchmarks/decode_cost.py [--images 600] [--photo 500x375] [--size 224]

Unlike images/s, CPU time hardly depends on what else the machine runs, so this says on a shared
machine what decode capacity the cores of a quiet one would give: about ``cores / worker ms`` images
per millisecond, as long as the parent's share stays small. Worker start-up is included.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed_throughput import write_photos


def cpu_seconds() -> tuple[float, float]:
    mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime, children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--photo", default="500x375")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", default="1,2", help="worker counts to measure")
    args = parser.parse_args()

    from featx.engine import decode, workers
    from featx.engine.pixels import DecodeSpec

    photo = tuple(int(v) for v in args.photo.lower().split("x"))
    paths = sorted(write_photos(Path(tempfile.mkdtemp(prefix="featx-cost-")), args.images, photo).rglob("*.jpg"))
    items = [(hashlib.sha256(p.read_bytes()).hexdigest().encode(), p) for p in paths]
    spec = DecodeSpec(args.size)
    results = []
    for count in (int(n) for n in args.workers.split(",")):
        for processes in (False, True):
            (mine0, children0), started = cpu_seconds(), time.perf_counter()
            decoded = sum(len(keys) for keys, _, _ in decode.decode_batches(
                items, spec, count, 32, sha256=lambda key: key, processes=processes))
            if workers._idle is not None:  # reap the workers, so that their CPU time is counted
                workers._idle.close()
                workers._idle = None
            (mine1, children1), wall = cpu_seconds(), time.perf_counter() - started
            results.append({"decoder": "processes" if processes else "threads", "workers": count,
                            "images_per_s": round(decoded / wall, 1),
                            "parent_cpu_ms_per_image": round(1000 * (mine1 - mine0) / decoded, 3),
                            "worker_cpu_ms_per_image": round(1000 * (children1 - children0) / decoded, 3)})
            print(json.dumps(results[-1]), flush=True)


if __name__ == "__main__":
    main()
