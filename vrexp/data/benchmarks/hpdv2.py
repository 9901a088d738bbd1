"""HPDv2 test (``ymhao/HPDv2``; protocol from tgxs002/HPSv2): ranked lists of images per prompt.

Layout: ``test.json`` (a list of ``{prompt, image_path: [..], rank: [..], raw_annotations}``) with
the images at ``test/<image_path>``, or still inside ``test.tar.gz`` (members ``test/<name>``), as
the Hugging Face repository ships them. Lower ``rank`` is better; equal ranks are a human tie.
The scores-file key of an image is its ``image_path`` entry as written.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from vrexp.configs.choices import BenchmarkName, Media
from vrexp.data.benchmarks.base import (
    Benchmark,
    MediaRef,
    TarMedia,
    check_revision,
    ranked_lists,
    read_json_list,
    require_dir,
    require_file,
    tar_members,
)

NAME = BenchmarkName.hpdv2_test
PROTOCOLS = ("hpdv2",)


def load_hpdv2_test(
    root: str | Path,
    *,
    media_root: str | Path | None = None,
    split: str = "test",
    revision: str | None = None,
    skip_invalid: bool = False,
) -> Benchmark:
    """The HPDv2 test lists of the snapshot ``root``; images under ``media_root`` (default
    ``root/test``), else in ``root/test.tar.gz``."""
    root = require_dir(root, str(NAME))
    file = require_file(root / f"{split}.json", str(NAME))
    base = require_dir(media_root, f"{NAME} media_root") if media_root else root / split
    revision = check_revision(root, revision)
    entries = read_json_list(file, str(NAME))
    archive = root / f"{split}.tar.gz"

    def archived(written: str) -> MediaRef | None:
        if not archive.is_file():
            return None
        members = tar_members(archive)
        for member in (f"{split}/{written}", written, f"{split}/{PurePosixPath(written).name}"):
            if member in members:
                return TarMedia(archive, member)
        return None

    return Benchmark(
        name=NAME,
        split=split,
        form="ranked",
        media=Media.image,
        protocols=PROTOCOLS,
        revision=revision,
        files=(file,),
        rows=lambda: ranked_lists(
            file, entries, media_key="image_path", rank_key="rank", base=base, archived=archived
        ),
        skip_invalid=skip_invalid,
    )
