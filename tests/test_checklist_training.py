"""Checklist SFT data, the per-question metric, ChecklistModule, and the train/annotate stages."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from tests.conftest import compose_config, run_cli
from vrexp.backbones import build_backbone, load_backbone
from vrexp.checklist import Checklist, ChecklistError
from vrexp.configs import BackboneOptimSettings, PartitionConfig
from vrexp.data.annotations import read_annotations
from vrexp.data.checklist_data import (
    ChecklistDataModule,
    ColourQuestions,
    PackedChecklistDataset,
    balanced_selection,
    load_examples,
    split_by_prompt,
)
from vrexp.data.items import ItemsError, folder_items
from vrexp.data.synthworld import make_split, measure
from vrexp.data.synthworld.grammar import OBJECT_COLORS
from vrexp.media import save_media
from vrexp.metrics import PerQuestionAccuracy
from vrexp.modules import ChecklistModule
from vrexp.tasks.annotate import AnnotateError, annotate_items


@pytest.fixture(scope="module")
def small_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("split")
    cfg = compose_config(
        root, "dataset.num_prompts=30", "dataset.renders_per_prompt=2", "dataset.chunk_size=8"
    )
    checklist = Checklist.from_config(cfg.dimensions)
    dataset = OmegaConf.to_object(cfg.dataset)
    make_split(dataset, checklist)
    backbone = build_backbone(OmegaConf.to_object(cfg.backbone))
    return dataset.out_dir, checklist, backbone


@settings(max_examples=50, deadline=None)
@given(
    labels=st.lists(st.lists(st.integers(0, 1), min_size=3, max_size=3), min_size=1, max_size=40),
    seed=st.integers(0, 1000),
)
def test_balanced_selection_takes_equal_yes_and_no_per_question(labels, seed):
    labels = np.array(labels)
    applicable = np.random.default_rng(seed).random(labels.shape) > 0.2
    chosen = balanced_selection(labels, applicable, np.random.default_rng(seed))
    assert not (chosen & ~applicable).any()
    for q in range(labels.shape[1]):
        yes = (chosen[:, q] & (labels[:, q] == 1)).sum()
        no = (chosen[:, q] & (labels[:, q] == 0)).sum()
        has_yes = (applicable[:, q] & (labels[:, q] == 1)).sum()
        has_no = (applicable[:, q] & (labels[:, q] == 0)).sum()
        if has_yes and has_no:
            assert yes == no == min(has_yes, has_no)
        else:  # a question with one class only keeps what it has
            assert yes + no == has_yes + has_no


def test_split_by_prompt_keeps_prompts_together():
    prompts = [f"p{i // 2}" for i in range(40)]
    parts = split_by_prompt(prompts, PartitionConfig(val_fraction=0.2, test_fraction=0.2))
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(40))
    seen = {part: {prompts[i] for i in rows} for part, rows in parts.items()}
    assert not (seen["train"] & seen["val"]) and not (seen["train"] & seen["test"])
    assert len(seen["val"]) == len(seen["test"]) == 4


def test_per_question_accuracy_counts_and_groups():
    metric = PerQuestionAccuracy(3)
    metric.update(
        torch.tensor([0.9, 0.2, 0.6, 0.4]),
        torch.tensor([1.0, 0.0, 0.0, 1.0]),
        torch.tensor([0, 0, 1, 1]),
    )
    metric.update(torch.tensor([0.7]), torch.tensor([1.0]), torch.tensor([1]))
    acc = metric.compute()
    assert acc[0] == 1.0 and acc[1] == pytest.approx(1 / 3) and torch.isnan(acc[2])
    per_dim = metric.per_group(torch.tensor([0, 0, 1]), 2)
    assert per_dim[0] == pytest.approx((1 + 1 / 3) / 2) and torch.isnan(per_dim[1])


def test_per_question_accuracy_takes_inputs_from_any_device_and_dtype():
    """Validation hands GPU predictions and labels to a metric whose states may live elsewhere;
    the metric moves them to its own device. A metric on the meta device stands in for a GPU
    here: before, index_add_ refused (self) meta with (source) cpu."""
    p_yes, target = torch.tensor([0.9, 0.2, 0.6, 0.4]), torch.tensor([1.0, 0.0, 0.0, 1.0])
    question = torch.tensor([0, 0, 1, 1])
    reference = PerQuestionAccuracy(3)
    reference.update(p_yes, target, question)
    # Other dtypes: bf16 predictions, bool labels, int32 question indices.
    mixed = PerQuestionAccuracy(3)
    mixed.update(p_yes.bfloat16(), target.bool(), question.int())
    torch.testing.assert_close(mixed.compute(), reference.compute(), equal_nan=True)
    groups = torch.tensor([0, 0, 1], dtype=torch.int32)
    torch.testing.assert_close(
        mixed.per_group(groups, 2), reference.per_group(groups.long(), 2), equal_nan=True
    )
    # A metric on another device than its inputs.
    elsewhere = PerQuestionAccuracy(3).to("meta")
    elsewhere.update(p_yes, target, question)
    assert elsewhere.correct.device.type == "meta" and elsewhere.compute().shape == (3,)


def test_packed_batches_carry_all_questions_of_an_item(small_split):
    split_dir, checklist, backbone = small_split
    frames = backbone.config.frames
    data = ChecklistDataModule(
        split_dir, checklist, partition=PartitionConfig(), frames=frames, batch_size=4
    )
    data.setup()
    examples = load_examples(split_dir, checklist, frames)
    assert examples.labels.shape == (60, len(checklist.questions))
    batch = next(iter(data.val_dataloader()))
    assert len(batch["media"]) == 4
    assert batch["item"].tolist() == sorted(batch["item"].tolist())
    assert (
        len(batch["labels"])
        == len(batch["question_index"])
        == sum(len(q) for q in batch["questions"])
    )
    # validation answers every applicable question
    rows = batch["rows"].tolist()
    assert len(batch["labels"]) == int(data.parts["val"].applicable[rows].sum())
    assert any("[[prompt]]" not in q and "show" in q for qs in batch["questions"] for q in qs)


def test_items_are_processed_once_and_answer_as_if_processed_in_the_batch(small_split):
    split_dir, checklist, backbone = small_split
    calls = []

    def processor(media):
        calls.append(len(media))
        return backbone.process(media)

    data = ChecklistDataModule(
        split_dir,
        checklist,
        partition=PartitionConfig(),
        frames=backbone.config.frames,
        batch_size=4,
        processor=processor,
    )
    data.setup()
    loader = data.val_dataloader()
    first = next(iter(loader))
    again = next(iter(loader))  # the next epoch: nothing is processed twice
    assert calls == [1, 1, 1, 1]
    assert set(first["processed"]) >= {"input_ids", "pixel_values"}
    whole = backbone.process(first["media"])
    assert whole.keys() == first["processed"].keys()
    for key, value in whole.items():
        assert torch.equal(first["processed"][key], value), key
        assert torch.equal(again["processed"][key], value), key
    module = ChecklistModule(backbone, checklist, BackboneOptimSettings()).eval()
    without = {k: v for k, v in first.items() if k != "processed"}
    with torch.inference_mode():
        torch.testing.assert_close(module(first), module(without), rtol=0, atol=0)


def test_loss_weights_take_the_sub_dimension_first_then_the_dimension(small_split):
    _, checklist, _ = small_split
    sub = checklist.sub_dimensions[0]
    other = next(d for d in checklist.dimensions if d.name != sub.dimension)
    weights = checklist.question_weights({sub.dimension: 3.0, sub.name: 0.5, other.name: 0.0})
    for question, weight in zip(checklist.questions, weights, strict=True):
        if question.sub_dimension == sub.name and question.dimension == sub.dimension:
            assert weight == 0.5
        elif question.dimension == sub.dimension:
            assert weight == 3.0
        elif question.dimension == other.name:
            assert weight == 0.0
        else:
            assert weight == 1.0
    with pytest.raises(ChecklistError, match=r"task.loss_weights: 'Grain' is neither.*Fidelity"):
        checklist.question_weights({"Grain": 2.0}, key="task.loss_weights")
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ChecklistError, match=r"must be finite and >= 0"):
            checklist.question_weights({sub.name: bad})


def test_a_weighted_loss_is_the_weighted_mean_over_the_batchs_questions(small_split):
    split_dir, checklist, backbone = small_split
    data = ChecklistDataModule(
        split_dir,
        checklist,
        partition=PartitionConfig(),
        frames=backbone.config.frames,
        batch_size=4,
    )
    data.setup()
    batch = next(iter(data.train_dataloader()))
    sub = checklist.sub_dimensions[checklist.question_sub_dimension()[batch["question_index"][0]]]
    weights = {sub.name: 4.0, checklist.dimension_names[-1]: 0.0}
    weighted = ChecklistModule(backbone, checklist, BackboneOptimSettings(), weights)
    plain = ChecklistModule(backbone, checklist, BackboneOptimSettings())
    with torch.no_grad():
        logits = plain(batch)
        bce = F.binary_cross_entropy_with_logits(logits, batch["labels"], reduction="none")
        w = torch.from_numpy(checklist.question_weights(weights))[batch["question_index"]]
        assert (w == 4.0).any() and (w == 1.0).any()  # the batch has weighted and plain questions
        torch.testing.assert_close(weighted.training_step(batch, 0), (bce * w).sum() / w.sum())
        torch.testing.assert_close(plain.training_step(batch, 0), bce.mean())


@pytest.mark.parametrize(
    ("vision_lr_scale", "projector_lr_scale"), [(0.1, None), (0.0, None), (0.0, 1.0)]
)
def test_checklist_module_trains_and_reports_per_dimension_accuracy(
    small_split, tmp_path, vision_lr_scale, projector_lr_scale
):
    split_dir, checklist, backbone = small_split
    data = ChecklistDataModule(
        split_dir,
        checklist,
        partition=PartitionConfig(),
        frames=backbone.config.frames,
        batch_size=8,
    )
    optim = BackboneOptimSettings(
        lr=1e-3,
        warmup_steps=2,
        vision_lr_scale=vision_lr_scale,
        projector_lr_scale=projector_lr_scale,
    )
    module = ChecklistModule(backbone, checklist, optim)
    before = {n: p.detach().clone() for n, p in backbone.named_parameters()}
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=3,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=data)
    trainer.test(module, datamodule=data)
    changed = [n for n, p in backbone.named_parameters() if not torch.equal(p, before[n])]
    # A zero scale freezes the vision tower in effect (AdamW's decay is lr-scaled too); the patch
    # merger inside it learns at its own rate only when that is set.
    tower = [n for n in changed if "visual" in n and "merger" not in n]
    merger = [n for n in changed if "visual.merger" in n]
    assert bool(tower) == (vision_lr_scale > 0)
    assert bool(merger) == (vision_lr_scale > 0 or bool(projector_lr_scale))
    assert any("language_model" in n for n in changed)
    rates = [group["initial_lr"] for group in trainer.optimizers[0].param_groups]
    projector_rates = [] if projector_lr_scale is None else [1e-3 * projector_lr_scale]
    assert rates == pytest.approx([1e-3, 1e-3 * vision_lr_scale, *projector_rates])
    results = module.results["test"]
    assert 0.0 <= results["mean"] <= 1.0
    assert set(checklist.dimension_names) == {
        k.split("/", 1)[1] for k in results if k.startswith("dimension/")
    }


@pytest.mark.slow
# CI's budget: the main job's CLI test trains and annotates, torchrun's annotates from model_dir
@pytest.mark.heavy
def test_train_checklist_then_annotate_from_the_cli(tmp_path):
    common = [f"paths.root_dir={tmp_path}", "debug=smoke", "dataset.num_prompts=24", "logger=csv"]
    result = run_cli(
        "task=train_checklist",
        f"paths.output_dir={tmp_path}/train",
        *common,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    model_dir = tmp_path / "train" / "checklist_model"
    assert (model_dir / "model.safetensors").exists() and (model_dir / "checklist.yaml").exists()
    accuracy = json.loads((model_dir / "checklist_accuracy.json").read_text())
    assert 0 <= accuracy["test"]["mean"] <= 1
    assert "Held-out checklist accuracy" in result.stdout
    result = run_cli(
        "task=annotate", f"task.model_dir={model_dir}", f"paths.output_dir={tmp_path}/ann", *common
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = read_annotations(tmp_path / "ann" / "annotations")
    assert table.num_rows == 24 * 3 * 18  # prompts x renders (the default 3) x questions
    assert table.column("p_yes").to_numpy().min() >= 0


def annotate_small(backbone, checklist, items, out_dir, **kwargs):
    return annotate_items(backbone, checklist, items, out_dir, batch_size=4, chunk_size=5, **kwargs)


def test_annotate_resumes_after_a_kill_without_duplicates(small_split, tmp_path):
    split_dir, checklist, backbone = small_split
    from vrexp.data.items import split_items

    items = split_items(split_dir)[:12]
    out = tmp_path / "ann"
    annotate_small(backbone, checklist, items, out)
    complete = read_annotations(out)
    assert complete.num_rows == 12 * len(checklist.vlm_questions)
    assert sorted(p.name for p in out.glob("part-*.parquet")) == [
        "part-00000000.parquet",
        "part-00000005.parquet",
        "part-00000010.parquet",
    ]
    # A kill during part 1: its file was never renamed into place, part 2 never started.
    (out / "part-00000005.parquet").unlink()
    (out / "part-00000010.parquet").unlink()
    (out / ".part-00000005.parquet.tmp").write_bytes(b"half")
    done = []
    annotate_small(backbone, checklist, items, out, progress=done.append)
    again = read_annotations(out)
    assert again.num_rows == complete.num_rows
    keys = list(
        zip(
            again.column("item_id").to_pylist(),
            again.column("question_id").to_pylist(),
            strict=True,
        )
    )
    assert len(set(keys)) == len(keys)
    np.testing.assert_allclose(
        again.column("p_yes").to_numpy(), complete.column("p_yes").to_numpy(), atol=1e-6
    )
    # Another model's annotations are never mixed in.
    with pytest.raises(AnnotateError, match="model_dir was not recorded"):
        annotate_small(backbone, checklist, items, out, manifest={"model_dir": "elsewhere"})


def test_annotate_names_bad_media_or_skips_and_records_it(small_split, tmp_path):
    _, checklist, backbone = small_split
    root = tmp_path / "folder"
    save_media(root / "good.png", np.zeros((64, 64, 3), dtype=np.uint8))
    (root / "broken.png").write_bytes(b"not an image")
    (root / "prompts.csv").write_text(
        'media,prompt\ngood.png,"one red circle on a sky background"\nbroken.png,a cat\nmissing.png,a dog\n'
    )
    items = folder_items(root, "prompts.csv")
    with pytest.raises(AnnotateError, match=r"item 1: .*broken\.png: not a media file"):
        annotate_small(backbone, checklist, items, tmp_path / "a")
    result = annotate_small(backbone, checklist, items, tmp_path / "b", skip_bad_media=True)
    assert [s["item_id"] for s in result["skipped"]] == [1, 2]
    assert "missing.png" in result["skipped"][1]["error"]
    assert json.loads((tmp_path / "b" / "skipped.json").read_text()) == result["skipped"]
    assert set(read_annotations(tmp_path / "b").column("item_id").to_pylist()) == {0}


def test_prompts_file_errors_name_the_row(tmp_path):
    (tmp_path / "prompts.jsonl").write_text(
        '{"media": "a.png", "prompt": "x"}\n{"media": "b.png"}\n'
    )
    with pytest.raises(ItemsError, match="line 2"):
        folder_items(tmp_path, "prompts.jsonl")
    with pytest.raises(ItemsError, match="not found"):
        folder_items(tmp_path, "nope.csv")


def test_saved_model_is_an_hf_folder_that_annotate_loads(small_split, tmp_path):
    split_dir, checklist, backbone = small_split
    backbone.save_pretrained(tmp_path / "m")
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "vrexp_backbone.json"} <= files
    reloaded = load_backbone(tmp_path / "m")
    from vrexp.data.items import split_items

    items = split_items(split_dir)[:3]
    a = annotate_small(reloaded, checklist, items, tmp_path / "x")
    assert a["rows"] == 3 * len(checklist.vlm_questions)
    assert pq.read_table(tmp_path / "x" / "part-00000000.parquet").column_names == [
        "item_id",
        "media_path",
        "prompt",
        "question_id",
        "question",
        "p_yes",
    ]


def test_counterfactual_alignment_questions_are_labelled_by_the_oracle(small_split):
    """Prompt swaps: only training prompt texts, labels equal to the oracle's judgement of the
    same pixels under the swapped prompt, and every level drawn."""
    split_dir, checklist, backbone = small_split
    examples = load_examples(split_dir, checklist, backbone.config.frames)
    train = examples.subset(split_by_prompt(examples.prompts, PartitionConfig())["train"])
    dataset = PackedChecklistDataset(
        train, checklist, balanced=True, shuffle=True, seed=3, prompt_swaps=2
    )
    alignment = [checklist.column(q.id) for q in checklist.sub_dimensions[0].questions]
    allowed = set(train.prompts)
    levels_seen = set()
    for example in dataset:
        media = np.asarray(train.media(example["row"]))
        swapped = example["questions"][-4:]
        assert example["question_index"][-4:].tolist() == alignment * 2
        for text, label, column in zip(
            swapped, example["labels"][-4:], example["question_index"][-4:], strict=True
        ):
            prompt = text.split('"')[1]
            assert prompt in allowed
            level = measure(media, prompt)["alignment"]
            levels_seen.add(level)
            at_least = checklist.questions[column].at_least
            assert label == float(level <= at_least), (text, level)
    assert levels_seen == {0, 1, 2}


def test_colour_questions_ask_the_oracles_colour_and_another_of_training_items_only(small_split):
    """Each training item: its checklist questions as without colour questions, its prompt swaps,
    then yes for the colour the oracle saw and no for another, trained as the first alignment
    question; every colour appears as the wrong one."""
    split_dir, checklist, backbone = small_split
    examples = load_examples(split_dir, checklist, backbone.config.frames)
    train = examples.subset(split_by_prompt(examples.prompts, PartitionConfig())["train"])

    def dataset(colour_questions):
        return PackedChecklistDataset(
            train,
            checklist,
            balanced=True,
            shuffle=True,
            seed=3,
            prompt_swaps=2,
            colour_questions=colour_questions,
        )

    first_alignment = checklist.column(checklist.sub_dimensions[0].questions[0].id)
    wrong = set()
    plain_examples = list(dataset(False))
    asked_examples = list(dataset(True))
    assert [e["row"] for e in asked_examples] == [e["row"] for e in plain_examples]
    # The first item's swaps are drawn before any colour; later ones from the shifted stream.
    assert asked_examples[0]["questions"][:-2] == plain_examples[0]["questions"]
    for plain, asked in zip(plain_examples, asked_examples, strict=True):
        own = len(plain["questions"]) - 4  # two swaps of the two alignment questions
        assert asked["questions"][:own] == plain["questions"][:own]
        np.testing.assert_array_equal(asked["labels"][:own], plain["labels"][:own])
        assert len(asked["questions"]) == own + 4 + 2
        seen = train.seen_colors[asked["row"]]
        assert seen is not None
        assert asked["questions"][-2] == f"Are the objects in the image {seen}?"
        other = asked["questions"][-1].removeprefix("Are the objects in the image ")[:-1]
        assert other in OBJECT_COLORS and other != seen
        wrong.add(other)
        assert asked["labels"][-2:].tolist() == [1.0, 0.0]
        assert asked["question_index"][-2:].tolist() == [first_alignment] * 2
    assert wrong == set(OBJECT_COLORS)
    module = ChecklistDataModule(
        split_dir,
        checklist,
        partition=PartitionConfig(),
        frames=backbone.config.frames,
        batch_size=4,
        colour_questions=True,
    )
    module.setup()
    assert module.train_dataloader().dataset.colours is not None
    # Held-out items are asked the checklist only.
    for loader in (module.val_dataloader(), module.test_dataloader()):
        assert loader.dataset.colours is None
        batch = next(iter(loader))
        assert not any("Are the objects in the image" in q for qs in batch["questions"] for q in qs)


def test_colour_questions_name_the_checklists_media(small_split, tmp_path):
    split_dir, checklist, backbone = small_split
    examples = load_examples(split_dir, checklist, backbone.config.frames)
    row = next(i for i, c in enumerate(examples.seen_colors) if c is not None)
    seen = examples.seen_colors[row]
    video = Checklist.from_config(compose_config(tmp_path, "dataset=synthworld_video").dimensions)
    assert video.media == "video"
    for asked, media in ((checklist, "image"), (video, "video")):
        texts, columns, labels = ColourQuestions.of(examples, asked, True).draw(
            row, np.random.default_rng(0)
        )
        assert texts[0] == f"Are the objects in the {media} {seen}?"
        assert texts[1].startswith(f"Are the objects in the {media} ") and texts[1] != texts[0]
        first_alignment = asked.column(asked.sub_dimensions[0].questions[0].id)
        assert columns.tolist() == [first_alignment] * 2
        assert labels.tolist() == [1.0, 0.0]


def test_colour_questions_need_the_oracles_colour(small_split):
    split_dir, checklist, backbone = small_split
    examples = load_examples(split_dir, checklist, backbone.config.frames)
    examples.seen_colors = None  # a split of format 2 has no oracle.color
    with pytest.raises(ValueError, match=r"colour_questions.*oracle\.color"):
        PackedChecklistDataset(
            examples, checklist, balanced=True, shuffle=True, seed=0, colour_questions=True
        )


def test_prompt_swaps_need_the_oracles_count_and_colour(small_split):
    split_dir, checklist, backbone = small_split
    examples = load_examples(split_dir, checklist, backbone.config.frames)
    examples.seen_counts = None  # a split of format 2 has no oracle.count
    with pytest.raises(ValueError, match=r"oracle\.count"):
        PackedChecklistDataset(
            examples, checklist, balanced=True, shuffle=True, seed=0, prompt_swaps=1
        )


def test_a_checklist_without_alignment_trains_without_swaps(small_split):
    split_dir, checklist, backbone = small_split
    config = checklist.to_config()
    config["drop"] = ["Alignment"]
    ablated = Checklist.from_config(config)
    examples = load_examples(split_dir, ablated, backbone.config.frames)
    dataset = PackedChecklistDataset(
        examples, ablated, balanced=True, shuffle=True, seed=0, prompt_swaps=2
    )
    assert dataset.swaps is None
    assert ColourQuestions.of(examples, ablated, enabled=True) is None
    example = next(iter(dataset))
    assert len(example["questions"]) == len(example["labels"]) <= len(ablated.questions)
