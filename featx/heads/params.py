"""``key=value`` strings (the CLI's ``--param``) into head parameters.

Errors name the strings' parameter as ``param``: the CLI shows it as ``--param``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from featx.errors import OptionError
from featx.heads.registry import get_head_spec

_WORDS = {"true": True, "false": False, "none": None, "null": None}


def parse_value(text: str) -> object:
    """``"512"`` → 512, ``"0.5"``/``"1e-3"`` → float, ``"true"``/``"false"`` → bool, ``"none"`` → None, else str."""
    word = text.strip()
    if word.lower() in _WORDS:
        return _WORDS[word.lower()]
    for kind in (int, float):
        try:
            return kind(word)
        except ValueError:
            pass
    return word


def parse_params(items: Iterable[str]) -> dict[str, object]:
    """``["units=512", "dropout=0.5"]`` → ``{"units": 512, "dropout": 0.5}``."""
    params: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"{{param}} takes key=value (e.g. C=10); got {item!r}.", param="param")
        params[key.strip()] = parse_value(value)
    return params


def params_per_head(items: Iterable[str], heads: Sequence[str]) -> dict[str, dict[str, object]]:
    """For ``compare``: ``head.key=value`` sets one head's parameter, ``key=value`` every head that has it."""
    per_head: dict[str, dict[str, object]] = {name: {} for name in heads}
    for key, value in parse_params(items).items():
        target, dot, name = key.partition(".")
        if dot:
            if target not in per_head:
                raise OptionError(f"{{param}} {key}: {target!r} is not among the compared heads ({', '.join(heads)}).",
                                  param="param")
            get_head_spec(target).check_params({name: value})
            per_head[target][name] = value
            continue
        takers = [h for h in heads if key in get_head_spec(h).defaults()]
        if not takers:
            raise OptionError(
                f"{{param}} {key}: none of the compared heads ({', '.join(heads)}) has a parameter {key!r}; "
                "see 'featx heads' for each head's parameters.", param="param"
            )
        for head in takers:
            per_head[head][key] = value
    return per_head
