"""Search a feature cache: the cached images nearest to an image, a cached path or id, or the images
two caches share (``featx.search``, ``featx search``)."""

from featx.search.results import Hit, Match, SearchResult
from featx.search.run import search

__all__ = ["Hit", "Match", "SearchResult", "search"]
