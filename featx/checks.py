"""Parameter checks every stage uses: each refuses a bad value in one line naming the Python parameter."""

from __future__ import annotations

import os

from featx.errors import OptionError, OptionTypeError


def check_choice(param: str, value: object, allowed: tuple[str, ...]) -> None:
    """Raise :class:`OptionError` naming ``param`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise OptionError(f"{{param}} must be one of {', '.join(allowed)}; got {value!r}.", param=param)


def check_positive(param: str, value: object, what: str = "a positive integer", maximum: int | None = None) -> None:
    """Raise :class:`OptionError` naming ``param`` unless ``value`` is an integer of at least 1 (and
    at most ``maximum``: the message then says the range)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (maximum is not None and value > maximum):
        what = what if maximum is None else f"{what.replace('a positive ', 'an ')} from 1 to {maximum}"
        raise OptionError(f"{{param}} must be {what}; got {value!r}.", param=param)


MAX_SEED = 2**32 - 1  # what NumPy, scikit-learn and Keras all take as a seed


def check_seed(param: str, value: object) -> None:
    """Raise :class:`OptionError` naming ``param`` unless ``value`` is an integer seed, 0 to 2**32-1."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise OptionError(f"{{param}} must be an integer from 0 to {MAX_SEED}; got {value!r}.", param=param)


def check_path(param: str, value: object, *, optional: bool = False) -> None:
    """Refuse, naming ``param``, a value that is not a path (``str`` or ``os.PathLike``), an empty
    path (which would silently mean the current folder) or one holding a NUL byte."""
    if value is None and optional:
        return
    if not isinstance(value, (str, os.PathLike)):
        raise OptionTypeError(f"{{param}} must be a path (str or os.PathLike); got {type(value).__name__} {value!r:.60}.",
                              param=param)
    text = os.fspath(value)
    if not text:
        raise OptionError("{param} is an empty path; give a file or folder ('.' for the current folder).", param=param)
    if ("\x00" if isinstance(text, str) else b"\x00") in text:
        raise OptionError("{param} holds a NUL byte (\\0); remove it.", param=param)
