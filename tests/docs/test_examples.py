"""Every shell and Python block of the documentation runs on small generated data, or says why not."""

from __future__ import annotations

import pytest

from tests.docs.examples import PAGES, blocks, imagenet_named_weights, make_sandbox, run_block


def test_every_block_runs_or_says_why_it_cannot():
    assert PAGES, "no documentation pages found"
    for page in PAGES:
        for block in blocks(page):
            if block.skip is not None:
                reason = block.skip.split(":", 1)[1].strip()
                assert len(reason) >= 10, f"{block.where}: say why the block cannot run ({block.skip!r})"


@pytest.fixture(scope="module")
def keras_home(tmp_path_factory):
    return imagenet_named_weights(tmp_path_factory.mktemp("keras"))


@pytest.mark.integration
@pytest.mark.timeout(900)
@pytest.mark.parametrize("page", [p for p in PAGES if any(b.skip is None for b in blocks(p))], ids=lambda p: p.name)
def test_the_blocks_of_a_page_run_in_order(page, keras_home, tmp_path):
    env = make_sandbox(tmp_path, keras_home)
    for block in blocks(page):
        if block.skip is None:
            done = run_block(block, tmp_path, env)
            assert done.returncode == 0, f"{block.where} failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
