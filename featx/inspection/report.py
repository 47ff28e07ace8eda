"""The HTML report: summary counts, the map, then each finding with thumbnails of its images.

Thumbnails are the image files themselves, linked by paths relative to the report, so the page
works where it was written (and with the dataset moved alongside it); a file that cannot be shown
is marked "missing" in the page. The map is inside the page, so it is one file besides the images.
"""

from __future__ import annotations

import base64
import io
import os
from html import escape
from pathlib import Path
from urllib.parse import quote

from featx.cache.outputs import check_outputs
from featx.inspection.findings import Duplicate, Inspection
from featx.inspection.picture import draw_map

GROUP_THUMBNAILS = 12  # images shown of one duplicate group

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
img.thumb{width:96px;height:96px;object-fit:cover;background:#eee}img.missing{outline:2px dashed #c00}
figure{display:inline-block;margin:0 8px 0 0;font-size:12px;max-width:200px;word-break:break-all}
.flag{color:#fff;background:#c00;border-radius:3px;padding:0 4px;font-size:12px}"""


def write_report(inspection: Inspection, path: str | os.PathLike, *, limit: int = 200, method: str = "auto",
                 seed: int = 0) -> Path:
    """Write the inspection as one HTML page; at most ``limit`` findings of each kind are shown."""
    check_outputs({"path": path}, inputs={"cache": inspection.features.cache_path})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.resolve().parent
    summary = inspection.summary()
    png = io.BytesIO()
    draw_map(inspection, method=method, seed=seed).savefig(png, format="png", dpi=100)
    thumb = _thumbnail(folder)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>featx inspect</title>"
             f"<style>{STYLE}</style></head><body><h1>featx inspect</h1>",
             f"<p>{escape(str(summary['cache'] or ''))} &middot; {escape(str(summary['backbone'] or ''))}</p>",
             "<table id='summary'>" + "".join(
                 f"<tr><th>{escape(key.replace('_', ' '))}</th><td>{summary[key]}</td></tr>"
                 for key in ("images", "labelled", "classes", "label_issues", "duplicates", "exact_duplicates",
                             "leaks", "label_conflicts", "outliers")) + "</table>",
             "".join(f"<p class='note'>{escape(note)}</p>" for note in inspection.notes),
             f"<h2>Map</h2><img id='map' alt='map of the dataset' src='data:image/png;base64,"
             f"{base64.b64encode(png.getvalue()).decode()}'>"]
    parts.append(_section("Likely label errors", "label_issues", ["image", "given", "suggested", "score"],
                          [[thumb(f.path), escape(f.given), escape(f.suggested), f"{f.score:.3f}"]
                           for f in inspection.label_issues[:limit]], len(inspection.label_issues)))
    parts.append(_section("Duplicates and leakage", "duplicates", ["images", "similarity", "flags"],
                          [[_group(thumb, d), f"{d.similarity:.3f}", _flags(d)]
                           for d in inspection.duplicates[:limit]],
                          len(inspection.duplicates)))
    parts.append(_section("Outliers", "outliers", ["image", "label", "score"],
                          [[thumb(f.path), escape(f.label or "unlabelled"), f"{f.score:.2f}"]
                           for f in inspection.outliers[:limit]], len(inspection.outliers)))
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _thumbnail(folder: Path):
    def thumb(image: str, caption: str = "") -> str:
        try:
            src = Path(os.path.relpath(image, folder)).as_posix()
        except ValueError:  # another drive on Windows: an absolute file URL
            src = Path(image).as_uri()
        text = escape(caption or Path(image).name)
        return (f"<figure><a href='{escape(quote(src))}'><img class='thumb' src='{escape(quote(src))}' "
                f"alt='{escape(image)}' title='{escape(image)}' "
                f"onerror=\"this.classList.add('missing')\"></a><figcaption>{text}</figcaption></figure>")

    return thumb


def _group(thumb, group: Duplicate) -> str:
    """A duplicate group's thumbnails (the first GROUP_THUMBNAILS), each captioned split · label."""
    shown = list(zip(group.paths, group.splits, group.labels))[:GROUP_THUMBNAILS]
    cells = "".join(thumb(path, f"{split or 'no split'} · {label or 'unlabelled'}") for path, split, label in shown)
    hidden = len(group.paths) - len(shown)
    return cells + (f"<p>and {hidden} more</p>" if hidden else "")


def _flags(group: Duplicate) -> str:
    flags = ["exact"] if group.exact else ["near"]
    flags += [f"<span class='flag'>{name}</span>" for name, on in (("leak", group.leak), ("conflict", group.conflict))
              if on]
    return " ".join(flags)


def _section(title: str, kind: str, columns: list[str], rows: list[list[str]], total: int) -> str:
    if not rows:
        return f"<h2>{title}</h2><p id='{kind}'>none found.</p>"
    more = f"<p>{total - len(rows)} more in <code>featx inspect --json</code>.</p>" if total > len(rows) else ""
    head = "".join(f"<th>{c}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<h2>{title} ({total})</h2><table id='{kind}'><tr>{head}</tr>{body}</table>{more}"
