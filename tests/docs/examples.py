"""The code blocks of the documentation, and the sandbox they run in.

Every fenced ``bash``/``sh``/``python`` block of ``README.md`` and ``docs/*.md`` runs, in page order,
in a fresh folder holding ``data/`` (small generated images: ``data/train/<class>/`` and
``data/test/<class>/`` for two classes, 10 and 4 each) and ImageNet-named MobileNetV2 weights
where Keras looks for them (random values: Keras checks no hash for MobileNetV2), so
``featx embed data/ --backbone MobileNetV2`` works offline exactly as a user types it. A block
that cannot run here says why on the line above it: ``<!-- no-run: REASON -->`` (a download, a
GPU, a cluster, a placeholder path); the README's two commands carry ``<!-- ci: NAME -->`` (CI
runs them as a newcomer would).
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = {"bash": "bash", "sh": "bash", "console": "bash", "shell": "bash", "python": "python", "py": "python"}
_DIRECTIVE = re.compile(r"<!--\s*(no-run|ci)\s*:\s*(.*?)\s*-->")
_FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str  # "bash" or "python"
    code: str
    skip: str | None  # why it does not run here (None: it runs)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The shell and Python blocks of ``page`` in order, each with the directive above it, if any."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, number = [], 0
    while number < len(lines):
        fence = _FENCE.match(lines[number])
        if fence is None:
            number += 1
            continue
        end = next((i for i in range(number + 1, len(lines)) if lines[i].strip() == "```"), len(lines))
        language = LANGUAGES.get(fence.group(1).lower())
        if language is not None:
            above = next((lines[i] for i in range(number - 1, -1, -1) if lines[i].strip()), "")
            directive = _DIRECTIVE.search(above)
            skip = None if directive is None else f"{directive.group(1)}: {directive.group(2)}" + (
                " (.ci/run runs it as a newcomer would)" if directive.group(1) == "ci" else "")
            found.append(Block(page, number + 1, language, "\n".join(lines[number + 1 : end]), skip))
        number = end + 1
    return found


def make_sandbox(folder: Path, keras_home: Path) -> dict[str, str]:
    """Lay out ``folder`` for a page's blocks; returns their environment."""
    import os

    from tests.imagegen import make_class_folder

    make_class_folder(folder / "data" / "train", per_class=10)
    make_class_folder(folder / "data" / "test", per_class=4)
    env = {**os.environ, "KERAS_HOME": str(keras_home), "FEATX_CACHE_DIR": str(folder / ".featx"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("CI", None)
    return env


def imagenet_named_weights(keras_home: Path) -> Path:
    """MobileNetV2's no-top ImageNet file name (224 px), holding random weights, in ``keras_home``."""
    code = (
        "import sys, h5py, keras\n"
        "from keras.src.legacy.saving import legacy_h5_format\n"
        "from featx.backbones.weights import weights_file\n"
        "path = sys.argv[1] + '/models/' + weights_file('MobileNetV2', 224).file_name\n"
        "model = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(224, 224, 3))\n"
        "with h5py.File(path, 'w') as h5:\n"
        "    legacy_h5_format.save_weights_to_hdf5_group(h5, model)\n"
    )
    (keras_home / "models").mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", code, str(keras_home)], check=True, capture_output=True, timeout=240)
    return keras_home


def run_block(block: Block, folder: Path, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    command = ["bash", "-e", "-o", "pipefail", "-c", block.code] if block.language == "bash" else \
        [sys.executable, "-c", block.code]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)
