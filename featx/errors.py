"""The exceptions featx raises for problems a user can fix.

Every message is one line that names the file or option at fault and says what to do; the CLI
prints it without a traceback.
"""

from __future__ import annotations


class FeatxError(Exception):
    """A problem with the user's input, options or environment; the message says how to fix it."""


class OptionError(FeatxError):
    """An option or argument value is invalid (the CLI exits 2, as for other usage errors)."""


class ImageDecodeError(FeatxError):
    """An image file could not be turned into RGB pixels; the message is the reason, for a skip list."""


class CacheError(FeatxError):
    """A feature-cache file is missing, foreign, damaged or from another schema version."""


class WeightsUnavailableError(FeatxError):
    """Pretrained weights could not be downloaded or read; ``reason`` is the short cause."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason
