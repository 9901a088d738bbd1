"""Checklist answering speed, measured side by side in one process on the default tiny backbone.

    python benchmarks/checklist_answering.py [--image-size 224] [--repeats 3] [--dataset D]
    python benchmarks/checklist_answering.py --smoke   # seconds: tiny sizes, 4 questions

1. The official release's way (one ``generate`` call per question, the media re-encoded each time,
   the answer string-matched) against ours (one prefix forward + all questions as cached suffixes),
   for the 59-question image and the 64-question video VisionReward checklists.
2. Our whole checklist against one single forward of (media, prompt, one question).
3. Packed training (one media forward serves all questions of an item) against unpacked training
   (one full sequence per (media, question) sample), in question-samples per second.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

import vrexp.configs  # noqa: F401
from vrexp.backbones import ChecklistBackbone, build_backbone
from vrexp.checklist import Checklist

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "two red circles on a sky background"


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def official_style(
    backbone: ChecklistBackbone, media: np.ndarray, questions: list[str]
) -> list[int]:
    """One generate call per question with the media re-encoded, then a string match."""
    answers = []
    for question in questions:
        inputs = backbone.full_inputs(media, question)
        out = backbone.model.generate(
            **inputs,
            max_new_tokens=2,
            do_sample=False,
            pad_token_id=backbone.tokenizer.pad_token_id,
        )
        text = backbone.tokenizer.decode(
            out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
        )
        answers.append(1 if text.strip().startswith("yes") else -1)
    return answers


def train_step(
    backbone: ChecklistBackbone, optimizer: torch.optim.Optimizer, loss: torch.Tensor
) -> None:
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument(
        "--frames", type=int, default=None, help="video frames (default: the backbone's)"
    )
    parser.add_argument(
        "--dataset",
        default="synthworld_image",
        help="dataset whose media picks the tiny recipe (synthworld_video: 8 frames per vision token)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-items", type=int, default=4)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a run of seconds that only checks the benchmark works: 56 px, 2 frames, 1 repeat, "
        "1 training item, the first 4 questions of each checklist",
    )
    args = parser.parse_args()
    max_questions = None
    if args.smoke:
        args.image_size, args.frames, args.repeats, args.train_items = 56, 2, 1, 1
        max_questions = 4
    torch.manual_seed(0)
    overrides = [
        f"backbone.image_size={args.image_size}",
        f"dataset={args.dataset}",
        "paths.output_dir=x",
    ]
    if args.frames:
        overrides.append(f"backbone.frames.num_frames={args.frames}")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    backbone = build_backbone(OmegaConf.to_object(cfg.backbone)).eval()
    rng = np.random.default_rng(0)
    frames = backbone.config.frames.num_frames
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    video = rng.integers(0, 256, (frames, 64, 64, 3), dtype=np.uint8)
    console = Console()
    table = Table(
        title=f"Checklist answering, {cfg.backbone.name} at {args.image_size} px ({frames} video frames), CPU threads={torch.get_num_threads()}"
    )
    for column in ("measurement", "naive", "ours", "ratio", "target"):
        table.add_column(column, justify="left" if column == "measurement" else "right")

    for name, media in (("visionreward_image", image), ("visionreward_video", video)):
        checklist = Checklist.from_yaml(ROOT / "conf" / "dimensions" / f"{name}.yaml")
        questions = [q.render(PROMPT) for q in checklist.vlm_questions][:max_questions]
        with torch.inference_mode():
            naive = best_of(1, lambda m=media, q=questions: official_style(backbone, m, q))
            ours = best_of(
                args.repeats, lambda m=media, q=questions: backbone.answer_logits([m], q)
            )
            single = best_of(
                args.repeats, lambda m=media, q=questions: backbone.full_log_odds(m, q[0])
            )
        n = len(questions)
        table.add_row(
            f"{name} ({n} q): official-style generate vs ours, s/item",
            f"{naive:.3f}",
            f"{ours:.3f}",
            f"{naive / ours:.1f}x faster",
            ">= 25x",
        )
        table.add_row(
            f"{name}: whole checklist vs one single forward, s/item",
            f"{single:.3f}",
            f"{ours:.3f}",
            f"{ours / single:.2f}x the cost",
            "<= 2x",
        )

    # Training throughput on the video checklist's image twin: B items x Q questions.
    checklist = Checklist.from_yaml(ROOT / "conf" / "dimensions" / "visionreward_image.yaml")
    questions = [q.render(PROMPT) for q in checklist.vlm_questions][:max_questions]
    items = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(args.train_items)]
    labels = torch.randint(0, 2, (len(items) * len(questions),)).float()
    backbone.train()
    optimizer = torch.optim.AdamW(backbone.parameters(), lr=1e-5)

    def packed() -> None:
        prefix = backbone.encode_prefix(items)
        item = torch.arange(len(items)).repeat_interleave(len(questions))
        logits = backbone.suffix_logits(
            prefix, item, [backbone.question_text(q) for q in questions] * len(items)
        )
        train_step(backbone, optimizer, F.binary_cross_entropy_with_logits(logits, labels))

    def unpacked() -> None:  # the same number of items, one (media, question) sequence each
        logits = torch.stack(
            [backbone.full_log_odds(m, questions[i % len(questions)]) for i, m in enumerate(items)]
        )
        train_step(
            backbone, optimizer, F.binary_cross_entropy_with_logits(logits, labels[: len(items)])
        )

    packed_rate = len(labels) / best_of(args.repeats, packed)
    unpacked_rate = len(items) / best_of(args.repeats, unpacked)
    table.add_row(
        f"training, question-samples/s ({args.train_items} items x {len(questions)} q per packed step)",
        f"{unpacked_rate:.1f}",
        f"{packed_rate:.1f}",
        f"{packed_rate / unpacked_rate:.1f}x",
        ">= 5x",
    )
    console.print(table)


if __name__ == "__main__":
    main()
