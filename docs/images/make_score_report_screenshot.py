"""Regenerate ``docs/images/score_report.png``: the score report of six SynthWorld videos, as
headless Chromium shows it (``docs/report.md``).

    PYTHONPATH=. python docs/images/make_score_report_screenshot.py [--html OUT.html]

The videos are real SynthWorld renders; their P(yes) are the pixel oracle's answers, softened
with a little noise as a trained checklist model's would be, and a fixed set of non-negative
weights scores them, through the same ``LinearReward`` and ``RewardScores`` a scoring run uses.
Needs Chromium (``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vrexp import resources
from vrexp.checklist import Checklist
from vrexp.data.synthworld import measure, render, sample_plan
from vrexp.data.synthworld.split import checklist_levels
from vrexp.reports.score_report import report_items, write_score_report
from vrexp.reward.linear import LinearReward
from vrexp.reward.scorer import RewardScores

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "images" / "score_report.png"
MAX_BYTES = 400 * 1024
log = logging.getLogger("make_score_report_screenshot")


def scored_videos(num: int = 6, seed: int = 7):
    """ReportItems of ``num`` SynthWorld videos and the checklist's dimension names."""
    checklist = Checklist.from_yaml(resources.dimensions_dir() / "synthworld_video.yaml")
    rng = np.random.default_rng(seed)
    plans = [sample_plan(rng, "video", face_rate=0.5, concentration=0.6) for _ in range(num)]
    videos = [render(plan, size=192, num_frames=8, seed=seed + i) for i, plan in enumerate(plans)]
    levels = checklist_levels(
        checklist, [measure(v, p.prompt) for v, p in zip(videos, plans, strict=True)]
    )
    hard = checklist.answers_from_levels(levels)
    p_yes = np.clip(0.1 + 0.8 * hard + rng.normal(0.0, 0.06, hard.shape), 0.01, 0.99)
    p_yes = torch.from_numpy(p_yes)
    features = [q for q in checklist.questions if q.kind != "presence"]
    reward = LinearReward(checklist, rng.uniform(0.05, 0.6, len(features)))
    scores = RewardScores(
        total=reward.score(p_yes),
        dimensions=reward.dimension_scores(p_yes),
        p_yes=p_yes,
        contributions=reward.contributions(p_yes),
        dimension_names=checklist.dimension_names,
        questions=checklist.questions,
        feature_questions=reward.feature_questions,
    )
    items = report_items(
        scores,
        names=[f"synthworld_video_{i:04d}.mp4" for i in range(num)],
        prompts=[p.prompt for p in plans],
        posters=[v[0] for v in videos],
        strips=[tuple(v) for v in videos],
    )
    return items, checklist.dimension_names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, help="also keep the report's HTML here")
    parser.add_argument("--out", type=Path, default=OUT, help=f"the PNG (default {OUT})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    sys.path.insert(0, str(ROOT))  # tests.browser, when run as a script
    from tests.browser import render_in_chromium

    items, names = scored_videos()
    with tempfile.TemporaryDirectory() as tmp:
        html = write_score_report(
            args.html or Path(tmp) / "score_report.html",
            items,
            dimension_names=names,
            title="Scores: synthworld_video, 6 videos",
            notes=[
                "checklist synthworld_video; P(yes) from the SynthWorld oracle with noise; "
                "illustrative weights",
            ],
        )
        _, shot = render_in_chromium(html, screenshot_path=Path(tmp) / "shot.png")
        image = Image.open(shot).convert("RGB")
        image.load()
    # A page is mostly flat colour: 256 colours keep it sharp at a fraction of the bytes.
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    size = args.out.stat().st_size
    log.info("wrote %s (%d x %d, %.0f KiB)", args.out, *image.size, size / 1024)
    if size > MAX_BYTES:
        log.error("%s is over %d KiB: keep docs images small", args.out, MAX_BYTES // 1024)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
