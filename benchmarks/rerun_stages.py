"""Where a run's memory goes: the resident memory per image after each stage of one ``featx embed``
(the scan, the index read, the join of the scan to the committed table, the plan, the commit), and the
peak so far, above the process once featx, its CLI and Keras are imported.

    python benchmarks/scale.py --sizes 1000000 --work /path/kept --phases "first embed"   # once
    python benchmarks/rerun_stages.py /path/kept/data1000000 /path/kept/cache1000000-16d-float32.h5 \\
        /path/kept/tiny16.keras

Add images to the folder first to see a +1 % run (``scale.py`` writes and removes them itself).
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path


def _kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data")
    parser.add_argument("cache")
    parser.add_argument("backbone")
    args = parser.parse_args()

    import featx.cache.append as append
    import featx.engine.commit as commit
    import featx.engine.run as run
    from featx.backend import import_keras
    from featx.cli.app import app

    import_keras()
    marks: list[tuple[str, float, int, int]] = []
    base, started = _kb("VmRSS"), time.perf_counter()
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) := now

    def mark(stage: str) -> None:
        marks.append((stage, time.perf_counter() - started, _kb("VmRSS") - base, _kb("VmHWM") - base))

    def after(module, name: str, label: str | None = None) -> None:
        original = getattr(module, name)

        def marked(*a, **k):
            result = original(*a, **k)
            mark(label or name)
            return result
        setattr(module, name, marked)

    for name in ("scan_dataset", "index_files", "plan_run"):
        after(run, name)
    after(run.CacheIndex, "read", "CacheIndex.read")
    after(append, "write_segment_if_any", "  commit: new segment")
    after(append, "layout_table", "  commit: image table")
    after(commit.RunPlan, "commit_if_changed")
    try:
        app(["embed", args.data, "--backbone", args.backbone, "--cache", args.cache, "--batch-size", "256",
             "--quiet"], standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise
    mark("end")
    images = sum(len(files) for _, _, files in os.walk(args.data)) or 1  # counted after: no churn before
    print(f"{images:,} files")
    for stage, seconds, held, peak in marks:
        print(f"{stage:26s} {seconds:7.2f} s   held {held / images:5.0f} B/image   peak so far {peak / images:5.0f} B/image")


if __name__ == "__main__":
    main()
