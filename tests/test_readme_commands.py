"""The README's two commands for a newcomer (set up and run the demo; run the tests) are what CI runs.

Each is a fenced bash block of one line, right after a ``<!-- ci: NAME -->`` line (invisible on the
rendered page). ``.ci/run`` reads them with this file, run as a script before any virtual environment
exists (``python3 tests/test_readme_commands.py setup`` prints the set-up command), so a README whose
commands change changes what CI runs; the tests below fail when the README or ``.ci/run`` drifts.
Standard library only: the script runs on the bare machine.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("setup", "test")  # what .ci/run asks for
_MARKER = re.compile(r"<!--\s*ci:\s*(\S+)\s*-->")


def readme_commands(text: str) -> dict[str, str]:
    """Every marked command of a README, by name; ValueError (saying what is wrong) unless each marker
    is followed at once by a ```bash block holding exactly one command line."""
    lines = text.splitlines()
    commands: dict[str, str] = {}
    for number, line in enumerate(lines):
        found = _MARKER.fullmatch(line.strip())
        if found is None:
            continue
        name, where = found.group(1), f"README.md line {number + 1} (<!-- ci: {found.group(1)} -->)"
        if name in commands:
            raise ValueError(f"{where}: a second block named {name!r}")
        if number + 1 >= len(lines) or lines[number + 1].strip() not in ("```bash", "```sh"):
            raise ValueError(f"{where}: the next line must open a ```bash block")
        try:
            end = next(i for i in range(number + 2, len(lines)) if lines[i].strip() == "```")
        except StopIteration:
            raise ValueError(f"{where}: the block is never closed") from None
        body = [row for row in lines[number + 2:end] if row.strip()]
        if len(body) != 1:
            raise ValueError(f"{where}: CI runs one command line per block; this one has {len(body)}")
        commands[name] = body[0].strip()
    return commands


def ci_commands(readme: Path = ROOT / "README.md") -> dict[str, str]:
    """The commands CI runs, as the README writes them; ValueError if one of NAMES is missing."""
    commands = readme_commands(readme.read_text(encoding="utf-8"))
    missing = [name for name in NAMES if name not in commands]
    if missing:
        raise ValueError(f"{readme}: no <!-- ci: {missing[0]} --> block, which .ci/run runs")
    return commands


def test_the_readme_marks_both_commands_a_newcomer_runs():
    commands = ci_commands()
    setup, tests = (shlex.split(commands[name]) for name in NAMES)
    # The set-up: a virtual environment, featx alone (no extra), then the demo.
    assert setup[:4] == ["python3", "-m", "venv", ".venv"] and ". .venv/bin/activate" in commands["setup"]
    assert "pip install -e . &&" in commands["setup"] and commands["setup"].endswith("&& featx demo")
    # The tests: the test extra only, then pytest (the first pip install and the test run, nothing else).
    assert tests[:4] == ["pip", "install", "-e", ".[test]"] and tests[4] == "&&"
    assert tests[5:8] == ["python", "-m", "pytest"] and "&&" not in tests[5:] and "||" not in tests[5:]


def test_ci_runs_the_readme_commands_before_the_full_suite():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"tests/test_readme_commands.py {name})" in ci, f".ci/run no longer reads the {name!r} command"
    newcomer, full = ci.index('eval "$setup_cmd"'), ci.index("[test,jax,torch,onnx,hub,ray,docs,search]")
    assert newcomer < ci.index('eval "$test_cmd"') < full  # the newcomer's path first
    # then the same test command with every extra, on the files an extra can change (tests/extras_probe.py)
    assert ci.count('eval "$test_cmd"') == 1 and full < ci.index('eval "$test_cmd $rerun"')


def test_the_contributing_guide_names_the_extras_ci_installs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    installed = re.search(r'pip install --quiet (-e "\.\[[^"]+\]"[^\n]*)', ci).group(1)
    assert f"`pip install {installed}`" in (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")


def test_the_parser_says_what_is_wrong():
    import pytest  # here, not above: .ci/run runs this file before pytest is installed

    good = "<!-- ci: setup -->\n```bash\necho hi\n```\n"
    assert readme_commands(good) == {"setup": "echo hi"}
    for bad, says in [
        (good + good, "a second block named 'setup'"),
        ("<!-- ci: setup -->\n\n```bash\necho hi\n```\n", "must open a ```bash block"),
        ("<!-- ci: setup -->\n```bash\necho hi\n", "never closed"),
        ("<!-- ci: setup -->\n```bash\necho hi\necho again\n```\n", "this one has 2"),
        ("<!-- ci: setup -->\n```bash\n```\n", "this one has 0"),
    ]:
        with pytest.raises(ValueError, match=re.escape(says)):
            readme_commands(bad)


if __name__ == "__main__":  # .ci/run: print one command (exit 1 with the reason if the README lacks it)
    if len(sys.argv) != 2 or sys.argv[1] not in NAMES:
        sys.exit(f"usage: python3 {sys.argv[0]} {'|'.join(NAMES)}")
    try:
        print(ci_commands()[sys.argv[1]])
    except ValueError as error:
        sys.exit(f"error: {error}")
