"""tests/extras_probe.py, which picks the test files CI runs again with every extra: it records our lookups
of missing modules (in this process and in subprocesses) and skipped tests, and errs towards rerunning."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import extras_probe
from tests.extras_probe import ROOT, MissingModuleProbe, files_to_rerun

MISSING = "featx_no_such_module_anywhere"


def look_up(module: str, as_file) -> None:
    """``find_spec(module)`` from code that claims to live in ``as_file``."""
    code = compile(f"import importlib.util\nimportlib.util.find_spec({module!r})\n", str(as_file), "exec")
    exec(code, {})


@pytest.fixture
def probe(tmp_path, monkeypatch):
    log = tmp_path / "probe.log"
    finder = MissingModuleProbe(str(log))  # alone: CI's own probe (this suite's newcomer run) sees none of this
    others = [f for f in sys.meta_path if type(f).__name__ != "MissingModuleProbe"]
    monkeypatch.setattr(sys, "meta_path", [finder, *others])
    return log


def test_our_lookup_of_a_missing_module_is_recorded_against_the_running_test(probe):
    look_up(MISSING, ROOT / "featx" / "search" / "run.py")
    look_up(MISSING, ROOT / "featx" / "search" / "run.py")  # once per test and module
    # pytest names the running test in PYTEST_CURRENT_TEST, which subprocesses inherit
    assert probe.read_text().splitlines() == [f"tests/test_extras_probe.py\tmissing\t{MISSING}"]


def test_two_probes_each_record_the_lookup_once_in_their_own_log(probe, tmp_path, monkeypatch):
    second = tmp_path / "second.log"
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, MissingModuleProbe(str(second))])
    look_up(MISSING, ROOT / "featx" / "search" / "run.py")
    expected = [f"tests/test_extras_probe.py\tmissing\t{MISSING}"]
    assert probe.read_text().splitlines() == expected and second.read_text().splitlines() == expected


def test_installed_modules_and_third_party_lookups_are_not_recorded(probe):
    look_up("json", ROOT / "featx" / "api.py")
    look_up(MISSING, "/usr/lib/python3/dist-packages/tensorflow/__init__.py")  # TensorFlow probing for JAX
    assert not probe.exists()


def test_a_lookup_outside_any_test_reruns_the_whole_suite(probe, monkeypatch):
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    look_up(MISSING, ROOT / "featx" / "backend.py")
    look_up(MISSING + "2", ROOT / "tests" / "engine" / "test_backends.py")  # a test module at collection
    assert [line.split("\t")[0] for line in probe.read_text().splitlines()] == ["?", "tests/engine/test_backends.py"]
    assert files_to_rerun(probe, installed=lambda name: True) == ["tests"]  # the extras brought it
    assert files_to_rerun(probe) == []  # still missing with every extra: the same path again


def test_files_to_rerun_are_the_recorded_test_files_once_each(tmp_path):
    log = tmp_path / "probe.log"
    assert files_to_rerun(log) == ["tests"]  # no log: everything
    for name in ("tests/search/test_search.py", "tests/cli/test_cli.py", "tests/search/test_search.py"):
        extras_probe.record(str(log), name, "skipped")
    extras_probe.record(str(log), "tests/gone.py", "skipped")  # not a file of this tree
    extras_probe.record(str(log), "tests/heads/test_heads.py", "missing", "faiss")
    extras_probe.record(str(log), "tests/data/test_images.py", "missing", "umap")
    told = []
    files = files_to_rerun(log, installed=lambda name: name == "faiss", tell=told.append)
    assert files == ["tests/cli/test_cli.py", "tests/heads/test_heads.py", "tests/search/test_search.py"]
    assert told == ["tests/cli/test_cli.py: a test skipped", "tests/heads/test_heads.py: looked up faiss",
                    "tests/search/test_search.py: a test skipped"]


def test_the_pth_line_records_in_a_subprocess_of_a_test(tmp_path):
    pth = subprocess.run([sys.executable, str(ROOT / "tests" / "extras_probe.py"), "pth"], capture_output=True,
                         text=True, check=True).stdout.strip()
    log = tmp_path / "probe.log"
    lookup = f"import importlib.util; importlib.util.find_spec({MISSING!r})"
    code = f"{pth}\nexec(compile({lookup!r}, {str(ROOT / 'featx' / 'api.py')!r}, 'exec'))\n"
    env = {**os.environ, extras_probe.ENV: str(log), "PYTEST_CURRENT_TEST": "tests/model/test_m.py::test_n (call)"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert log.read_text().splitlines() == [f"tests/model/test_m.py\tmissing\t{MISSING}"]
    env.pop(extras_probe.ENV)  # without the variable the line does nothing
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert len(log.read_text().splitlines()) == 1


def test_the_conftest_records_skipped_tests_and_modules_not_giant_backbones_nor_expected_failures(tmp_path):
    (tmp_path / "test_needs_extra.py").write_text(f"import pytest\npytest.importorskip({MISSING!r})\n")
    (tmp_path / "test_mixed.py").write_text(
        "import pytest\n"
        "def test_runs(): pass\n"
        "def test_skips(): pytest.skip('no GPU')\n"
        "@pytest.mark.slow\ndef test_giant(): pytest.skip('giant backbone')\n"
        "@pytest.mark.xfail(reason='known')\ndef test_known(): assert False\n")
    (tmp_path / "test_plain.py").write_text("def test_runs(): pass\n")
    log = tmp_path / "probe.log"
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, extras_probe.ENV: str(log)}, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert sorted(line.split("\t")[0] for line in log.read_text().splitlines()) == [
        "test_mixed.py", "test_needs_extra.py"]


def test_an_import_statement_of_ours_counts_a_librarys_c_code_importing_under_our_call_does_not(probe):
    def run_as_featx(code: str) -> None:
        exec(compile(f"try:\n    {code}\nexcept ImportError:\n    pass\n", str(ROOT / "featx" / "x.py"), "exec"), {})

    run_as_featx(f"import {MISSING}")
    # C code importing (as pyarrow's asks for pandas) while a line of ours calls it: builtins.__import__ is
    # such C code, called here from featx's frame without an import statement
    run_as_featx(f"__import__({MISSING + '_from_c'!r})")
    assert probe.read_text().splitlines() == [f"tests/test_extras_probe.py\tmissing\t{MISSING}"]
