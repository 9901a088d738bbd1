"""Tiny snapshots of the evaluation benchmarks, written in each one's published schema and layout
(docs/benchmarks.md §5): JSON lists beside image folders, parquet shards named as the Hugging Face
hub names them with JPEG bytes embedded (written by Pillow), a CSV beside MP4 files (written with
PyAV). Every image is one solid colour, so a test can tell which one it decoded.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from tests.media_fixtures import coded_frames, write_video

SIZE = (16, 12)  # width, height of every fixture image


def colour(index: int) -> tuple[int, int, int]:
    """A distinct colour per index, far enough apart to survive JPEG."""
    return (40 * (index % 6) + 20, 60 * (index // 6 % 4) + 20, 200 - 30 * (index % 5))


def image_bytes(index: int, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", SIZE, colour(index)).save(
        buffer, format=fmt, **({"lossless": True} if fmt == "WEBP" else {"quality": 95})
    )
    return buffer.getvalue()


def write_image(path: Path, index: int, fmt: str = "JPEG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(index, fmt))
    return path


def write_mp4(path: Path, frames: int = 3, first: int = 0) -> Path:
    """An H.264 clip of coded frames from index ``first``: a different ``first``, a different
    clip (a reward must not see the two sides of a pair as one video)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, "libx264", "mp4", coded_frames(frames, 32, 32, first))


def write_shards(
    folder: Path, split: str, table: pa.Table, shards: int = 1, row_group_size: int = 2
) -> list[Path]:
    """``folder/<split>-0000k-of-0000n.parquet``, the rows dealt out in order."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, table.num_rows, shards + 1).astype(int)
    paths = []
    for k in range(shards):
        path = folder / f"{split}-{k:05d}-of-{shards:05d}.parquet"
        part = table.slice(bounds[k], bounds[k + 1] - bounds[k])
        pq.write_table(part, path, row_group_size=row_group_size)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- HPDv2 test

HPDV2_ENTRIES = [  # (prompt, ranks): one list with a human tie
    ("a red fox", [1, 2, 3]),
    ("a blue bird", [2, 1, 2, 3]),
]


def write_hpdv2(root: Path, entries=HPDV2_ENTRIES, *, tarball: bool = False) -> Path:
    """``test.json`` and ``test/<image_path>`` (with ``tarball``, inside ``test.tar.gz`` as
    members ``test/<image_path>``, as the hub ships them); entry ``i``'s image ``k`` is
    ``{i:05d}_{k}.jpg``."""
    import tarfile

    records, packed = [], []
    for i, (prompt, ranks) in enumerate(entries):
        paths = [f"{i:05d}_{k}.jpg" for k in range(len(ranks))]
        for k, path in enumerate(paths):
            if tarball:
                packed.append((f"test/{path}", image_bytes(10 * i + k)))
            else:
                write_image(root / "test" / path, 10 * i + k)
        records.append(
            {
                "prompt": prompt,
                "image_path": paths,
                "rank": list(ranks),
                "raw_annotations": [{"rank": list(ranks), "user_hash": "u0"}],
            }
        )
    root.mkdir(parents=True, exist_ok=True)
    if tarball:
        with tarfile.open(root / "test.tar.gz", "w:gz") as archive:
            for name, data in packed:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    (root / "test.json").write_text(json.dumps(records))
    return root


# ----------------------------------------------------------------------------- ImageRewardDB test

IMAGEREWARD_ENTRIES = [
    ("a castle at dusk", [1, 2, 2, 3]),
    ("a cat on a sofa", [2, 1, 3]),
]


def write_imagereward(root: Path, entries=IMAGEREWARD_ENTRIES) -> Path:
    """``data/test.json`` of the code repository; ``generations`` are lossless WebP files under
    ``images/test/<id>/`` relative to the root."""
    records = []
    for i, (prompt, ranking) in enumerate(entries):
        gens = [f"images/test/{i:03d}/{k}.webp" for k in range(len(ranking))]
        for k, gen in enumerate(gens):
            write_image(root / gen, 10 * i + k, "WEBP")
        records.append(
            {"id": f"{i:03d}", "prompt": prompt, "generations": gens, "ranking": ranking}
        )
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data" / "test.json").write_text(json.dumps(records, indent=1))
    return root


def write_imagereward_hf(
    root: Path, entries=IMAGEREWARD_ENTRIES, split: str = "test", archives: int = 2
) -> Path:
    """The Hugging Face dataset's layout: ``metadata-<split>.parquet`` (one row per image) and
    ``images/<split>/<split>_<k>.zip`` holding the WebP images and ``<split>_<k>.json`` at the
    archive's top, list ``i`` in archive ``i % archives + 1``. Image ``k`` of list ``i`` has the
    colour of index ``10 * i + k``, as in :func:`write_imagereward`."""
    import zipfile

    folder = root / "images" / split
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    by_archive: dict[int, list[dict]] = {}
    for i, (prompt, ranking) in enumerate(entries):
        shard = i % archives + 1
        for k, rank in enumerate(ranking):
            row = {
                "image_path": f"images/{split}/{split}_{shard}/{i:03d}-{k}.webp",
                "prompt_id": f"p{i:03d}",
                "prompt": prompt,
                "classification": "Arts",
                "image_amount_in_total": len(ranking),
                "rank": rank,
                "overall_rating": 7 - rank,
                "image_text_alignment_rating": 7 - rank,
                "fidelity_rating": 5,
            }
            rows.append(row)
            by_archive.setdefault(shard, []).append(row)
    for shard, members in by_archive.items():
        with zipfile.ZipFile(folder / f"{split}_{shard}.zip", "w") as archive:
            for row in members:
                i, k = (int(x) for x in Path(row["image_path"]).stem.split("-"))
                archive.writestr(Path(row["image_path"]).name, image_bytes(10 * i + k, "WEBP"))
            archive.writestr(f"{split}_{shard}.json", json.dumps(members))
    small = {
        "image_amount_in_total",
        "rank",
        "overall_rating",
        "image_text_alignment_rating",
        "fidelity_rating",
    }
    table = pa.table(
        {
            key: pa.array([r[key] for r in rows], type=pa.int8() if key in small else pa.string())
            for key in rows[0]
        }
    )
    pq.write_table(table, root / f"metadata-{split}.parquet")
    return root


# ----------------------------------------------------------------------------- Pick-a-Pic

PICKAPIC_LABELS = [1.0, 0.0, 0.5, 1.0, 0.0]  # label_0 per row: A, B, tie, A, B


def pickapic_table(labels=PICKAPIC_LABELS, *, uid_prefix: str = "") -> pa.Table:
    n = len(labels)
    return pa.table(
        {
            "are_different": pa.array([True] * n),
            "best_image_uid": pa.array(
                [
                    f"{uid_prefix}u{r}_0"
                    if lab == 1.0
                    else f"{uid_prefix}u{r}_1"
                    if lab == 0.0
                    else ""
                    for r, lab in enumerate(labels)
                ]
            ),
            "caption": pa.array([f"caption {r}" for r in range(n)]),
            "created_at": pa.array([np.datetime64("2023-04-01T00:00:00", "us")] * n),
            "has_label": pa.array([True] * n),
            "image_0_uid": pa.array([f"{uid_prefix}u{r}_0" for r in range(n)]),
            "image_0_url": pa.array([f"https://dead.example/{r}_0.png" for r in range(n)]),
            "image_1_uid": pa.array([f"{uid_prefix}u{r}_1" for r in range(n)]),
            "image_1_url": pa.array([f"https://dead.example/{r}_1.png" for r in range(n)]),
            "jpg_0": pa.array([image_bytes(2 * r) for r in range(n)], pa.binary()),
            "jpg_1": pa.array([image_bytes(2 * r + 1) for r in range(n)], pa.binary()),
            "label_0": pa.array(labels, pa.float64()),
            "label_1": pa.array([1.0 - lab for lab in labels], pa.float64()),
            "model_0": pa.array(["sdxl"] * n),
            "model_1": pa.array(["sd-2.1"] * n),
            "ranking_id": pa.array(range(n), pa.int64()),
            "user_id": pa.array([7] * n, pa.int64()),
            "num_example_per_prompt": pa.array([1] * n, pa.int64()),
        }
    )


def write_pickapic(
    root: Path, split: str = "test_unique", labels=PICKAPIC_LABELS, shards: int = 2
) -> list[Path]:
    """``data/<split>-*.parquet``; image ``2r`` / ``2r + 1`` are row ``r``'s two images."""
    return write_shards(root / "data", split, pickapic_table(labels, uid_prefix=split), shards)


# ----------------------------------------------------------------------------- GenAI-Bench

GENAI_VOTES = ["leftvote", "rightvote", "tievote", "bothbad_vote", "leftvote"]


def _hf_image(index: int) -> dict:
    return {"bytes": image_bytes(index), "path": f"{index}.jpg"}


def write_genai_bench_image(
    root: Path, split: str = "test_v1", votes=GENAI_VOTES, shards: int = 2
) -> list[Path]:
    """``image_generation/<split>-*.parquet``, images as the Hugging Face image struct."""
    n = len(votes)
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table(
        {
            "prompt": pa.array([f"prompt {r}" for r in range(n)]),
            "left_model": pa.array(["A-model"] * n),
            "left_image": pa.array([_hf_image(2 * r) for r in range(n)], image),
            "right_model": pa.array(["B-model"] * n),
            "right_image": pa.array([_hf_image(2 * r + 1) for r in range(n)], image),
            "vote_type": pa.array(votes),
            "tstamp": pa.array([1.7e9 + r for r in range(n)]),
            "judge": pa.array(["user"] * n),
        }
    )
    return write_shards(root / "image_generation", split, table, shards)


def genai_video_url(row: int, side: str) -> str:
    return f"https://genai-arena.example/videos/{side}/{row:04d}_{side}.mp4"


def write_genai_bench_video(
    root: Path, media_root: Path, split: str = "test_v1", votes=GENAI_VOTES[:3]
) -> list[Path]:
    """``video_generation/<split>-*.parquet`` with URLs; the MP4s under ``media_root`` by name."""
    n = len(votes)
    for r in range(n):
        for side in ("left", "right"):
            write_mp4(media_root / f"{r:04d}_{side}.mp4")
    table = pa.table(
        {
            "prompt": pa.array([f"video prompt {r}" for r in range(n)]),
            "left_model": pa.array(["A-model"] * n),
            "left_video": pa.array([genai_video_url(r, "left") for r in range(n)]),
            "right_model": pa.array(["B-model"] * n),
            "right_video": pa.array([genai_video_url(r, "right") for r in range(n)]),
            "vote_type": pa.array(votes),
        }
    )
    return write_shards(root / "video_generation", split, table)


# ----------------------------------------------------------------------------- VideoGen-RewardBench

VIDEOGEN_COLUMNS = [
    "path_A",
    "path_B",
    "A_model",
    "B_model",
    "prompt",
    "VQ",
    "MQ",
    "TA",
    "Overall",
    "fps_A",
    "num_frames_A",
    "fps_B",
    "num_frames_B",
]
VIDEOGEN_LABELS = [  # (VQ, MQ, TA, Overall) per row
    ("A", "B", "same", "A"),
    ("B", "same", "A", "B"),
    ("same", "A", "B", "same"),
]


def write_videogen_rewardbench(root: Path, labels=VIDEOGEN_LABELS) -> Path:
    """``videogen-rewardbench.csv`` and ``videos/<model>/<file>.mp4`` (videos.zip extracted);
    both models name their file ``<row>.mp4``, as generators of one prompt do."""
    rows = []
    for r, (vq, mq, ta, overall) in enumerate(labels):
        a, b = f"videos/kling/{r:03d}.mp4", f"videos/gen3/{r:03d}.mp4"
        write_mp4(root / a, first=6 * r)
        write_mp4(root / b, first=6 * r + 3)
        rows.append([a, b, "kling", "gen3", f"prompt, {r}", vq, mq, ta, overall, 24, 3, 24, 3])
    with (root / "videogen-rewardbench.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(VIDEOGEN_COLUMNS)
        writer.writerows(rows)
    return root


# ----------------------------------------------------------------------------- Video-MonetBench

MONET_ANSWERS = ["video1", "video2", "tie"]


def write_monetbench(root: Path, media_root: Path | None = None, answers=MONET_ANSWERS) -> Path:
    """The ``test`` config of VisionRewardDB-Video: ``test/test-00000-of-00001.parquet`` with
    video paths ``videos/<id>_<k>.mp4``; the MP4s at that path under ``root``, or by file name
    directly under ``media_root``."""
    n = len(answers)
    for r in range(n):
        for k in (1, 2):
            where = (media_root / f"{r}_{k}.mp4") if media_root else root / f"videos/{r}_{k}.mp4"
            write_mp4(where)
    table = pa.table(
        {
            "internal_id": pa.array([f"id{r}" for r in range(n)]),
            "prompt": pa.array([f"monet prompt {r}" for r in range(n)]),
            "standard_answer": pa.array(answers),
            "video1_path": pa.array([f"videos/{r}_1.mp4" for r in range(n)]),
            "video2_path": pa.array([f"videos/{r}_2.mp4" for r in range(n)]),
        }
    )
    write_shards(root / "test", "test", table)
    return root


def write_snapshot_metadata(root: Path, commit: str, files: list[str]) -> None:
    """What ``snapshot_download(local_dir=root)`` leaves: one ``.metadata`` per file, its first
    line the commit."""
    for name in files:
        meta = root / ".cache" / "huggingface" / "download" / f"{name}.metadata"
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(f'{commit}\n"etag"\n1700000000.0\n')


# ----------------------------------------------------------------------------- VisionRewardDB

# The published annotation fields (names with spaces) and their value ranges, in the card's order.
VRDB_IMAGE_FIELDS = {
    "symmetry": (-1, 1),
    "richness": (-2, 2),
    "color aesthetic": (-1, 1),
    "detail realism": (-3, 1),
    "safety": (-3, 1),
    "body": (-4, 1),
    "lighting aesthetic": (-1, 2),
    "lighting distinction": (-1, 2),
    "background": (-1, 2),
    "emotion": (-2, 2),
    "main object": (-1, 1),
    "color brightness": (-1, 1),
    "face": (-3, 2),
    "hands": (-4, 1),
    "clarity": (-2, 2),
    "detail refinement": (-4, 2),
    "object pairing": (-1, 1),
    "unsafe type": (0, 3),
}
VRDB_VIDEO_FIELDS = {
    "alignment": (1, 5),
    "composition": (1, 3),
    "focus": (1, 3),
    "camera movement": (1, 3),
    "color": (1, 5),
    "lighting accurate": (1, 4),
    "lighting aes": (1, 5),
    "shape at beginning": (0, 3),
    "shape throughout": (0, 4),
    "object motion dynamic": (1, 5),
    "camera motion dynamic": (1, 5),
    "movement smoothness": (0, 4),
    "movement reality": (0, 4),
    "clear": (1, 5),
    "image quality stability": (1, 5),
    "camera stability": (1, 3),
    "detail refinement": (1, 5),
    "letters": (1, 4),
    "physics law": (1, 5),
    "unsafe type": (1, 5),
    "safety": (1, 5),
}
VRDB_META_QUESTIONS = 4  # lines of the fixture's meta_qa_en.txt


def vrdb_annotation(fields: dict, **values: int) -> dict:
    """An annotation with every field at its top value, ``values`` (``"main_object"`` for
    ``main object``) overriding."""
    row = {name: hi for name, (_, hi) in fields.items()}
    for key, value in values.items():
        name = key.replace("_", " ")
        assert name in row, name
        row[name] = value
    return row


def _annotation_array(rows: list[dict], fields: dict) -> pa.Array:
    kind = pa.struct([(name, pa.int64()) for name in fields])
    return pa.array(rows, kind)


def _meta(n: int, length: int = VRDB_META_QUESTIONS) -> dict:
    return {
        "meta_result": pa.array([[r % 2] * length for r in range(n)], pa.list_(pa.int64())),
        "meta_mask": pa.array([[1] * length for _ in range(n)], pa.list_(pa.int64())),
    }


def write_visionrewarddb_image(
    root: Path, annotations: list[dict], *, shards: int = 2, raw_bytes: bool = False
) -> list[Path]:
    """``data/train-0000k-of-0000n.parquet`` (row ``r``: ``internal_id`` ``img{r}``, image
    ``r`` as the Hugging Face image struct, or raw bytes as in the older revision) and
    ``meta_qa_en.txt``; ``annotations`` are the rows' annotation structs."""
    n = len(annotations)
    image = (
        pa.array([image_bytes(r) for r in range(n)], pa.binary())
        if raw_bytes
        else pa.array(
            [_hf_image(r) for r in range(n)],
            pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
        )
    )
    table = pa.table(
        {
            "image": image,
            "internal_id": pa.array([f"img{r}" for r in range(n)]),
            "prompt": pa.array([f"image prompt {r}" for r in range(n)]),
            "url": pa.array([f"https://dead.example/img{r}.jpg" for r in range(n)]),
            "annotation": _annotation_array(annotations, VRDB_IMAGE_FIELDS),
            **_meta(n),
        }
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / "meta_qa_en.txt").write_text("".join(f"question {k}\n" for k in range(4)))
    return write_shards(root / "data", "train", table, shards)


VRDB_REGRESSION = [  # (video1, video2, standard_answer): videos shared between pairs
    (0, 1, "video1"),
    (1, 2, "video2"),
    (0, 2, "tie"),
    (3, 1, "video1"),
]


def write_visionrewarddb_video(
    root: Path,
    annotations: list[dict],
    *,
    media_root: Path | None = None,
    regression=VRDB_REGRESSION,
) -> dict[str, Path]:
    """``train/train-00000-of-00001.parquet`` (row ``r``: ``internal_id`` ``vid{r}``, video
    ``videos/train_{r}.mp4``) and ``regression/regression-00000-of-00001.parquet`` (pair ``r``:
    ``internal_id`` ``reg{r}``, videos ``videos/reg_{k}.mp4``); the MP4s at those paths under
    ``root``, or by file name under ``media_root``."""

    def place(written: str) -> None:
        write_mp4((media_root / Path(written).name) if media_root else root / written)

    n = len(annotations)
    train = [f"videos/train_{r}.mp4" for r in range(n)]
    for written in train:
        place(written)
    for k in sorted({v for a, b, _ in regression for v in (a, b)}):
        place(f"videos/reg_{k}.mp4")
    table = pa.table(
        {
            "video_path": pa.array(train),
            "internal_id": pa.array([f"vid{r}" for r in range(n)]),
            "prompt": pa.array([f"video prompt {r}" for r in range(n)]),
            "url": pa.array([f"https://dead.example/vid{r}.mp4" for r in range(n)]),
            "annotation": _annotation_array(annotations, VRDB_VIDEO_FIELDS),
            **_meta(n),
        }
    )
    pairs = pa.table(
        {
            "internal_id": pa.array([f"reg{r}" for r in range(len(regression))]),
            "prompt": pa.array([f"pair prompt {r}" for r in range(len(regression))]),
            "standard_answer": pa.array([answer for _, _, answer in regression]),
            "video1_path": pa.array([f"videos/reg_{a}.mp4" for a, _, _ in regression]),
            "video2_path": pa.array([f"videos/reg_{b}.mp4" for _, b, _ in regression]),
        }
    )
    return {
        "train": write_shards(root / "train", "train", table)[0],
        "regression": write_shards(root / "regression", "regression", pairs)[0],
    }
