"""The HTML report of a scoring run: one self-contained file a person opens to see why each item
got its reward.

This module owns the report's layout, its number formats and its DOM contract (below). It takes
pixels as numpy arrays (decoding media files is not its job) and the scores as plain numbers
(:func:`report_items` builds them from :class:`vrexp.reward.scorer.RewardScores`). The file has no
network dependency: styles and the sorter script are inline, thumbnails are base64 JPEG data URIs,
the charts are inline SVG and CSS, and a Content-Security-Policy allows nothing else (the script by
its SHA-256, so an injected one could not run even if escaping failed). Every user string (file
names, prompts, questions, dimension names, title, notes) is HTML-escaped, in text and attributes;
the script reads numbers from ``data-`` attributes and moves existing nodes, never parses markup.

DOM contract (``tests/test_score_report.py`` checks it; tools read it, so change it with them)
----------------------------------------------------------------------------------------------
Numbers in ``data-`` attributes are Python's ``repr`` of the float: the shortest text that reads
back as the same double (``float(attr) == value`` in Python, ``Number(attr)`` in JS), e.g.
``0.1``, ``-1.25``, ``1e-05``. Visible numbers: scores (total, sub-scores, contributions) as
``f"{x:+.3f}"`` (a value that rounds to zero reads ``+0.000``), P(yes) as ``f"{p:.2f}"``, a
masked (presence) question's contribution as ``mask``. Dimension indices ``d`` follow
``dimension_names``.

- ``#summary`` (``data-count``: the number of items): ``svg#histogram`` of the totals with one
  ``rect.bin`` per bin (``data-low``, ``data-high``, ``data-count``; bins from
  :func:`total_histogram`); ``table#dimension-means`` with one ``tr.dim-mean`` per dimension
  (``data-dim-index``, ``data-mean``); ``ol#best`` and ``ol#worst``, whose ``li`` have
  ``data-item-id`` and a link ``a[href="#item-<id>"]``.
- ``nav#sorter``: ``select#sort-key`` (options ``total``, ``dim-0`` ... ``dim-<D-1>``) and
  ``select#sort-dir`` (``desc``, ``asc``). ``sort=<key>&dir=<dir>`` in the URL fragment (e.g.
  ``report.html#sort=dim-1&dir=asc``; ``dir`` defaults to ``desc``) is applied on load and on
  ``hashchange``, in the query (``?sort=...``) on load when the fragment has none; a pair with an
  unknown value is ignored. Changing a control rewrites the fragment.
- ``main#items`` (``data-sort-key``, ``data-sort-dir``: the order shown) holds one
  ``article.item`` per item, ``id="item-<id>"``, with ``data-item-id`` (int), ``data-total``,
  ``data-dim-<d>`` for every dimension, ``data-media`` (``image`` | ``video``) and
  ``data-frames`` (strip length, 0 for an image). The initial order is total descending; every
  order breaks ties by item id ascending.
- Inside an item: ``.name`` (the file name), ``.prompt`` (the prompt), ``.total`` (visible total),
  ``img.poster`` (``alt`` = the file name), ``img.frame`` per strip frame, ``tr.dim`` per dimension
  (``data-dim-index``, ``data-value``; the visible value in ``td.dim-value``) and, in a closed
  ``details.questions``, one ``tbody.dimension-group`` (``data-dim-index``) per dimension that has
  questions, with a ``tr.question`` per question in the given order: ``data-question-id``, ``data-p-yes``, ``data-contribution`` (empty
  for a masked question), visible in ``td.p-yes`` and ``td.contribution``.
- Exactly one ``<script>`` element (the sorter).
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

import vrexp
from vrexp.data.atomic import atomic_write

if TYPE_CHECKING:
    from vrexp.reward.scorer import RewardScores

log = logging.getLogger(__name__)

MAX_BINS = 30
NUM_EXTREMES = 3  # items listed as best and as worst
JPEG_QUALITY = 85
STRIP_GAP = 4  # pixels between strip frames


@dataclass(frozen=True, eq=False)  # eq=False: arrays do not compare or hash as values
class ReportItem:
    """One scored item as the report shows it.

    ``questions`` rows are ``{"id", "dimension", "question" (prompt filled in), "p_yes",
    "contribution"}`` (``RewardScores.item``'s shape); ``contribution`` is ``None`` for a presence
    question (it masks, it has no weight). ``poster`` is the image, or a video's poster frame;
    ``strip`` a video's sampled frames (empty for an image).
    """

    item_id: int
    name: str
    prompt: str
    total: float
    dimensions: dict[str, float]
    questions: list[dict]
    poster: np.ndarray
    strip: tuple[np.ndarray, ...] = field(default=())

    def __post_init__(self) -> None:
        where = f"report item {self.item_id!r}"
        if isinstance(self.item_id, bool) or not isinstance(self.item_id, (int, np.integer)):
            raise TypeError(f"{where}: item_id must be an int")
        for label, text in (("name", self.name), ("prompt", self.prompt)):
            if not isinstance(text, str):
                raise TypeError(f"{where}: {label} must be a string, got {type(text).__name__}")
        _finite(self.total, f"{where}: total")
        for dim, value in self.dimensions.items():
            _finite(value, f"{where}: sub-score of {dim!r}")
        _check_pixels(self.poster, f"{where}: poster")
        for k, frame in enumerate(self.strip):
            _check_pixels(frame, f"{where}: strip frame {k}")
        for row in self.questions:
            missing = {"id", "dimension", "question", "p_yes", "contribution"} - set(row)
            if missing:
                raise ValueError(f"{where}: question row {row!r} lacks {sorted(missing)}")
            p = _finite(row["p_yes"], f"{where}: P(yes) of question {row['id']}")
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{where}: P(yes) of question {row['id']} is {p}, not in [0, 1]")
            if row["contribution"] is not None:
                _finite(row["contribution"], f"{where}: contribution of question {row['id']}")


def _finite(value: Any, what: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} is {number}; the report needs finite numbers")
    return number


def _check_pixels(array: Any, what: str) -> None:
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        got = getattr(array, "dtype", type(array).__name__)
        raise TypeError(f"{what} must be a uint8 numpy array, got {got}")
    if array.ndim != 3 or array.shape[2] != 3 or 0 in array.shape:
        raise ValueError(f"{what} must have shape [H, W, 3], got {list(array.shape)}")


def report_items(
    scores: RewardScores,
    *,
    names: Sequence[str],
    prompts: Sequence[str],
    posters: Sequence[np.ndarray],
    strips: Sequence[Sequence[np.ndarray]] | None = None,
    item_ids: Sequence[int] | None = None,
) -> list[ReportItem]:
    """ReportItems from ``VisionReward.score`` output, with each question's ``[[prompt]]`` filled
    in from ``prompts`` (whatever prompts the scores were made with)."""
    n = len(scores)
    strips = [()] * n if strips is None else strips
    item_ids = range(n) if item_ids is None else item_ids
    lengths = {len(names), len(prompts), len(posters), len(strips), len(item_ids)}
    if lengths != {n}:
        raise ValueError(
            f"{n} scored items need as many names, prompts, posters, strips and ids; got "
            f"{len(names)}, {len(prompts)}, {len(posters)}, {len(strips)}, {len(item_ids)}"
        )
    items = []
    for i in range(n):
        row = scores.item(i)
        for question, q in zip(row["questions"], scores.questions, strict=True):
            question["question"] = q.render(prompts[i], item=names[i])
        items.append(
            ReportItem(
                item_id=int(item_ids[i]),
                name=names[i],
                prompt=prompts[i],
                total=row["total"],
                dimensions=row["dimensions"],
                questions=row["questions"],
                poster=np.asarray(posters[i]),
                strip=tuple(np.asarray(f) for f in strips[i]),
            )
        )
    return items


# --------------------------------------------------------------------------- numbers
def _num(value: float) -> str:
    """A ``data-`` attribute number: repr round-trips exactly (see the DOM contract)."""
    return repr(float(value))


def _score(value: float) -> str:
    # + 0.0 turns -0.0 (a masked dependant's weight x 0) into 0.0: no "-0.000" on the page.
    return f"{round(float(value), 3) + 0.0:+.3f}"


def _prob(value: float) -> str:
    return f"{float(value):.2f}"


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def total_histogram(totals: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(counts, edges) of the totals: Sturges' number of bins (``ceil(log2 n) + 1``, at most
    ``MAX_BINS``) over [min, max]; numpy widens an all-equal range to [v - 0.5, v + 0.5]."""
    values = np.asarray(totals, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no totals to bin")
    bins = min(MAX_BINS, int(np.ceil(np.log2(values.size))) + 1)
    counts, edges = np.histogram(values, bins=bins)
    return counts, edges


# --------------------------------------------------------------------------- pictures
def _thumbnail(pixels: np.ndarray, long_side: int, alt: str, css_class: str) -> str:
    """An ``<img>`` with a JPEG data URI: downscaled to ``long_side`` (never upscaled: that adds
    bytes, not detail), displayed at ``long_side`` through width/height."""
    image = Image.fromarray(np.ascontiguousarray(pixels))
    h, w = pixels.shape[:2]
    factor = long_side / max(h, w)
    shown = (max(1, round(w * factor)), max(1, round(h * factor)))
    if factor < 1:
        image = image.resize(shown, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    # Small renders scaled up stay crisp instead of smeared.
    pixelated = " pixelated" if factor >= 2 else ""
    return (
        f'<img class="{css_class}{pixelated}" src="data:image/jpeg;base64,{data}" '
        f'width="{shown[0]}" height="{shown[1]}" alt="{_e(alt)}">'
    )


# --------------------------------------------------------------------------- charts
def _bar(value: float, scale: float) -> str:
    """A bar growing left (negative) or right (positive) from the centre line of its track."""
    width = 50.0 * min(abs(value) / scale, 1.0)
    side, kind = ("right", "neg") if value < 0 else ("left", "pos")
    return (
        f'<div class="track"><span class="bar {kind}" style="{side}:50%;width:{width:.2f}%">'
        "</span></div>"
    )


def _histogram_svg(counts: np.ndarray, edges: np.ndarray) -> str:
    width, height, left, right, top, bottom = 540, 180, 36, 12, 16, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    lo, hi = float(edges[0]), float(edges[-1])
    peak = max(int(counts.max()), 1)

    def x(value: float) -> float:
        return left + plot_w * (value - lo) / (hi - lo)

    parts = [
        f'<svg id="histogram" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="Histogram of the totals: {int(counts.sum())} items in '
        f'{len(counts)} bins from {_score(lo)} to {_score(hi)}">'
    ]
    bins = zip(counts.tolist(), edges[:-1].tolist(), edges[1:].tolist(), strict=True)
    for count, low, high in bins:
        bar_h = plot_h * count / peak
        parts.append(
            f'<rect class="bin" x="{x(low) + 0.5:.2f}" y="{top + plot_h - bar_h:.2f}" '
            f'width="{max(x(high) - x(low) - 1.0, 0.5):.2f}" height="{bar_h:.2f}" '
            f'data-low="{_num(low)}" data-high="{_num(high)}" data-count="{count}">'
            f"<title>{_score(low)} to {_score(high)}: {count} item{'s' * (count != 1)}</title>"
            "</rect>"
        )
        if count:
            parts.append(
                f'<text class="count" x="{(x(low) + x(high)) / 2:.2f}" '
                f'y="{top + plot_h - bar_h - 3:.2f}" text-anchor="middle">{count}</text>'
            )
    base = top + plot_h
    parts.append(f'<line class="axis" x1="{left}" y1="{base}" x2="{width - right}" y2="{base}"/>')
    if lo < 0 < hi:
        parts.append(
            f'<line class="zero" x1="{x(0.0):.2f}" y1="{top}" x2="{x(0.0):.2f}" y2="{base}"/>'
        )
    parts.append(
        f'<text x="{left}" y="{height - 10}" text-anchor="start">{_score(lo)}</text>'
        f'<text x="{width - right}" y="{height - 10}" text-anchor="end">{_score(hi)}</text>'
        f'<text x="{left + plot_w / 2:.2f}" y="{height - 10}" text-anchor="middle">total</text>'
        f'<text x="{left - 6}" y="{top + 10}" text-anchor="end">{peak}</text>'
        f'<text x="{left - 6}" y="{base}" text-anchor="end">0</text>'
    )
    if lo < 0 < hi:
        parts.append(f'<text x="{x(0.0):.2f}" y="{base + 12}" text-anchor="middle">0</text>')
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------- sections
def _summary(
    items: Sequence[ReportItem], ranked: Sequence[ReportItem], names: Sequence[str]
) -> str:
    totals = np.array([it.total for it in items], dtype=np.float64)
    counts, edges = total_histogram(totals)
    means = [float(np.mean([it.dimensions[name] for it in items])) for name in names]
    # Means are smaller than single sub-scores: on the items' scale their bars would be specks.
    scale = max(abs(m) for m in means) or 1.0
    stats = (
        ("items", str(len(items))),
        ("mean total", _score(totals.mean())),
        ("median", _score(np.median(totals))),
        ("min", _score(totals.min())),
        ("max", _score(totals.max())),
    )
    rows = "".join(
        f'<tr class="dim-mean" data-dim-index="{d}" data-mean="{_num(mean)}">'
        f'<th scope="row">{_e(name)}</th><td class="bar-cell">{_bar(mean, scale)}</td>'
        f'<td class="num">{_score(mean)}</td></tr>'
        for d, (name, mean) in enumerate(zip(names, means, strict=True))
    )

    def extremes(list_id: str, chosen: Sequence[ReportItem]) -> str:
        entries = "".join(
            f'<li data-item-id="{it.item_id}"><a href="#item-{it.item_id}">{_e(it.name)}</a> '
            f'<span class="num">{_score(it.total)}</span></li>'
            for it in chosen
        )
        return f'<ol id="{list_id}">{entries}</ol>'

    k = min(NUM_EXTREMES, len(ranked))
    return (
        f'<section id="summary" data-count="{len(items)}"><h2>Summary</h2>'
        '<div class="summary-grid">'
        '<div class="panel"><h3>Totals</h3><dl class="stats">'
        + "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in stats)
        + "</dl>"
        + _histogram_svg(counts, edges)
        + '</div><div class="panel"><h3>Mean sub-score per dimension</h3>'
        '<table id="dimension-means" class="dims"><thead><tr><th scope="col">dimension</th>'
        '<th scope="col">mean sub-score</th><th scope="col" class="num">value</th>'
        "</tr></thead>"
        f'<tbody>{rows}</tbody></table><p class="hint">bars to the scale of the largest mean</p>'
        "</div>"
        f'<div class="panel"><h3>Best {k}</h3>{extremes("best", ranked[:k])}'
        f"<h3>Worst {k}</h3>{extremes('worst', ranked[::-1][:k])}</div>"
        "</div></section>"
    )


def _sorter(names: Sequence[str]) -> str:
    options = '<option value="total" selected>total</option>' + "".join(
        f'<option value="dim-{d}">{_e(name)}</option>' for d, name in enumerate(names)
    )
    return (
        '<nav id="sorter"><label for="sort-key">Sort by</label> '
        f'<select id="sort-key">{options}</select> '
        '<label for="sort-dir">order</label> <select id="sort-dir">'
        '<option value="desc" selected>descending (best first)</option>'
        '<option value="asc">ascending (worst first)</option></select></nav>'
    )


def _questions(item: ReportItem, names: Sequence[str]) -> str:
    groups = []
    for d, name in enumerate(names):
        rows = [q for q in item.questions if q["dimension"] == name]
        if not rows:
            continue
        body = "".join(
            f'<tr class="question" data-question-id="{int(q["id"])}" '
            f'data-p-yes="{_num(q["p_yes"])}" '
            f'data-contribution="{"" if q["contribution"] is None else _num(q["contribution"])}">'
            f'<td class="qid">{int(q["id"])}</td><td class="text">{_e(q["question"])}</td>'
            f'<td class="p-yes num">{_prob(q["p_yes"])}</td>'
            + (
                '<td class="contribution num masked">mask</td>'
                if q["contribution"] is None
                else f'<td class="contribution num">{_score(q["contribution"])}</td>'
            )
            + "</tr>"
            for q in rows
        )
        groups.append(
            f'<tbody class="dimension-group" data-dim-index="{d}"><tr class="group-heading">'
            f'<th scope="rowgroup" colspan="3">{_e(name)}</th>'
            f'<td class="num">{_score(item.dimensions[name])}</td></tr>{body}</tbody>'
        )
    return (
        f'<details class="questions"><summary>Questions ({len(item.questions)}): P(yes) and '
        "contribution</summary><table><thead><tr>"
        '<th scope="col">id</th><th scope="col">question</th>'
        '<th scope="col" class="num">P(yes)</th><th scope="col" class="num">contribution</th>'
        f"</tr></thead>{''.join(groups)}</table></details>"
    )


def _item(item: ReportItem, names: Sequence[str], scale: float, thumbnail_size: int) -> str:
    dims = "".join(f' data-dim-{d}="{_num(item.dimensions[n])}"' for d, n in enumerate(names))
    media = "video" if item.strip else "image"
    strip = ""
    if item.strip:
        # Four frames a row, as wide as the poster (STRIP_GAP pixels apart).
        size = max(16, (thumbnail_size - 3 * STRIP_GAP) // 4)
        strip = (
            f'<div class="strip" style="max-width:{thumbnail_size}px;gap:{STRIP_GAP}px">'
            + "".join(
                _thumbnail(frame, size, f"{item.name}, frame {k + 1} of {len(item.strip)}", "frame")
                for k, frame in enumerate(item.strip)
            )
            + "</div>"
        )
    bars = "".join(
        f'<tr class="dim" data-dim-index="{d}" data-value="{_num(item.dimensions[name])}">'
        f'<th scope="row">{_e(name)}</th>'
        f'<td class="bar-cell">{_bar(item.dimensions[name], scale)}</td>'
        f'<td class="dim-value num">{_score(item.dimensions[name])}</td></tr>'
        for d, name in enumerate(names)
    )
    kind = f"video, {len(item.strip)} frames" if item.strip else "image"
    return (
        f'<article class="item" id="item-{item.item_id}" data-item-id="{item.item_id}" '
        f'data-total="{_num(item.total)}"{dims} data-media="{media}" '
        f'data-frames="{len(item.strip)}">'
        f'<div class="media">{_thumbnail(item.poster, thumbnail_size, item.name, "poster")}'
        f"{strip}</div>"
        '<div class="info"><header>'
        f'<h2 class="name">{_e(item.name)}</h2>'
        f'<p class="total-line">total <span class="total">{_score(item.total)}</span></p>'
        "</header>"
        f'<p class="meta">#{item.item_id} · {kind}</p>'
        f'<p class="prompt-line"><span class="label">prompt</span> '
        f'<span class="prompt">{_e(item.prompt)}</span></p>'
        '<table class="dims"><thead><tr><th scope="col">dimension</th>'
        '<th scope="col">sub-score</th><th scope="col" class="num">value</th></tr></thead>'
        f"<tbody>{bars}</tbody></table>"
        f"{_questions(item, names)}</div></article>"
    )


# --------------------------------------------------------------------------- page
STYLE = """
:root { --pos: #2f7fb5; --neg: #cc5a3f; --muted: #666; --line: #ddd; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
  background: #f6f6f4; margin: 0 auto; max-width: 1240px; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0; }
h2 { font-size: 17px; margin: 0 0 6px; }
h3 { font-size: 14px; margin: 8px 0 4px; color: #444; }
.hint { color: var(--muted); font-size: 12px; margin: 4px 0 0; }
.notes { color: var(--muted); margin: 0 0 12px; padding-left: 18px; }
.summary-grid { display: grid; grid-template-columns: 570px minmax(300px, 1.4fr) minmax(200px, 1fr);
  gap: 12px; }
@media (max-width: 1100px) { .summary-grid { grid-template-columns: 1fr; } }
.panel, .item { background: #fff; border: 1px solid var(--line); border-radius: 6px;
  padding: 10px 14px; }
.stats { display: grid; grid-template-columns: repeat(5, auto); grid-auto-flow: column;
  grid-template-rows: auto auto; justify-content: start; gap: 0 18px; margin: 0 0 6px; }
.stats dt { color: var(--muted); font-size: 12px; }
.stats dd { margin: 0; font-weight: 600; font-variant-numeric: tabular-nums; }
#histogram rect.bin { fill: var(--pos); } #histogram .axis, #histogram .zero { stroke: #999; }
#histogram .zero { stroke-dasharray: 3 3; } #histogram text { font-size: 11px; fill: #555; }
#histogram svg, #histogram { max-width: 100%; height: auto; }
ol { margin: 0; padding-left: 22px; } li .num { color: var(--muted); }
#sorter { position: sticky; top: 0; z-index: 1; background: #f6f6f4; padding: 8px 0;
  margin: 12px 0 4px; border-bottom: 1px solid var(--line); }
.item { display: grid; grid-template-columns: auto minmax(0, 1fr); gap: 16px; margin: 10px 0; }
.media img { display: block; border-radius: 3px; }
img.pixelated { image-rendering: pixelated; }
.strip { display: flex; flex-wrap: wrap; margin-top: 4px; }
.item header { display: flex; justify-content: space-between; align-items: baseline; gap: 12px; }
.name { overflow-wrap: anywhere; }
.total-line { margin: 0; color: var(--muted); white-space: nowrap; }
.total { font-size: 20px; font-weight: 700; color: #222; font-variant-numeric: tabular-nums; }
.meta { margin: 0; color: var(--muted); font-size: 12px; }
.prompt-line { margin: 4px 0 8px; } .label { color: var(--muted); margin-right: 4px; }
.prompt { font-style: italic; overflow-wrap: anywhere; }
table { border-collapse: collapse; }
.dims { width: 100%; max-width: 560px; }
.dims th, .dims td { padding: 1px 6px; text-align: left; font-weight: normal; }
.dims thead th { color: var(--muted); font-size: 12px; }
.bar-cell { width: 60%; }
.track { position: relative; height: 12px; background: #f0f0ee; border-radius: 2px; }
.track::after { content: ""; position: absolute; left: 50%; top: -2px; bottom: -2px;
  border-left: 1px solid #999; }
.bar { position: absolute; top: 0; bottom: 0; }
.bar.pos { background: var(--pos); } .bar.neg { background: var(--neg); }
.num { text-align: right !important; font-variant-numeric: tabular-nums; white-space: nowrap; }
details.questions { margin-top: 8px; } details.questions summary { cursor: pointer; }
details.questions table { margin-top: 6px; width: 100%; }
details.questions th, details.questions td { padding: 2px 8px; border-bottom: 1px solid #eee;
  text-align: left; vertical-align: top; }
.group-heading th, .group-heading td { background: #f3f3f1; font-weight: 600; }
.qid { color: var(--muted); } .masked { color: var(--muted); font-style: italic; }
footer { margin-top: 24px; color: var(--muted); font-size: 12px; }
"""

# Vanilla JS, no markup parsing: numbers come from data- attributes, items are existing nodes that
# appendChild moves. The URL fragment (or query) sort=<key>&dir=<asc|desc> sets the order on load.
SCRIPT = """
(function () {
  "use strict";
  var list = document.getElementById("items");
  var keySelect = document.getElementById("sort-key");
  var dirSelect = document.getElementById("sort-dir");
  function offers(select, value) {
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].value === value) { return true; }
    }
    return false;
  }
  function sortItems(key, dir) {
    var attr = "data-" + key, sign = dir === "asc" ? 1 : -1;
    var items = Array.prototype.slice.call(list.querySelectorAll(":scope > .item"));
    items.sort(function (a, b) {
      var d = Number(a.getAttribute(attr)) - Number(b.getAttribute(attr));
      if (d !== 0) { return sign * d; }
      return Number(a.getAttribute("data-item-id")) - Number(b.getAttribute("data-item-id"));
    });
    items.forEach(function (item) { list.appendChild(item); });
    keySelect.value = key;
    dirSelect.value = dir;
    list.setAttribute("data-sort-key", key);
    list.setAttribute("data-sort-dir", dir);
  }
  function fromUrl(withQuery) {
    var sources = [location.hash.slice(1)];
    if (withQuery) { sources.push(location.search.slice(1)); }
    for (var i = 0; i < sources.length; i++) {
      var params = new URLSearchParams(sources[i]);
      var key = params.get("sort"), dir = params.get("dir") || "desc";
      if (key !== null && offers(keySelect, key) && offers(dirSelect, dir)) {
        sortItems(key, dir);
        return;
      }
    }
  }
  function fromControls() {
    sortItems(keySelect.value, dirSelect.value);
    try {
      history.replaceState(null, "", "#sort=" + keySelect.value + "&dir=" + dirSelect.value);
    } catch (err) { /* some file:// contexts refuse; the order is applied anyway */ }
  }
  keySelect.addEventListener("change", fromControls);
  dirSelect.addEventListener("change", fromControls);
  // A later fragment without sort= (a click on a #item-<id> link) keeps the order shown.
  window.addEventListener("hashchange", function () { fromUrl(false); });
  fromUrl(true);
})();
"""


def render_score_report(
    items: Sequence[ReportItem],
    *,
    dimension_names: Sequence[str],
    title: str,
    notes: Sequence[str] = (),
    thumbnail_size: int = 256,
) -> str:
    """The report as one self-contained HTML document (see the module docstring)."""
    if not items:
        raise ValueError("render_score_report needs at least one item; the scoring run gave none")
    names = [str(n) for n in dimension_names]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"dimension_names must be distinct and non-empty, got {names}")
    if thumbnail_size < 16:
        raise ValueError(f"thumbnail_size must be at least 16 pixels, got {thumbnail_size}")
    _check_items(items, names)

    ranked = sorted(items, key=lambda it: (-it.total, it.item_id))
    # One bar scale for the whole page, so bars compare across items and with the means.
    scale = max((abs(v) for it in items for v in it.dimensions.values()), default=0.0) or 1.0
    cards = "".join(_item(it, names, scale, thumbnail_size) for it in ranked)
    notes_html = (
        '<ul class="notes">' + "".join(f"<li>{_e(note)}</li>" for note in notes) + "</ul>"
        if notes
        else ""
    )
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
    policy = (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="vrexp {_e(vrexp.__version__)}">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n<body>"
        f"<h1>{_e(title)}</h1>{notes_html}"
        f"{_summary(items, ranked, names)}{_sorter(names)}"
        f'<main id="items" data-sort-key="total" data-sort-dir="desc">{cards}</main>'
        f"<footer>vrexp {_e(vrexp.__version__)} score report · {len(items)} items · "
        f"{len(names)} dimensions</footer>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def _check_items(items: Sequence[ReportItem], names: Sequence[str]) -> None:
    seen: set[int] = set()
    for it in items:
        if it.item_id in seen:
            raise ValueError(f"item id {it.item_id} appears twice; ids name the report's anchors")
        seen.add(it.item_id)
        if set(it.dimensions) != set(names):
            raise ValueError(
                f"report item {it.item_id} has sub-scores for {sorted(it.dimensions)}, "
                f"the report's dimensions are {list(names)}"
            )
        unknown = {q["dimension"] for q in it.questions} - set(names)
        if unknown:
            raise ValueError(
                f"report item {it.item_id} has questions of unknown dimensions {sorted(unknown)}"
            )


def write_score_report(path: str | Path, items: Sequence[ReportItem], **kwargs: Any) -> Path:
    """Render the report and write it atomically (keywords as :func:`render_score_report`)."""
    html = render_score_report(items, **kwargs)
    path = atomic_write(path, lambda tmp: tmp.write_text(html, encoding="utf-8"))
    log.info("score report: %s (%d items, %.0f KiB)", path, len(items), len(html) / 1024)
    return path
