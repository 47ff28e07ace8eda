"""The exceptions featx raises for problems a user can fix.

Every message is one line that says what is wrong and what to do. Each error subclasses the
built-in exception a Python user expects to catch (``ValueError`` for a bad argument,
``FileNotFoundError`` for a missing file, ...). An error about one argument names it through
``param`` (the Python parameter, e.g. ``"pooling"``): from Python the message reads "The
'pooling' parameter must be ...", and the command line renders the same error with its flag,
"--pooling must be ...". Messages mark the place of the argument's name with ``{param}``.
"""

from __future__ import annotations

import errno
import re
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
        if not self.template.startswith("{param}"):  # a message that starts with a path keeps its case
            return text
        return text[:1].upper() + text[1:]


class OptionError(FeatxError, ValueError):
    """An argument has an invalid value (the CLI exits 2, as for other usage errors)."""


class OptionTypeError(OptionError, TypeError):
    """An argument has the wrong type (a number where a path belongs, say); caught as TypeError too."""


class MissingFileError(FeatxError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class DatasetError(FeatxError, ValueError):
    """The folders or manifest of a dataset are ambiguous or contradict themselves (which label,
    which split); the message names the folders or rows and says how to make them plain."""


class ImageDecodeError(FeatxError, ValueError):
    """An image file could not be turned into RGB pixels; the message is the reason, for a skip list."""


class DecodeWorkerError(FeatxError, RuntimeError):
    """A decoding worker process died mid-run (killed, out of memory); committed batches are kept."""


class CacheError(FeatxError, ValueError):
    """A feature-cache or head file is foreign, damaged, of another configuration or schema version."""


class DamagedCacheError(CacheError):
    """A feature cache whose index contradicts itself or lacks a part; ``problem`` says what (the
    message adds what to do)."""

    def __init__(self, message: str, *, problem: str = "", param: str | None = None):
        self.problem = problem or message
        super().__init__(message, param=param)


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


class FileSystemError(FeatxError, OSError):
    """The system refused to read or write a file: permissions, a read-only or full disk, a name too
    long, a missing folder. ``code`` is the refusal's errno (OSError's own ``errno`` stays unset, so
    the message reads as featx wrote it)."""

    def __init__(self, message: str, *, param: str | None = None, code: int | None = None):
        super().__init__(message, param=param)
        self.code = code


class MissingDependencyError(FeatxError, ImportError):
    """An optional extra is not installed; the message says what to ``pip install``."""


class ClusterError(FeatxError, ConnectionError):
    """A compute cluster (Ray) cannot be reached at the address given, or refuses the run."""


class MemoryUseWarning(UserWarning):
    """A head is about to load more vectors into memory than a quarter of this machine's RAM."""


class SlowFitWarning(UserWarning):
    """A head is estimated to take long to fit on vectors of this size (said before it starts)."""


# What to do about each refusal of the system, by errno: the second half of the one line.
_OS_ADVICE = {
    errno.EACCES: "permission denied: fix its permissions or choose another place",
    errno.EPERM: "operation not permitted: fix its permissions or choose another place",
    errno.EROFS: "read-only file system: choose a writable place",
    errno.ENOSPC: "no space left on device: free disk space or choose another disk",
    errno.EDQUOT: "disk quota exceeded: free space or choose another disk",
    errno.ENAMETOOLONG: "file name too long: give a shorter path",
    errno.ENOENT: "no such file or folder: check the path (missing folders are not created here)",
    errno.ENOTDIR: "a part of the path is not a folder: check the path",
    errno.EISDIR: "is a folder, where a file is needed",
    errno.ELOOP: "too many levels of symbolic links: check the path",
    errno.EIO: "input/output error: the disk or file system failed",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) or use fewer --workers",
}
_HDF5_ERRNO = re.compile(r"errno = (\d+)")
MAX_SHOWN_PATH = 160  # a 100,000-character path is shortened in messages


def shown_path(path: object) -> str:
    """``path`` as a message shows it: whole, or its start and end around '...' when very long."""
    text = str(path)
    if len(text) <= MAX_SHOWN_PATH:
        return text
    half = MAX_SHOWN_PATH // 2
    return f"{text[:half]}...{text[-half:]} ({len(text)} characters)"


def as_featx_error(exc: BaseException) -> FeatxError | None:
    """The featx error that says in one line what ``exc`` means, for an error the operating system,
    HDF5 or NumPy raised outside featx's own checks (a full disk, a read-only folder, a name too
    long, memory exhausted); None when nothing better than "unexpected error" can be said.

    The one place such failures become featx errors: the CLI's :func:`~featx.cli.app.handle_errors`
    calls it for every command, library code may call it where it adds context.
    """
    if isinstance(exc, FeatxError):
        return exc
    if isinstance(exc, MemoryError):
        return FeatxError("out of memory: this machine cannot hold what the run needs; use a smaller batch size "
                          "(--batch-size) or fewer workers, or free memory.")
    if isinstance(exc, RecursionError):
        return FeatxError("input nested too deeply to read (a damaged or hostile file); give a file featx wrote.")
    if isinstance(exc, UnicodeError):
        return FeatxError(f"text that is not valid UTF-8 ({exc}); give paths and files in UTF-8.")
    if isinstance(exc, ValueError) and "null byte" in str(exc):
        return OptionError("a path or text holds a NUL byte (\\0); remove it.")
    if not isinstance(exc, OSError):
        return None
    code = exc.errno
    if code is None:
        found = _HDF5_ERRNO.search(str(exc))
        code = int(found.group(1)) if found else None
    advice = _OS_ADVICE.get(code) if code is not None else None
    if advice is None:
        reason = exc.strerror or " ".join(str(exc).split())[:200] or type(exc).__name__
        advice = reason[:1].lower() + reason[1:]
    where = exc.filename if exc.filename is not None else None
    text = f"{shown_path(where)}: {advice}." if where is not None else f"{advice[:1].upper()}{advice[1:]}."
    if code == errno.ENOENT:
        return MissingFileError(text)
    return FileSystemError(text, code=code)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none): for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def os_reason(exc: OSError) -> str:
    """A short reason, for a skip list, why a file could not be read."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not a file"
    return f"cannot read file ({exc.strerror or exc})"
