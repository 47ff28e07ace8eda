"""Fixtures shared by the suite: no network, a private cache folder and Keras home per test."""

from __future__ import annotations

import os
import sys

import pytest

from tests import extras_probe

extras_probe.install()  # CI's newcomer run: which tests an extra could change (tests/extras_probe.py)
# Keras and TensorFlow are imported by some tests: keep their C++ logs quiet and the backend fixed.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path_factory):
    """Route every HTTP(S) request to a closed local port, so no test can download anything."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path_factory.getbasetemp() / "keras-home"))


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A fresh cache folder, also set as $FEATX_CACHE_DIR."""
    folder = tmp_path / "featx-cache"
    monkeypatch.setenv("FEATX_CACHE_DIR", str(folder))
    return folder


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also build the giant backbones")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow") or os.environ.get("FEATX_TEST_SLOW"):
        return
    skip = pytest.mark.skip(reason="giant backbone: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    """The fast selection (``-m "not integration"``) must stay free of TensorFlow: fail if it crept in."""
    if session.config.getoption("markexpr") == "not integration" and "tensorflow" in sys.modules:
        session.config.get_terminal_writer().line(
            "error: a test outside the 'integration' marker imported TensorFlow; mark it integration.", red=True)
        session.exitstatus = 1


def _record_skip(report) -> None:
    """CI's newcomer run: a skipped test (not a giant backbone's, nor an expected failure) runs again with the
    extras (tests/extras_probe.py)."""
    log = os.environ.get(extras_probe.ENV)
    if log and report.skipped and not hasattr(report, "wasxfail") and "slow" not in getattr(report, "keywords", {}):
        extras_probe.record(log, report.nodeid.split("::", 1)[0], "skipped")


pytest_runtest_logreport = pytest_collectreport = _record_skip
