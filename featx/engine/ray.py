"""The Ray engine: the local plan and commits, with decoding and embedding on a Ray cluster.

The driver (this process) plans exactly as the local engine does (:mod:`featx.engine.run`: list,
hash, what is new) and commits every batch that comes back as a shard, alone, under the cache's
lock. Ray Data does the rest: CPU tasks read and decode the planned files with featx's own
:func:`featx.engine.pixels.load_planned` (so the pixels, and the vectors, are the local engine's), an
actor pool embeds them, one :class:`~featx.engine.extractor.FeatureExtractor` built once per actor (on its
GPU when it holds one), and the batches stream back through ``iter_batches``. A dead actor is
restarted and its batch retried by Ray Data (its actor pools' own policy: restarts and retries
without limit); a killed driver loses the batches not yet committed, and the rerun embeds only
those. A URL dataset (``s3://...``, :mod:`featx.data.objectstore`) is hashed by Ray tasks and read by
the decoding tasks, so its bytes never pass through the driver. Install with
``pip install "featx[ray]"``.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from featx import errors
from featx._faults import crash_point
from featx.backend import resolve_backend
from featx.config import EmbedConfig
from featx.engine.executor import Batch
from featx.engine.extractor import CPU_BATCH_SIZE
from featx.engine.pixels import NotAsPlannedError, load_planned
from featx.errors import ClusterError, FeatxError, ImageDecodeError, MissingDependencyError, first_line
from featx.options import RunOptions

# Not the embedding workers' 1: Ray Data fuses steps that ask for the same resources, and decoding
# would then run inside the embedding actors, waiting for the backbone instead of running beside it.
DECODE_CPUS = 0.5
LIVE_SECONDS = 30.0  # a worker is live while it delivered a batch this recently
CONNECT_TIMEOUT = 5.0  # seconds to reach a cluster's address before saying it cannot be reached


def import_ray():
    """The ``ray`` module with Ray Data, or one line saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise MissingDependencyError(
            '{param} is ray, which needs Ray Data (not installed): pip install "featx[ray]"', param="engine"
        ) from None
    return ray


class RayExecutor:
    """Decodes and embeds planned images on Ray (see the module docstring), for :func:`featx.engine.run._update`.

    ``run.address`` names the cluster (None: ``$RAY_ADDRESS``, else a new local instance; ``"auto"``:
    the cluster started on this machine; a Ray already initialised in this process is used as it
    is). ``run.workers`` embedding actors (default: one per GPU group when ``run.gpus_per_worker``,
    else one per two CPUs of the cluster) of ``run.gpus_per_worker`` GPUs each. ``images_by_node``
    counts where the work ran. Ray Data's progress bars are turned off in this process (featx
    draws its own).
    """

    def __init__(self, config: EmbedConfig, run: RunOptions):
        self.ray = import_ray()
        self.config, self.run = config, run
        self.batch_size = run.batch_size or CPU_BATCH_SIZE  # (no GPU search across a cluster's actors)
        self.backend = resolve_backend(run.backend)
        self.feature_dim = 0  # known from the first batch back
        self.images_by_node: Counter[str] = Counter()
        self._seen: dict[str, float] = {}

    @property
    def live_workers(self) -> int:
        """Workers that delivered a batch in the last :data:`LIVE_SECONDS`."""
        now = time.monotonic()
        return sum(1 for last in self._seen.values() if now - last <= LIVE_SECONDS)

    def batches(self, todo: dict[bytes, Path | str]) -> Iterator[Batch]:
        connect(self.ray, self.run.address)
        for batch in _stream(self.ray, self._dataset(todo), self.batch_size):
            yield self._unpack(batch)

    def _dataset(self, todo: dict[bytes, Path | str]):
        ray, run, config = self.ray, self.run, self.config
        from ray.data import DataContext

        context = DataContext.get_current()
        context.enable_progress_bars = False  # featx draws its own
        context.print_on_execution_start = False
        if not os.environ.get("FEATX_DEBUG"):  # featx says what failed in one line; FEATX_DEBUG=1: Ray's logs
            logging.getLogger("ray.data").setLevel(logging.CRITICAL)
        items = [{"id": content_id, "path": str(path)} for content_id, path in todo.items()]
        batch_size = self.batch_size
        blocks = min(-(-len(items) // batch_size), 1000)  # a block per batch: each worker gets some
        workers = run.workers or _default_workers(ray, run.gpus_per_worker)
        return (
            ray.data.from_items(items, override_num_blocks=blocks)
            .map_batches(decode_batch, batch_size=batch_size, batch_format="numpy", num_cpus=DECODE_CPUS,
                         fn_kwargs={"size": config.input_size, "resize": config.resize, "max_pixels": run.max_pixels,
                                    "jpeg_draft": config.jpeg_draft},
                         runtime_env=_runtime_env())
            .map_batches(_worker_class(config, batch_size, self.backend), batch_size=batch_size,
                         batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers),
                         num_gpus=run.gpus_per_worker or None, runtime_env=_runtime_env())
        )

    def _unpack(self, batch: dict[str, np.ndarray]) -> Batch:
        ids = [bytes(i) for i in batch["id"]]
        reasons = [str(r) for r in batch["reason"]]
        good = np.asarray([not r for r in reasons], dtype=bool)
        vectors = np.asarray(batch["vector"], np.float32)
        self.feature_dim = int(vectors.shape[1])
        failures = [(i, (NotAsPlannedError if stale else ImageDecodeError)(r))
                    for i, r, stale in zip(ids, reasons, batch["not_as_planned"]) if r]
        now = time.monotonic()
        for worker in set(batch["worker"].tolist()):
            self._seen[worker] = now
        self.images_by_node.update(batch["node"].tolist())
        return [i for i, ok in zip(ids, good) if ok], vectors[good], failures


def connect(ray, address: str | None) -> bool:
    """Initialise Ray on ``address`` unless it already is; True when this call started it.

    Ray stays up for the process's later runs (and shuts down at its exit). An address that does not
    answer within :data:`CONNECT_TIMEOUT` is one line naming it (Ray itself would retry for minutes).
    """
    if ray.is_initialized():
        return False
    # No address: a new local instance, not whatever cluster a stale file under /tmp/ray names
    # (which Ray's own default would try, and retry for minutes when it is gone); "auto" asks for that.
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    if address not in ("auto", "local"):
        _check_reachable(address)
    quiet = not os.environ.get("FEATX_DEBUG")  # FEATX_DEBUG=1: Ray's logs and its workers' output
    try:
        ray.init(address=address, include_dashboard=False if address == "local" else None,
                 logging_level=logging.ERROR if quiet else logging.INFO, log_to_driver=not quiet,
                 configure_logging=True)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        raise ClusterError(f"Cannot reach the Ray cluster at {address} ({first_line(exc)}); "
                           "check {param}.", param="address") from None
    return True


def _check_reachable(address: str) -> None:
    """Fail in one line unless something listens at ``address`` (``host:port`` or ``ray://host:port``)."""
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise ClusterError(f"{{param}} {address!r} is not a Ray address (host:port or ray://host:port).",
                           param="address")
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise ClusterError(f"Cannot reach the Ray cluster at {address} ({exc.strerror or exc}); check {{param}}.",
                           param="address") from None


def _default_workers(ray, gpus_per_worker: float) -> int:
    """One embedding actor per ``gpus_per_worker`` GPUs, else one per two CPUs (decoding needs the rest)."""
    resources = ray.cluster_resources()
    if gpus_per_worker:
        return max(1, int(resources.get("GPU", 0) // gpus_per_worker))
    return max(1, int(resources.get("CPU", 1)) // 2)


def _stream(ray, dataset, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """The dataset's output in batches of ``batch_size`` rows (Ray packs several into a block); a featx
    error raised on a worker is raised here as itself."""
    try:
        yield from dataset.iter_batches(batch_size=batch_size, batch_format="numpy", prefetch_batches=1)
    except ray.exceptions.RayError as exc:
        cause = _featx_cause(exc)
        if cause is not None:
            raise cause from None
        raise FeatxError(f"The Ray engine failed: {first_line(exc)}") from exc


_REMOTE_FEATX_ERROR = re.compile(r"^featx\.errors\.(\w+): (.+)$", re.MULTILINE)


def _featx_cause(exc: BaseException) -> FeatxError | None:
    """The featx error a worker raised, from the exception chain or, when Ray kept only its text (an
    actor that died in its constructor), from that text; None when it was not featx's."""
    first, seen = exc, set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, FeatxError):
            return exc
        seen.add(id(exc))
        exc = getattr(exc, "cause", None) or exc.__cause__
    found = _REMOTE_FEATX_ERROR.findall(str(first))
    if found:
        name, message = found[-1]
        kind = getattr(errors, name, FeatxError)
        return (kind if isinstance(kind, type) and issubclass(kind, FeatxError) else FeatxError)(message.strip())
    return None


def _runtime_env() -> dict:
    """The workers' environment: TensorFlow's C++ logs quiet, and the driver's fault-injection settings
    (:mod:`featx._faults`), which reach its workers as they reach its threads."""
    env = {k: v for k, v in os.environ.items() if k.startswith("FEATX_CRASH")}
    return {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"), **env}}


HASH_CHUNK = 64  # files per hashing task


def hash_on_ray(urls: list[str], address: str | None) -> list[bytes | str]:
    """The content id (hex sha256, as bytes) of each URL, or why it cannot be read, hashed by Ray
    tasks where the data is (for the plan of a URL dataset: its bytes never come to the driver)."""
    ray = import_ray()
    connect(ray, address)
    task = ray.remote(_hash_chunk).options(num_cpus=1, runtime_env=_runtime_env())
    chunks = [task.remote(urls[start : start + HASH_CHUNK]) for start in range(0, len(urls), HASH_CHUNK)]
    try:
        return [digest for chunk in ray.get(chunks) for digest in chunk]
    except ray.exceptions.RayError as exc:
        raise _featx_cause(exc) or FeatxError(f"The Ray engine failed: {first_line(exc)}") from None


def _hash_chunk(urls: list[str]) -> list[bytes | str]:
    from featx.data.objectstore import hash_urls

    return hash_urls(urls, workers=4)


def decode_batch(batch: dict[str, np.ndarray], *, size: int, resize: str, max_pixels: int,
                 jpeg_draft: bool = False) -> dict[str, np.ndarray]:
    """A Ray Data task: the planned files of ``batch`` as pixels, or each one's reason (and whether
    its bytes were not the planned ones) where it does not decode."""
    count = len(batch["id"])
    pixels = np.zeros((count, size, size, 3), np.float32)
    reasons, stale = [""] * count, np.zeros(count, bool)
    for row, (content_id, path) in enumerate(zip(batch["id"], batch["path"])):
        result = load_planned(str(path), size, resize, max_pixels, bytes(content_id), jpeg_draft)
        if isinstance(result, ImageDecodeError):
            reasons[row], stale[row] = str(result), isinstance(result, NotAsPlannedError)
        else:
            pixels[row] = result
    return {"id": batch["id"], "pixels": pixels, "reason": np.asarray(reasons, dtype=object), "not_as_planned": stale}


class EmbedWorker:
    """A Ray Data actor: builds the backbone of ``settings`` once, then embeds each batch's decoded images.

    Ray Data builds it without arguments: :func:`_worker_class` gives the subclass that carries them.
    """

    settings: tuple[EmbedConfig, int, str]  # configuration, batch size, Keras backend

    def __init__(self):
        import ray

        from featx.engine.extractor import FeatureExtractor

        config, batch_size, backend = self.settings
        self.extractor = FeatureExtractor(config, batch_size=batch_size, backend=backend)
        context = ray.get_runtime_context()
        self.worker, self.node = context.get_actor_id() or str(os.getpid()), context.get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        crash_point("embedding-worker")
        count, step = len(batch["id"]), self.extractor.batch_size
        good = np.asarray([not r for r in batch["reason"]], dtype=bool)
        vectors = np.zeros((count, self.extractor.feature_dim), np.float32)
        rows = np.flatnonzero(good)
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            vectors[chunk] = self.extractor(np.asarray(batch["pixels"][chunk], np.float32))
        return {"id": batch["id"], "vector": vectors, "reason": batch["reason"],
                "not_as_planned": batch["not_as_planned"], "worker": np.asarray([self.worker] * count, dtype=object),
                "node": np.asarray([self.node] * count, dtype=object)}


def _worker_class(config: EmbedConfig, batch_size: int, backend: str) -> type[EmbedWorker]:
    """:class:`EmbedWorker` carrying its settings in the class, which Ray ships with the code
    (constructor arguments would sit in the object store, where a restarted actor may miss them)."""
    return type("EmbedWorker", (EmbedWorker,), {"settings": (config, batch_size, backend)})
