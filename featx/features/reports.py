"""What an embed run did: its report, and the images it could not embed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class EmbedReport:
    """What one embed run did, for the summary line and ``--json``."""

    cache_path: Path
    images: int = 0
    embedded: int = 0
    reused: int = 0
    skipped: list[SkippedImage] = field(default_factory=list)
    feature_dim: int = 0
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()  # what the dataset scan left out or merged (Dataset.warnings)
    views: ViewsReport | None = None  # the augmented views' run (featx.engine.views), when views were asked for

    def to_dict(self) -> dict[str, object]:
        return {
            **({"views": self.views.to_dict()} if self.views is not None else {}),
            "cache": str(self.cache_path),
            "images": self.images,
            "embedded": self.embedded,
            "reused": self.reused,
            "skipped": [s.to_dict() for s in self.skipped],
            "feature_dim": self.feature_dim,
            "seconds": round(self.seconds, 3),
            "warnings": list(self.warnings),
        }


@dataclass
class ViewsReport:
    """What one views run did (counts are views, not images)."""

    cache_path: Path
    count: int
    augment: str
    images: int = 0  # training images that were given views
    embedded: int = 0
    reused: int = 0
    failed: list[SkippedImage] = field(default_factory=list)  # images whose views could not be made this run
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {"cache": str(self.cache_path), "views_per_image": self.count, "augment": self.augment,
                "images": self.images, "embedded": self.embedded, "reused": self.reused,
                "failed": [f.to_dict() for f in self.failed], "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class SkippedImage:
    """An image that could not be embedded, and why."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}
