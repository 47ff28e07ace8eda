"""The Ray engine against the local one, and spread over a two-node Ray cluster on this machine.

    pip install -e ".[ray]"
    python benchmarks/ray_engine.py [--images 1000] [--size 224] [--batch-size 32] [--skip-cluster]

1. Overhead: `featx embed DATA` and `featx embed DATA --engine ray` on the same JPEGs (500x375),
   each in a fresh process into its own empty cache, wall clock, alternated (best of --rounds).
   The Ray run starts its own local Ray instance (all cores), as a user's first run would; the
   seconds Ray itself needs to start and stop are measured apart and printed.
2. Spread: `ray start --head` and a second `ray start --address` on this machine (--node-cpus
   logical CPUs each) make a two-node cluster; the driver embeds the same images through
   --address with one embedding worker per two CPUs, and prints how many images each node embedded.

Weights are random (`--weights none`): speed does not depend on their values, and this stays offline.
The ratios are what to compare: on a machine shared with other work the absolute figures vary.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed_throughput import write_photos


def _embed_cli(data: Path, cache: Path, args, *extra: str) -> float:
    command = [sys.executable, "-m", "featx", "embed", str(data), "-b", args.backbone, "--weights", "none",
               "--image-size", str(args.size), "--batch-size", str(args.batch_size), "--cache", str(cache),
               "-q", *extra]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def _ray_start_stop() -> float:
    code = ("import logging, ray; ray.init(address='local', include_dashboard=False, logging_level=logging.ERROR, "
            "log_to_driver=False);"
            " ray.shutdown()")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - started


def overhead(data: Path, work: Path, args) -> None:
    local = ray = float("inf")
    for round_ in range(args.rounds):
        local = min(local, _embed_cli(data, work / f"local{round_}", args))
        ray = min(ray, _embed_cli(data, work / f"ray{round_}", args, "--engine", "ray"))
    start_stop = _ray_start_stop()
    print(f"{args.images} JPEGs 500x375, {args.backbone} at {args.size}px, batch {args.batch_size}, "
          f"{os.cpu_count()} cores, fresh process each, best of {args.rounds}")
    print(f"local engine                     : {local:7.1f} s  ({args.images / local:6.1f} images/s)")
    print(f"ray engine (local Ray, all cores): {ray:7.1f} s  ({args.images / ray:6.1f} images/s)")
    print(f"ratio ray / local                : {ray / local:7.2f}x   (Ray's own start and stop: {start_stop:.1f} s)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spread(data: Path, work: Path, args) -> None:
    """Two Ray nodes on this machine, each a `ray start --block` process this script stops by its id."""
    import ray

    from featx.data.layouts import scan_dataset
    from featx.engine.ray import RayExecutor
    from featx.engine.run import embed_into_cache
    from featx.options import EmbedOptions

    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", str(args.node_cpus), "--block", "--disable-usage-stats"]
    ray_cli = str(Path(sys.executable).with_name("ray"))
    head = subprocess.Popen([ray_cli, "start", "--head", "--port", str(port), "--include-dashboard", "false", *common],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    nodes = [head]
    try:
        _wait_for(address, head)
        nodes.append(subprocess.Popen([ray_cli, "start", "--address", address, *common],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        options = EmbedOptions(args.backbone, weights="none", image_size=args.size, batch_size=args.batch_size,
                               engine="ray", address=address)
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        deadline = time.monotonic() + 120
        while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.monotonic() < deadline:
            time.sleep(1)
        alive = [n for n in ray.nodes() if n["Alive"]]
        executor = RayExecutor(options.resolve(), options.run_options())
        started = time.perf_counter()
        seen: list[int] = []
        report = embed_into_cache(scan_dataset(data), options.resolve(), work / "cluster" / "c.h5",
                                  options.run_options(), executor=executor,
                                  progress=lambda total: (lambda count, workers=None: seen.append(workers or 0)))
        seconds = time.perf_counter() - started
        cpus = int(ray.cluster_resources().get("CPU", 0))
        print(f"two-node cluster on this machine ({len(alive)} nodes alive, {cpus} logical CPUs, "
              f"{max(seen or [0])} embedding workers live at most): {report.embedded} images in {seconds:.1f} s "
              f"({report.embedded / seconds:.1f} images/s, Ray start of the workers included)")
        for node, count in sorted(executor.images_by_node.items(), key=lambda item: -item[1]):
            print(f"  node {node[:12]}: {count} images")
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for node in reversed(nodes):  # each `ray start --block` stops the Ray processes it started
            node.terminate()
        for node in nodes:
            try:
                node.wait(60)
            except subprocess.TimeoutExpired:
                node.kill()
        _forget_cluster(port)


def _forget_cluster(port: int) -> None:
    """Remove the note `ray start --head` leaves of this cluster (`ray stop` would, for every Ray process
    on the machine), so that no later `ray.init()` tries to join the cluster that is gone."""
    note = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    try:
        if note.read_text().strip().endswith(f":{port}"):
            note.unlink()
    except OSError:
        pass


def _wait_for(address: str, process: subprocess.Popen, seconds: float = 120) -> None:
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"ray start --head exited with {process.returncode}")
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"ray start --head did not listen on {address} within {seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--backbone", default="MobileNetV2")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--node-cpus", type=int, default=2, help="logical CPUs of each of the two cluster nodes")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-cluster", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("RAY_AUTH_MODE", "token")  # read when ray is imported: the nodes and this driver

    work = Path(tempfile.mkdtemp(prefix="featx-ray-bench-"))
    data = write_photos(work / "photos", args.images)
    if not args.skip_overhead:
        overhead(data, work, args)
    if not args.skip_cluster:
        spread(data, work, args)


if __name__ == "__main__":
    main()
