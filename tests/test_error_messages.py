"""One-line errors keep what the user typed: a message that starts with a path keeps its case."""

from __future__ import annotations

from featx.errors import OptionError


def test_a_message_starting_with_a_path_keeps_its_case():
    error = OptionError("kDref/a.png: {param} cannot be read.", param="images")
    assert error.render() == "kDref/a.png: the 'images' parameter cannot be read."
    assert error.render(lambda param: "--" + param) == "kDref/a.png: --images cannot be read."


def test_a_message_starting_with_the_parameter_starts_with_a_capital():
    assert OptionError("{param} must be positive.", param="seed").render() == "The 'seed' parameter must be positive."
