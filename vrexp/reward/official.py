"""The released VisionReward weights and question lists, scored exactly as the released code.

The official files (Apache-2.0 data: question lists, weights, checklists) ship with vrexp under
``conf/official/visionreward/``; the matching checklists are ``conf/dimensions/visionreward_*``.
How they are scored (arXiv 2412.21059, §4, and the released inference code):

- answers are encoded ±1 and multiplied by their weight; a question masked by a "no" to its
  presence question contributes 0;
- images: the alignment feature (a VQAScore probability, not re-encoded) comes first in the
  weight vector; the score is the sum;
- video: the score is the mean of answer * weight, without masks.
"""

from __future__ import annotations

import json
from pathlib import Path

from vrexp import resources
from vrexp.checklist import Checklist
from vrexp.reward.linear import LinearReward, RewardError, _structure_masks

# The released image code's MASK_FEATURE_MAP (inference-image.py), in indices into the 30-line
# image_questions_select.txt: body (0) gates 22, 23, 24, 28, 29; face (1) gates 25, 26; hands (2)
# gates 27. It is translated to question ids through that file, so the ids are not hand-copied here.
OFFICIAL_SELECT_MASK_INDICES: dict[int, tuple[int, ...]] = {
    0: (22, 23, 24, 28, 29),
    1: (25, 26),
    2: (27,),
}

# file names per official reward: (checklist YAML, questions txt, weights json)
OFFICIAL_FILES: dict[str, tuple[str, str, str]] = {
    "image": ("visionreward_image", "image_questions.txt", "image_weight.json"),
    "image_select": (
        "visionreward_image_select",
        "image_questions_select.txt",
        "image_weight_select.json",
    ),
    "video_select": (
        "visionreward_video_select",
        "video_questions_select.txt",
        "video_weight.json",
    ),
}


def official_reward(
    name: str,
    *,
    checklist: Checklist | None = None,
    official_dir: str | Path | None = None,
) -> LinearReward:
    """The released VisionReward weights, scoring exactly as the released code.

    - ``"image_select"``: ±1 answers of the 27 weighted select questions plus the raw alignment
      (VQAScore) value, masks by the released ``MASK_FEATURE_MAP`` (body gates 44, 46, 47, 58,
      59; face gates 50, 51; hands gate 52), score = features · coef.
    - ``"image"``: the 55 = 1 + 54 weights of ``image_weight.json`` over the full 59-question
      list, masks from the checklist structure (1, 2, 3, 16, 27) plus the released code's body
      gating of safety 58 and 59 (so it scores like ``image_select``: the extra weights are 0).
    - ``"video_select"``: ``mean(±1 answer * weight)`` over the 29 select questions, no masks.

    The weights are matched to the checklist's questions by text through the official question
    files, so the official order (alignment first for images) need not equal our flat order.
    ``checklist`` defaults to ``conf/dimensions/visionreward_<name>.yaml``.
    """
    if name not in OFFICIAL_FILES:
        raise RewardError(f"unknown official reward {name!r}; choose from {list(OFFICIAL_FILES)}")
    yaml_name, questions_file, weights_file = OFFICIAL_FILES[name]
    folder = Path(official_dir) if official_dir is not None else resources.official_dir()
    if checklist is None:
        checklist = Checklist.from_yaml(resources.dimensions_dir() / f"{yaml_name}.yaml")
    lines = [line.rstrip() for line in (folder / questions_file).read_text().splitlines()]
    raw = json.loads((folder / weights_file).read_text())
    coef = [float(v) for v in (raw["coef"] if isinstance(raw, dict) else raw)]

    by_text = {q.text: q for q in checklist.vlm_questions}
    missing = [t for t in lines if t not in by_text]
    if missing or len(lines) != len(by_text):
        raise RewardError(
            f"checklist {checklist.name!r} does not hold exactly the questions of "
            f"{questions_file}; first missing: {missing[:1]}"
        )
    ordered = [by_text[t] for t in lines]  # official order
    weighted = [q for q in ordered if q.kind != "presence"]
    external = [q for q in checklist.questions if q.external]
    # Images: coef = [alignment] + weighted questions in official order; video: no alignment.
    official_features = external + weighted
    if len(coef) != len(official_features):
        raise RewardError(
            f"{weights_file} has {len(coef)} weights, {questions_file} and checklist "
            f"{checklist.name!r} give {len(official_features)} features"
        )
    by_id = {q.id: w for q, w in zip(official_features, coef, strict=True)}
    features = [q for q in checklist.questions if q.kind != "presence"]
    weights = [by_id[q.id] for q in features]

    if name == "image_select":
        masks: dict[int, list[int]] = {
            ordered[g].id: [ordered[d].id for d in deps]
            for g, deps in OFFICIAL_SELECT_MASK_INDICES.items()
        }
        return LinearReward(checklist, weights, encoding="pm1", reduction="sum", masks=masks)
    if name == "image":
        masks = {g: list(d) for g, d in _structure_masks(checklist).items()}
        select = official_reward("image_select", official_dir=folder)
        for gate, deps in select.masks.items():  # add the code-only gating (body -> safety)
            masks[gate] = sorted(set(masks.get(gate, [])) | set(deps))
        return LinearReward(checklist, weights, encoding="pm1", reduction="sum", masks=masks)
    return LinearReward(checklist, weights, encoding="pm1", reduction="mean", masks={})
