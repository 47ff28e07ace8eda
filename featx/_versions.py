"""Installed package versions, as recorded in caches, heads and model files."""

from __future__ import annotations

from importlib import metadata

RECORDED_PACKAGES = ("featx", "keras", "tensorflow", "jax", "torch")  # each Keras backend's library


def package_version(name: str) -> str:
    """The installed version of ``name``, or ``"unknown"`` when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def featx_version() -> str:
    """featx's own version (``"unknown"`` when run from a source tree that is not installed)."""
    return package_version("featx")


def recorded_versions() -> dict[str, str]:
    """``{"featx_version": ..., "keras_version": ..., ...}``: what a cache records it was made with."""
    return {f"{name}_version": package_version(name) for name in RECORDED_PACKAGES}
