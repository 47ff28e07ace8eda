"""The fuzz suite: random input at every edge, and one property for all of it.

Property of every run: exit code 0, 1 or 2; at most one ``error:`` line, the last on stderr; no
traceback and no "unexpected" error (the CLI's line for a bug); a committed, valid cache is
byte-identical afterwards. Inputs: random bytes as images of every extension (decoded in-process
and, in the integration tests, embedded and predicted); random values for the options of
``cache verify``/``cache info``/``fit-head``/``compare``/``evaluate``/``embed``; random mutations
of a small valid cache (truncate, flip bits, drop or retype a dataset, edit an attribute) and of a
saved head, run through ``cache verify``, ``cache info``, ``fit-head``, ``evaluate`` and ``embed``.

Seeded and bounded: Hypothesis runs derandomized (the same cases every run) under the "featx-fuzz"
profile; FEATX_FUZZ_SCALE=10 runs ten times as many cases. The commands run in-process (Typer's
CliRunner); tests/test_failures.py adds the runs in subprocesses.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from featx.cache.append import write_cache
from featx.cache.segments import segment_dir, vector_segments
from featx.cache.tables import ImageTable, SkipTable, id_column, str_column
from featx.cli import app
from featx.data.images import IMAGE_EXTENSIONS, load_image
from featx.errors import ImageDecodeError
from featx.heads import fit_head
from featx.options import EmbedOptions

SCALE = int(os.environ.get("FEATX_FUZZ_SCALE", "1"))
settings.register_profile(
    "featx-fuzz", derandomize=True, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("featx-fuzz")
# Cases per property (README: "Fuzz suite"): 340 in all, 15-25 s on 2 cores.
EXAMPLES = {"images": 200, "cache": 40, "head": 30, "options": 40, "embed_options": 30}

CONFIG = EmbedOptions("MobileNetV2", weights="none", image_size=32).resolve()
CLASSES = ("ant", "bee")
WIDTH = 8


def fuzz(name: str):
    return settings(FUZZ, max_examples=EXAMPLES[name] * SCALE)


def check_run(result, *, allow: tuple[int, ...] = (0, 1, 2)) -> None:
    """The property every CLI run must have."""
    stderr = result.stderr
    assert result.exit_code in allow, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) <= 1, stderr
    if errors:
        assert stderr.rstrip().splitlines()[-1] == errors[0], stderr
        assert "unexpected" not in errors[0], errors[0]  # the line a bug gets: none may be found
        assert result.exit_code != 0


def invoke(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def fingerprint_files(cache: Path) -> dict[str, str]:
    """sha256 of the index and of every segment: "byte-identical" compares these."""
    files = [cache, *sorted(segment_dir(cache).iterdir())]
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def make_cache(path: Path, n: int = 24, config=CONFIG) -> Path:
    """A small valid cache written from arrays (no backbone): 2 classes, train and test rows."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    X = (rng.normal(size=(n, WIDTH)) + 3 * y[:, None]).astype(np.float32)
    ids = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]
    images = ImageTable(path=str_column(f"{CLASSES[c]}/img{i}.png" for i, c in enumerate(y)), id=id_column(ids),
                        label=y.astype(np.int32), split=str_column("test" if i % 4 == 0 else "train" for i in range(n)),
                        size=np.zeros(n, np.int64), mtime_ns=np.zeros(n, np.int64))
    attrs = {"fingerprint": config.fingerprint, "config": json.dumps(config.identity()),
             "sources": json.dumps(config.sources()), "backbone": config.backbone, "dataset": str(path.parent / "data"),
             "root": str(path.parent / "data"), "layout": "splits", "feature_dim": WIDTH}
    write_cache(path, attrs=attrs, classes=list(CLASSES), images=images, skipped=SkipTable.empty(),
                vectors=[(id_column(ids), X)], feature_dim=WIDTH)
    return path


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """A valid cache and a head fitted on it, never changed by any test (checked byte for byte)."""
    root = tmp_path_factory.mktemp("fuzz")
    cache = make_cache(root / "cache" / "small.h5")
    head = fit_head(cache, "logreg", seed=0)
    head.save(root / "head")
    return cache, root / "head", fingerprint_files(cache)


def copy_cache(cache: Path, folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy(cache, folder / cache.name)
    shutil.copytree(segment_dir(cache), segment_dir(folder / cache.name))
    return folder / cache.name


# ---- random bytes as images of every extension ------------------------------------------------

HEADERS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"RIFF\x00\x00\x00\x00WEBPVP8 ",
           b"II*\x00", b"MM\x00*"]


@fuzz("images")
@given(ext=st.sampled_from(sorted(IMAGE_EXTENSIONS)), header=st.sampled_from(HEADERS),
       body=st.binary(max_size=600), size=st.integers(1, 64), mode=st.sampled_from(["stretch", "crop", "pad"]))
def test_random_bytes_as_an_image_decode_or_are_one_skip_reason(tmp_path, ext, header, body, size, mode):
    path = tmp_path / f"x{ext}"
    path.write_bytes(header + body)
    try:
        pixels = load_image(path, (size, size), mode)
    except ImageDecodeError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert pixels.shape == (size, size, 3) and pixels.dtype == np.float32 and np.isfinite(pixels).all()


# ---- random mutations of a valid cache --------------------------------------------------------

DATASETS = ["classes", "vectors/id", "images/path", "images/id", "images/label", "images/split", "images/size",
            "images/mtime_ns", "skipped/path", "segments/name", "segments/rows", "segments/digest"]
ATTRIBUTES = ["encoding-version", "encoding-type", "config", "fingerprint", "feature_dim", "dtype", "root", "sources",
              "backends", "layout"]
VALUES = st.one_of(st.integers(-2**40, 2**40), st.floats(allow_nan=True), st.text(max_size=20),
                   st.just("{not json"), st.just("[]"), st.just('{"backbone": 1}'), st.binary(max_size=8))


def _retype(h5, name, data):
    del h5[name]
    h5.create_dataset(name, data=data)


MUTATIONS = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 7)),
    st.tuples(st.just("drop"), st.sampled_from(DATASETS + ["images", "segments", "vectors"])),
    st.tuples(st.just("retype"), st.sampled_from(DATASETS),
              st.sampled_from([np.arange(3), np.zeros(0), np.asarray([b"x"] * 30), np.full(30, -7, np.int32),
                               np.full(24, np.nan)])),
    st.tuples(st.just("attribute"), st.sampled_from(ATTRIBUTES), VALUES),
    st.tuples(st.just("segment"), st.floats(0, 1)),  # truncate the segment file
    st.tuples(st.just("vector"), st.integers(0, 23), st.sampled_from([np.nan, np.inf, 1e38, 0.0])),
)


def mutate(cache: Path, mutation) -> None:
    kind = mutation[0]
    if kind in ("truncate", "flip", "segment"):
        target = cache if kind != "segment" else vector_segments(cache)[0]
        data = bytearray(target.read_bytes())
        at = min(int(mutation[1] * len(data)), len(data) - 1)
        if kind == "flip":
            data[at] ^= 1 << mutation[2]
        else:
            data = data[:at]
        target.write_bytes(bytes(data))
        return
    if kind == "vector":
        segment = vector_segments(cache)[0]
        with h5py.File(segment, "r+") as h5:
            h5["features"][mutation[1], 0] = mutation[2]
        return
    with h5py.File(cache, "r+") as h5:
        if kind == "drop" and mutation[1] in h5:
            del h5[mutation[1]]
        elif kind == "retype" and mutation[1] in h5:
            _retype(h5, mutation[1], mutation[2])
        elif kind == "attribute":
            h5.attrs[mutation[1]] = mutation[2]


@fuzz("cache")
@given(mutation=MUTATIONS)
def test_a_mutated_cache_is_one_line_in_every_reader(valid, tmp_path_factory, mutation):
    cache, head, before = valid
    damaged = copy_cache(cache, tmp_path_factory.getbasetemp() / "mutated")
    mutate(damaged, mutation)
    out = damaged.parent / "out"
    for args in (["cache", "verify", damaged], ["cache", "info", damaged], ["cache", "info", damaged.parent],
                 ["fit-head", "--cache", damaged, "--output", out / "h", "--json"],
                 ["evaluate", head, "--cache", damaged, "--split", "all"]):
        check_run(invoke(*args))
    assert fingerprint_files(cache) == before


# ---- random mutations of a saved head ---------------------------------------------------------

HEAD_FIELDS = ["head", "params", "classes", "config", "sources", "fingerprint", "feature_dim", "split", "metrics",
               "fit_seconds", "cache", "featx_version", "created", "estimator", "version", "format", "name"]
JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False),
                              st.text(max_size=8)),
                    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner,
                                                                                          max_size=4)),
                    max_leaves=8)


@fuzz("head")
@given(field=st.sampled_from(HEAD_FIELDS), value=JSON, resign=st.booleans(), drop=st.booleans())
def test_a_mutated_head_is_not_a_readable_head_in_one_line(valid, tmp_path_factory, field, value, resign, drop):
    from featx.heads.headfile import content_checksum

    cache, head, before = valid
    folder = tmp_path_factory.getbasetemp() / "mutated-head"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(head, folder)
    meta = json.loads((folder / "head.json").read_text())
    if drop:
        meta.pop(field, None)
    else:
        meta[field] = value
    if resign:  # an edit that also recomputes the checksum: the content checks must catch it
        meta["checksum"] = content_checksum(meta)
    (folder / "head.json").write_text(json.dumps(meta))
    result = invoke("evaluate", folder, "--cache", cache, "--split", "all")
    check_run(result)
    assert fingerprint_files(cache) == before


def test_a_deeply_nested_head_json_is_one_line(valid, tmp_path):
    cache, head, _ = valid
    shutil.copytree(head, tmp_path / "h")
    (tmp_path / "h" / "head.json").write_text("[" * 100_000 + "]" * 100_000)
    result = invoke("evaluate", tmp_path / "h", "--cache", cache)
    check_run(result, allow=(1,))
    assert "not a readable featx head" in result.stderr


# ---- random values for every option ---------------------------------------------------------

TEXT = st.one_of(st.text(max_size=12).filter(lambda s: "\x00" not in s), st.sampled_from(["", "-1", "nan", "inf", "1e309",
                                                                                      "4294967296", "999999999999999"]))
NUMBER = st.one_of(st.integers(-2**63, 2**63).map(str), st.floats(allow_nan=True).map(str), TEXT)
OPTIONS = {
    "fit-head": {"--head": TEXT | st.sampled_from(["logreg", "knn", "sgd", "svm"]), "--param": TEXT.map(lambda t: f"n_neighbors={t}")
                 | st.sampled_from(["C=-1", "C=0", "n_neighbors=1000", "max_iter=0", "x=1", "=", "C"]),
                 "--class-weight": TEXT, "--test-size": NUMBER, "--seed": NUMBER, "--backbone": TEXT,
                 "--views": st.none(), "--augment": TEXT | st.just("crop")},
    "compare": {"--heads": TEXT.filter(lambda t: "keras" not in t) | st.sampled_from(["logreg,knn", "knn", ","]), "--cv": NUMBER, "--test-size": NUMBER,
                "--seed": NUMBER, "--backbones": TEXT, "--param": TEXT, "--views": st.none(), "--augment": TEXT},
    "evaluate": {"--split": TEXT | st.sampled_from(["all", "test", "train", "val"]), "--top-k": NUMBER},
    "cache info": {"--json": st.none()},
    "cache verify": {"--rehash": st.none(), "--json": st.none()},
}


@st.composite
def command_lines(draw):
    command = draw(st.sampled_from(sorted(OPTIONS)))
    chosen = draw(st.lists(st.sampled_from(sorted(OPTIONS[command])), unique=True, max_size=3))
    args = command.split()
    for option in chosen:
        value = draw(OPTIONS[command][option])
        args += [option] if value is None else [option, value]
    return command, args


@fuzz("options")
@given(line=command_lines())
def test_random_option_values_are_one_line_and_leave_the_cache_as_it_was(valid, tmp_path_factory, line):
    cache, head, before = valid
    command, args = line
    out = tmp_path_factory.getbasetemp() / "fuzz-heads"
    if command in ("fit-head",):
        args += ["--cache", cache, "--output", out / "h"]
    elif command == "compare":  # scikit-learn heads only: the Keras head would bring TensorFlow in
        args += ["--cache", cache] + ([] if "--heads" in args else ["--heads", "logreg,knn,sgd"])
    elif command == "evaluate":
        args = args[:1] + [head] + args[1:] + ["--cache", cache]
    else:
        args += [cache]
    check_run(invoke(*args))
    assert fingerprint_files(cache) == before


class TinyExtractor:
    """Stands in for the backbone in the option fuzz (no Keras): the options' checks, the scan,
    decoding and the cache are the code under test, not the network."""

    def __init__(self, config, batch_size=32, backend=None):
        from featx.backbones.applications import get_backbone

        self.batch_size, self.backend = batch_size or 32, "tensorflow"  # None: the CPU default
        self.feature_dim = 4 if config.is_custom else get_backbone(config.backbone).feature_dim

    def __call__(self, pixels):
        means = np.asarray(pixels, np.float32).reshape(len(pixels), -1).mean(axis=1, keepdims=True)
        return np.repeat(means, self.feature_dim, axis=1)


EMBED_OPTIONS = {
    "--backbone": TEXT | st.sampled_from(["MobileNetV2", "nope.keras", "ResNet50"]),
    "--weights": TEXT | st.sampled_from(["none", "imagenet"]), "--seed": NUMBER, "--image-size": NUMBER,
    "--resize": TEXT | st.sampled_from(["crop", "pad"]), "--pooling": TEXT | st.just("max"), "--preprocess": TEXT,
    "--batch-size": NUMBER, "--workers": NUMBER, "--max-pixels": NUMBER, "--dtype": TEXT | st.just("float16"),
    "--backend": TEXT, "--views": NUMBER, "--augment": TEXT | st.sampled_from(["crop,jitter", "flip"]),
}


@fuzz("embed_options")
@given(options=st.dictionaries(st.sampled_from(sorted(EMBED_OPTIONS)), st.none(), max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({k: EMBED_OPTIONS[k] for k in keys})))
def test_random_embed_option_values_are_one_line(tmp_path_factory, monkeypatch, options):
    from tests.imagegen import make_class_folder

    monkeypatch.setattr("featx.engine.extractor.FeatureExtractor", TinyExtractor)
    root = tmp_path_factory.getbasetemp() / "fuzz-embed"
    data = root / "data"
    if not data.exists():
        make_class_folder(data, per_class=2, size=(12, 10))
    args = ["embed", data, "--cache", root / "cache", "-q"]
    for option, value in options.items():
        args += [option, value]
    if "--weights" not in options:
        args += ["--weights", "none"]  # never a download
    check_run(invoke(*args))


# ---- the same property in real processes, with the real backbone ------------------------------

@pytest.mark.integration
def test_random_bytes_of_every_extension_in_subprocesses_embed_and_predict(tmp_path):
    """No crash of the process: exit codes, stderr and the cache as the property says, with Keras."""
    import subprocess
    import sys

    from tests.imagegen import make_class_folder

    data = make_class_folder(tmp_path / "data", per_class=3, size=(24, 20))
    rng = np.random.default_rng(15)
    for i, ext in enumerate(sorted(IMAGE_EXTENSIONS)):
        header = HEADERS[i % len(HEADERS)]
        (data / "cat" / f"junk{i}{ext}").write_bytes(header + rng.bytes(int(rng.integers(0, 400))))
    env = {**os.environ, "FEATX_CACHE_DIR": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}

    def featx_run(*args):
        done = subprocess.run([sys.executable, "-m", "featx", *map(str, args)], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode in (0, 1, 2) and "Traceback" not in done.stderr, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) <= 1 and not any("unexpected" in line for line in errors), done.stderr
        return done

    embedded = featx_run("embed", data, "--weights", "none", "--image-size", "32", "--json")
    report = json.loads(embedded.stdout)
    assert embedded.returncode == 0 and report["embedded"] == 6 and len(report["skipped"]) == len(IMAGE_EXTENSIONS)
    [cache] = (tmp_path / "cache").glob("*.h5")
    before = fingerprint_files(cache)
    assert featx_run("fit-head", "--cache", cache, "--output", tmp_path / "head").returncode == 0
    predicted = featx_run("predict", tmp_path / "head", data / "cat", "--cache", tmp_path / "loose")
    assert predicted.returncode == 0 and predicted.stdout.count("\n") == 1 + 3  # header + the 3 good cats
    assert fingerprint_files(cache) == before
