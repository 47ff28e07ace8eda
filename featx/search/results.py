"""What a search returns: for each query, the cached images nearest to it, best first."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Hit:
    """One cached image found: its path, label (class name, "" unlabelled), split, cosine score, content id."""

    path: str
    label: str
    split: str
    score: float
    id: str

    def to_dict(self) -> dict:
        return {"path": self.path, "label": self.label, "split": self.split, "score": self.score, "id": self.id}


@dataclass(frozen=True)
class Match:
    """A query and its hits. ``query`` is what was asked (a file, a cached path, an id, a text);
    ``label`` and ``split`` are the query image's own when it is a cached image (``--against``)."""

    query: str
    hits: tuple[Hit, ...]
    label: str = ""
    split: str = ""

    @property
    def score(self) -> float:
        """The best hit's score (-1 when nothing was found)."""
        return self.hits[0].score if self.hits else -1.0

    def to_dict(self) -> dict:
        extra = {"label": self.label, "split": self.split} if self.label or self.split else {}
        return {"query": self.query, **extra, "hits": [hit.to_dict() for hit in self.hits]}


@dataclass(frozen=True)
class SearchResult:
    """The matches of a search of ``cache`` (of ``against``'s images when given), and how it was done."""

    cache: Path
    matches: tuple[Match, ...]
    against: Path | None = None
    method: str = "exact"  # or "index": the approximate index beside the cache
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())

    def __iter__(self):
        return iter(self.matches)

    def __len__(self) -> int:
        return len(self.matches)

    def to_dict(self) -> dict:
        return {"cache": str(self.cache), **({"against": str(self.against)} if self.against else {}),
                "method": self.method, "seconds": round(self.seconds, 4), "notes": list(self.notes),
                "matches": [m.to_dict() for m in self.matches]}
