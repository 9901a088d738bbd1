"""The HTML score report: its numbers, escaping, summary and sorter, as rendered by Python and as a
real headless Chromium loads it (``tests/browser.py``; without Chromium the browser tests skip,
except under CI, where they fail)."""

from __future__ import annotations

import base64
import io
import itertools
import re

import numpy as np
import pytest
import torch
from PIL import Image, ImageStat

from tests import browser
from tests.browser import dump_dom, parse_html, render_in_chromium
from tests.conftest import CONF
from vrexp.checklist import Checklist
from vrexp.reports.score_report import (
    ReportItem,
    render_score_report,
    report_items,
    total_histogram,
    write_score_report,
)

DIMS = ["Alignment", 'Q<u>ality & "co"', "Fidelity"]
SCRIPT_PROMPT = "a cat <script>alert(1)</script> & \"dogs\" 'quoted'"
BOLD_NAME = "<b>bold</b>&amp;.png"
TITLE = 'Run <i>7</i> & "friends"'


def picture(seed: int, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """A gradient with a coloured square: not blank, different per seed."""
    h, w = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    image = np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 40 * seed % 255)], -1)
    top, left = rng.integers(0, h // 2), rng.integers(0, w // 2)
    image[top : top + h // 3, left : left + w // 3] = rng.integers(0, 255, 3)
    return image.astype(np.uint8)


def make_item(item_id: int, name: str, prompt: str, seed: int, frames: int = 0) -> ReportItem:
    """An item whose contributions add up to its sub-scores and total, as a real scorer's do;
    the last Fidelity question is a presence (masked) question."""
    rng = np.random.default_rng(seed)
    questions, dimensions = [], {}
    for d, dim in enumerate(DIMS):
        contributions = rng.uniform(-0.6, 0.8, 2)
        dimensions[dim] = float(contributions.sum())
        for k, c in enumerate(contributions):
            questions.append(
                {
                    "id": 10 * d + k,
                    "dimension": dim,
                    "question": f'Does the image show "{prompt}"? ({k})',
                    "p_yes": float(rng.uniform(0, 1)),
                    "contribution": float(c),
                }
            )
    questions.append(
        {
            "id": 99,
            "dimension": "Fidelity",
            "question": "Is there a face?",
            "p_yes": 0.125,
            "contribution": None,
        }
    )
    return ReportItem(
        item_id=item_id,
        name=name,
        prompt=prompt,
        total=sum(dimensions.values()),
        dimensions=dimensions,
        questions=questions,
        poster=picture(seed),
        strip=tuple(picture(seed + 100 + k, (48, 64)) for k in range(frames)),
    )


@pytest.fixture(scope="module")
def items() -> list[ReportItem]:
    return [
        make_item(3, "plain.png", "a red circle", seed=1),
        make_item(7, BOLD_NAME, SCRIPT_PROMPT, seed=2),
        make_item(1, "blue & green.jpg", "two 'blue' squares & a \"sky\"", seed=3),
        make_item(12, "clip.mp4", "a bouncing ball", seed=4, frames=4),
        make_item(5, "dark.png", "night <city>", seed=5),
    ]


def render(items, **kwargs) -> str:
    kwargs = {"dimension_names": DIMS, "title": TITLE, **kwargs}
    return render_score_report(items, **kwargs)


def shown_items(root: browser.Element) -> list[browser.Element]:
    return root.find_all("article", cls="item")


def by_total(items) -> list[int]:
    return [it.item_id for it in sorted(items, key=lambda it: (-it.total, it.item_id))]


# --------------------------------------------------------------------------- pure Python
def test_an_empty_report_is_an_error():
    with pytest.raises(ValueError, match="at least one item"):
        render([])


def test_every_user_string_is_escaped_in_text_and_attributes(items):
    html = render(items, notes=["note <em>1</em> & 'x'"])
    assert html.count("<script") == 1  # the sorter only
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>" not in html and "<i>" not in html and "<em>" not in html and "<u>" not in html
    assert 'alt="&lt;b&gt;bold&lt;/b&gt;&amp;amp;.png"' in html  # an attribute, quotes included
    assert "<title>Run &lt;i&gt;7&lt;/i&gt; &amp; &quot;friends&quot;</title>" in html
    assert '<option value="dim-1">Q&lt;u&gt;ality &amp; &quot;co&quot;</option>' in html
    assert "note &lt;em&gt;1&lt;/em&gt; &amp; &#x27;x&#x27;" in html
    # Parsed back, every string is the original text again.
    root = parse_html(html)
    item = root.find("article", data_item_id="7")
    assert item.find(cls="prompt").text() == SCRIPT_PROMPT
    assert item.find(cls="name").text() == BOLD_NAME
    assert item.find("img", cls="poster").attrs["alt"] == BOLD_NAME
    first_question = item.find("tr", cls="question", data_question_id="0")
    assert first_question.find(cls="text").text() == f'Does the image show "{SCRIPT_PROMPT}"? (0)'
    assert root.find("head").find("title").text() == TITLE


def test_the_page_needs_no_network_and_allows_only_its_own_script(items):
    html = render(items)
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html), "an external reference"
    assert "http://" not in html and "https://" not in html and "@import" not in html
    policy = parse_html(html).find("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]


def test_histogram_bins_are_numpys_with_sturges_count(items):
    for n, bins in [(1, 1), (2, 2), (5, 4), (8, 4), (9, 5), (1000, 11)]:
        totals = np.random.default_rng(n).normal(size=n)
        counts, edges = total_histogram(totals)
        assert len(counts) == bins and counts.sum() == n
        expected_counts, expected_edges = np.histogram(totals, bins=bins)
        np.testing.assert_array_equal(counts, expected_counts)
        np.testing.assert_array_equal(edges, expected_edges)
    # The SVG carries the same bins.
    root = parse_html(render(items))
    counts, edges = total_histogram([it.total for it in items])
    rects = root.find("svg", id="histogram").find_all("rect", cls="bin")
    assert [int(r.attrs["data-count"]) for r in rects] == counts.tolist()
    assert [float(r.attrs["data-low"]) for r in rects] == edges[:-1].tolist()
    assert [float(r.attrs["data-high"]) for r in rects] == edges[1:].tolist()
    # Counted by hand: bins are [low, high), the last one closed, spanning min to max.
    totals = sorted(it.total for it in items)
    assert (edges[0], edges[-1]) == (totals[0], totals[-1])
    bounds = list(itertools.pairwise(edges.tolist()))
    by_hand = [sum(lo <= t < hi for t in totals) for lo, hi in bounds[:-1]]
    by_hand.append(sum(bounds[-1][0] <= t <= bounds[-1][1] for t in totals))
    assert counts.tolist() == by_hand and len(counts) == 4
    assert root.find(id="summary").attrs["data-count"] == "5"


def test_summary_lists_best_and_worst_and_the_dimension_means(items):
    root = parse_html(render(items))
    order = by_total(items)
    best = [li.attrs["data-item-id"] for li in root.find("ol", id="best").find_all("li")]
    worst = [li.attrs["data-item-id"] for li in root.find("ol", id="worst").find_all("li")]
    assert best == [str(i) for i in order[:3]]
    assert worst == [str(i) for i in order[::-1][:3]]
    links = [a.attrs["href"] for a in root.find("ol", id="best").find_all("a")]
    assert links == [f"#item-{i}" for i in order[:3]]
    for d, dim in enumerate(DIMS):
        row = root.find("tr", cls="dim-mean", data_dim_index=str(d))
        mean = float(np.mean([it.dimensions[dim] for it in items]))
        assert float(row.attrs["data-mean"]) == pytest.approx(mean, abs=1e-15)
        assert row.find("td", cls="num").text() == f"{mean:+.3f}"


def test_a_zeroed_contribution_reads_as_plus_zero_not_minus_zero(items):
    """A dependant of an absent presence question contributes weight x 0, which can be -0.0."""
    item = items[0]
    questions = [{**item.questions[0], "contribution": -0.0}, *item.questions[1:]]
    root = parse_html(render([ReportItem(**{**item.__dict__, "questions": questions})]))
    row = root.find("tr", cls="question", data_question_id="0")
    assert row.find(cls="contribution").text() == "+0.000"
    assert float(row.attrs["data-contribution"]) == 0.0


def test_ties_are_broken_by_item_id(items):
    tied = [make_item(i, f"{i}.png", "p", seed=1) for i in (9, 2, 4)]
    root = parse_html(render(tied))
    assert [e.attrs["data-item-id"] for e in shown_items(root)] == ["2", "4", "9"]


def test_thumbnails_are_jpeg_sized_to_the_long_side(items):
    big = make_item(40, "big.png", "p", seed=6)
    big = ReportItem(**{**big.__dict__, "poster": picture(6, (300, 600))})
    root = parse_html(render([big, items[3]], thumbnail_size=200))

    def decoded(img: browser.Element) -> Image.Image:
        data = img.attrs["src"].removeprefix("data:image/jpeg;base64,")
        return Image.open(io.BytesIO(base64.b64decode(data)))

    poster = root.find("article", data_item_id="40").find("img", cls="poster")
    assert (poster.attrs["width"], poster.attrs["height"]) == ("200", "100")
    assert decoded(poster).format == "JPEG" and decoded(poster).size == (200, 100)
    # A small poster is shown at the size but not upscaled in bytes; strip frames are smaller.
    video = root.find("article", data_item_id="12")
    small = video.find("img", cls="poster")
    assert (small.attrs["width"], small.attrs["height"]) == ("200", "150")
    assert decoded(small).size == (128, 96)
    frames = video.find_all("img", cls="frame")
    assert len(frames) == 4 and video.attrs["data-frames"] == "4"
    # four frames a row, 4 px apart, as wide as the poster box
    assert {f.attrs["width"] for f in frames} == {"47"} and 4 * 47 + 3 * 4 <= 200
    assert frames[1].attrs["alt"] == "clip.mp4, frame 2 of 4"


def test_bad_items_are_refused_with_the_item_named(items):
    good = items[0]
    with pytest.raises(ValueError, match="item 3 has sub-scores for"):
        render([good], dimension_names=DIMS[:2])
    with pytest.raises(ValueError, match="item id 3 appears twice"):
        render([good, good])
    with pytest.raises(ValueError, match=r"report item 8: total is nan"):
        ReportItem(**{**good.__dict__, "item_id": 8, "total": float("nan")})
    with pytest.raises(ValueError, match=r"poster must have shape \[H, W, 3\], got \[4, 4\]"):
        ReportItem(**{**good.__dict__, "poster": np.zeros((4, 4), np.uint8)})
    with pytest.raises(TypeError, match="uint8"):
        ReportItem(**{**good.__dict__, "poster": np.zeros((4, 4, 3), np.float32)})
    bad_q = [{**good.questions[0], "p_yes": 1.5}]
    with pytest.raises(ValueError, match=r"P\(yes\) of question 0 is 1.5"):
        ReportItem(**{**good.__dict__, "questions": bad_q})


def test_write_is_atomic_and_deterministic(items, tmp_path, caplog):
    caplog.set_level("INFO", logger="vrexp.reports.score_report")
    path = write_score_report(
        tmp_path / "out" / "report.html", items, dimension_names=DIMS, title="t"
    )
    assert path == tmp_path / "out" / "report.html"
    assert path.read_text(encoding="utf-8") == render(items, title="t")
    assert list(path.parent.iterdir()) == [path]  # no temporary file left
    assert "5 items" in caplog.text


def test_report_items_from_reward_scores_fill_the_prompt_and_mask_presence():
    # Imported here: vrexp.reward loads transformers (seconds), which the other tests never need.
    from vrexp.reward.linear import LinearReward
    from vrexp.reward.scorer import RewardScores

    checklist = Checklist.from_yaml(CONF / "dimensions" / "synthworld_image.yaml")
    reward = LinearReward(checklist, np.linspace(0.1, 1.0, len(checklist.questions) - 1))
    p_yes = torch.from_numpy(np.random.default_rng(0).uniform(size=(2, len(checklist.questions))))
    scores = RewardScores(
        total=reward.score(p_yes),
        dimensions=reward.dimension_scores(p_yes),
        p_yes=p_yes,
        contributions=reward.contributions(p_yes),
        dimension_names=checklist.dimension_names,
        questions=checklist.questions,
        feature_questions=reward.feature_questions,
    )
    prompts = ["one red circle", 'two "blue" squares']
    built = report_items(
        scores, names=["a.png", "b.png"], prompts=prompts, posters=[picture(1), picture(2)]
    )
    assert [it.item_id for it in built] == [0, 1]
    assert built[1].total == float(scores.total[1])
    assert built[1].questions[0]["question"] == "Does the image fully show \"two 'blue' squares\"?"
    presence = [q for q in built[0].questions if q["contribution"] is None]
    assert [q["question"] for q in presence] == ["Is there a face in the image?"]
    html = render_score_report(built, dimension_names=checklist.dimension_names, title="x")
    assert "Safety &amp; Emotion" in html
    with pytest.raises(ValueError, match="as many names"):
        report_items(scores, names=["a.png"], prompts=prompts, posters=[picture(1)] * 2)


def test_without_a_browser_the_test_skips_with_the_install_command_but_fails_in_ci(monkeypatch):
    monkeypatch.setattr(browser, "find_browser", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install -y chromium"):
        browser.require_browser()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        browser.require_browser()
    for value in ("1", "true"):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.fail.Exception, match="CI must run the browser tests"):
            browser.require_browser()


# --------------------------------------------------------------------------- in Chromium
@pytest.fixture(scope="module")
def report_file(items, tmp_path_factory):
    return write_score_report(
        tmp_path_factory.mktemp("report") / "report.html",
        items,
        dimension_names=DIMS,
        title=TITLE,
        notes=["checklist: test <3"],
    )


@pytest.fixture(scope="module")
def chromium_render(report_file):
    browser.require_browser()
    dom, shot = render_in_chromium(report_file)
    return parse_html(dom), dom, shot


def test_chromium_shows_every_item_with_its_numbers(items, chromium_render):
    root, _, _ = chromium_render
    shown = shown_items(root)
    assert [int(e.attrs["data-item-id"]) for e in shown] == by_total(items)  # best first
    assert root.find(id="items").attrs["data-sort-key"] == "total"
    for item in items:
        element = root.find("article", cls="item", data_item_id=str(item.item_id))
        assert float(element.attrs["data-total"]) == item.total
        assert float(element.find(cls="total").text()) == pytest.approx(item.total, abs=5e-4)
        assert element.find(cls="total").text() == f"{item.total:+.3f}"
        assert element.find(cls="name").text() == item.name
        assert element.find(cls="prompt").text() == item.prompt
        assert element.find("img", cls="poster").attrs["alt"] == item.name
        assert element.attrs["data-media"] == ("video" if item.strip else "image")
        for d, dim in enumerate(DIMS):
            assert float(element.attrs[f"data-dim-{d}"]) == item.dimensions[dim]
            row = element.find("tr", cls="dim", data_dim_index=str(d))
            assert row.find(cls="dim-value").text() == f"{item.dimensions[dim]:+.3f}"
        details = element.find("details", cls="questions")
        assert "open" not in details.attrs  # collapsed by default
        rows = details.find_all("tr", cls="question")
        assert len(rows) == len(item.questions)
        for q in item.questions:
            row = details.find("tr", cls="question", data_question_id=str(q["id"]))
            assert float(row.attrs["data-p-yes"]) == q["p_yes"]
            assert row.find(cls="p-yes").text() == f"{q['p_yes']:.2f}"
            if q["contribution"] is None:
                assert row.attrs["data-contribution"] == ""
                assert row.find(cls="contribution").text() == "mask"
            else:
                assert float(row.attrs["data-contribution"]) == q["contribution"]
                assert row.find(cls="contribution").text() == f"{q['contribution']:+.3f}"
        # grouped by dimension, in the report's dimension order
        groups = details.find_all("tbody", cls="dimension-group")
        assert [g.attrs["data-dim-index"] for g in groups] == ["0", "1", "2"]
        assert [r.attrs["data-question-id"] for r in groups[2].find_all("tr", cls="question")] == [
            "20",
            "21",
            "99",
        ]


def test_chromium_shows_the_script_prompt_as_text_and_runs_no_injected_script(chromium_render):
    root, dom, _ = chromium_render
    assert len(root.find_all("script")) == 1
    assert not root.find_all("b") and not root.find_all("i") and not root.find_all("u")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    item = root.find("article", data_item_id="7")
    assert item.find(cls="prompt").text() == SCRIPT_PROMPT
    assert root.find("h1").text() == TITLE


def test_chromium_screenshot_is_a_window_sized_picture(chromium_render):
    _, _, shot = chromium_render
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == browser.WINDOW_SIZE
        assert ImageStat.Stat(image.convert("L")).var[0] > 200  # not a blank page


def test_the_url_fragment_sorts_by_a_dimension_ascending(items, report_file):
    browser.require_browser()
    root = parse_html(dump_dom(report_file, fragment="sort=dim-1&dir=asc"))
    expected = sorted(items, key=lambda it: (it.dimensions[DIMS[1]], it.item_id))
    assert [int(e.attrs["data-item-id"]) for e in shown_items(root)] == [
        it.item_id for it in expected
    ]
    assert expected != sorted(items, key=lambda it: -it.total)  # the test can tell them apart
    listing = root.find(id="items")
    assert (listing.attrs["data-sort-key"], listing.attrs["data-sort-dir"]) == ("dim-1", "asc")


def test_the_policy_blocks_a_script_that_escaping_would_have_missed(items, tmp_path):
    """Defence in depth: were a string ever left unescaped, its script still would not run."""
    browser.require_browser()
    html = render(items).replace("<main ", '<script>document.title = "pwned";</script><main ', 1)
    path = tmp_path / "injected.html"
    path.write_text(html, encoding="utf-8")
    root = parse_html(dump_dom(path, query="sort=total&dir=asc"))
    assert root.find("head").find("title").text() == TITLE
    # while the report's own script ran: the query (read when there is no fragment) reversed
    # the order
    assert [int(e.attrs["data-item-id"]) for e in shown_items(root)] == by_total(items)[::-1]
