"""The lowest versions featx allows: every direct dependency has a floor, and CI installs exactly those.

``python3 tests/test_lowest_versions.py [EXTRA ...]`` prints ``name==floor`` for every runtime
dependency of ``pyproject.toml`` (its ``[project] dependencies``, and those of the extras named), one a
line: a pip constraints file. ``.ci/run`` installs featx with it (and the parquet extra, which the fast
tests use) in a fresh virtual environment and runs the fast tests, so a floor that does not install
together with the others, or no longer works, fails CI. Standard library only (tomllib: Python
3.11+): the script runs before any virtual environment exists.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: no tomllib (CI runs 3.11)
    tomllib = None

ROOT = Path(__file__).resolve().parent.parent
# "name>=floor" or "name[extra]>=floor", optionally ",<cap" and a "; marker" after it; nothing else is a floor
_FLOOR = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*>=\s*([0-9][0-9A-Za-z.+!-]*)\s*"
                    r"(?:,\s*<[^,;]+)?\s*(?:;\s*python_version\s*>=\s*['\"][0-9.]+['\"]\s*)?$")


def _version_key(version: str) -> tuple:
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


def floor(requirement: str) -> tuple[str, str]:
    """``(name, floor)`` of one requirement; ValueError unless it says ``name>=version``."""
    found = _FLOOR.match(requirement)
    if found is None:
        raise ValueError(f"{requirement!r} has no floor: write it as name>=version (the lowest version featx works "
                         "with), with at most a ; python_version >= '3.N' marker")
    return found.group(1), found.group(2)


def pyproject(path: Path = ROOT / "pyproject.toml") -> dict:
    if tomllib is None:
        raise RuntimeError("reading pyproject.toml needs Python 3.11 or later (tomllib)")
    with open(path, "rb") as handle:
        return tomllib.load(handle)


def lowest_versions(extras: tuple[str, ...] = (), project: dict | None = None) -> list[str]:
    """``name==floor`` for every runtime dependency of ``project`` (default: featx's pyproject.toml) and
    of its ``extras``; KeyError naming an extra it does not have."""
    project = (pyproject() if project is None else project)["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise KeyError(f"pyproject.toml has no extra {unknown[0]!r} (it has {', '.join(optional)})")
    floors: dict[str, str] = {}
    for requirement in [*project["dependencies"], *(r for extra in extras for r in optional[extra])]:
        name, version = floor(requirement)  # a name twice (a higher floor on newer Pythons): the higher, as on 3.11+
        floors[name] = max(floors.get(name, version), version, key=_version_key)
    return [f"{name}=={version}" for name, version in floors.items()]


def test_every_dependency_has_a_floor():
    import pytest  # here, not above: .ci/run runs this file before pytest is installed

    if tomllib is None:
        pytest.skip("tomllib: Python 3.11+")
    project = pyproject()
    extras = project["project"]["optional-dependencies"]
    for requirement in [*project["project"]["dependencies"], *(r for group in extras.values() for r in group)]:
        floor(requirement)  # raises, naming the requirement, if it has none


def test_the_script_prints_pyprojects_floors():
    import subprocess

    import pytest

    if tomllib is None:
        pytest.skip("tomllib: Python 3.11+")
    project = pyproject()["project"]
    for extras in [(), ("parquet",), ("onnx", "hub")]:
        done = subprocess.run([sys.executable, __file__, *extras], capture_output=True, text=True, check=True)
        printed = dict(line.split("==") for line in done.stdout.split())
        assert done.stdout.split() == lowest_versions(extras)
        declared = [*project["dependencies"], *(r for extra in extras for r in project["optional-dependencies"][extra])]
        names = {re.match(r"[A-Za-z0-9._-]+", requirement).group() for requirement in declared}
        assert set(printed) == names  # every dependency once
        for requirement in declared:  # at its floor, or a higher floor of the same name
            name, version = floor(requirement)
            assert _version_key(printed[name]) >= _version_key(version) and any(
                r.replace(" ", "").startswith(f"{name}>={printed[name]}") for r in declared)
    done = subprocess.run([sys.executable, __file__, "nonesuch"], capture_output=True, text=True)
    assert done.returncode == 1 and "no extra 'nonesuch'" in done.stderr and not done.stdout


def test_the_parser_refuses_a_requirement_without_a_floor():
    import pytest

    assert floor("numpy>=1.24") == ("numpy", "1.24")
    assert floor("ray[data] >= 2.40") == ("ray", "2.40")
    assert floor("keras>=3.8,<4") == ("keras", "3.8")
    assert floor("keras>=3.14; python_version >= '3.11'") == ("keras", "3.14")
    project = {"project": {"dependencies": ["keras>=3.7"], "optional-dependencies": {
        "onnx": ["keras>=3.8", "keras>=3.14; python_version >= '3.11'"]}}}
    assert lowest_versions(("onnx",), project) == ["keras==3.14"] and lowest_versions((), project) == ["keras==3.7"]
    for bad in ("numpy", "numpy==1.24", "numpy<2", "numpy>1.24", "numpy>=1.24; sys_platform == 'linux'"):
        with pytest.raises(ValueError, match="has no floor"):
            floor(bad)


def test_ci_installs_the_floors_and_runs_the_fast_tests():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lowest, full = ci.index("tests/test_lowest_versions.py parquet >"), ci.index("[test,jax,torch,onnx,hub,ray,docs,search]")
    assert ci.index('eval "$test_cmd"') < lowest < full  # after the newcomer's path, before every extra
    step = ci[lowest:full]
    assert '-c "$lowest/constraints.txt" -e ".[parquet]"' in step and 'python -m pytest -m "not integration"' in step


if __name__ == "__main__":  # .ci/run: the constraints file of the lowest versions
    try:
        print("\n".join(lowest_versions(tuple(sys.argv[1:]))))
    except (ValueError, RuntimeError) as error:
        sys.exit(f"error: {error}")
    except KeyError as error:
        sys.exit(f"error: {error.args[0]}")
