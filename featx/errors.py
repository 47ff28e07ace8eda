"""The exceptions featx raises for problems a user can fix.

Every message is one line that says what is wrong and what to do. Each error subclasses the
built-in exception a Python user expects to catch (``ValueError`` for a bad argument,
``FileNotFoundError`` for a missing file, ...). An error about one argument names it through
``param`` (the Python parameter, e.g. ``"pooling"``): from Python the message reads "The
'pooling' parameter must be ...", and the command line renders the same error with its flag,
"--pooling must be ...". Messages mark the place of the argument's name with ``{param}``.
"""

from __future__ import annotations

from collections.abc import Callable


def python_name(param: str) -> str:
    """How a message names a Python parameter: ``the 'pooling' parameter``."""
    return f"the {param!r} parameter"


class FeatxError(Exception):
    """A problem with the user's input, options or environment; the message says how to fix it.

    ``param`` is the Python parameter at fault, when there is one; ``message`` may contain
    ``{param}``, which :meth:`render` fills with that parameter's name.
    """

    def __init__(self, message: str, *, param: str | None = None):
        self.template = message
        self.param = param
        super().__init__(self.render())

    def render(self, name: Callable[[str], str] = python_name) -> str:
        """The message with ``{param}`` named by ``name(param)`` (the CLI passes its flag names)."""
        if self.param is None or "{param}" not in self.template:
            return self.template
        text = self.template.replace("{param}", name(self.param))
        return text[:1].upper() + text[1:]


class OptionError(FeatxError, ValueError):
    """An argument has an invalid value (the CLI exits 2, as for other usage errors)."""


class MissingFileError(FeatxError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class DatasetError(FeatxError, ValueError):
    """The folders or manifest of a dataset are ambiguous or contradict themselves (which label,
    which split); the message names the folders or rows and says how to make them plain."""


class ImageDecodeError(FeatxError, ValueError):
    """An image file could not be turned into RGB pixels; the message is the reason, for a skip list."""


class CacheError(FeatxError, ValueError):
    """A feature-cache or head file is foreign, damaged, of another configuration or schema version."""


class CacheNotFoundError(CacheError, FileNotFoundError):
    """No feature cache (or no cache of the asked backbone) where one was looked for."""


class CacheWriteError(CacheError, OSError):
    """A cache could not be written (disk full, permissions, I/O); the committed cache is unchanged."""


class CacheBusyError(CacheError, BlockingIOError):
    """Another process is writing the same cache and the caller chose not to wait."""


class WeightsUnavailableError(FeatxError, OSError):
    """Pretrained weights could not be downloaded or read; ``reason`` is the short cause."""

    def __init__(self, message: str, reason: str = "", *, param: str | None = None):
        self.reason = reason
        super().__init__(message, param=param)


class MissingDependencyError(FeatxError, ImportError):
    """An optional extra is not installed; the message says what to ``pip install``."""


class MemoryUseWarning(UserWarning):
    """A head is about to load more vectors into memory than a quarter of this machine's RAM."""


class SlowFitWarning(UserWarning):
    """A head is estimated to take long to fit on vectors of this size (said before it starts)."""
