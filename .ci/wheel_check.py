"""CI: the installed wheel works like the checkout (run by .ci/run).

``python wheel_check.py reference OUT.json``
    In the editable install: the tiny backbone's tokenizer and the official rewards' scores.
``python wheel_check.py runtime-deps DIR``
    In the editable install: fill ``DIR`` with links to the installed runtime dependencies of
    vrexp (the closure of its requirements without extras), leaving out the test extras and
    anything else. A fresh virtualenv holding the wheel reaches them through a ``.pth`` file, so
    the check runs without test-only packages and without reinstalling torch (about two minutes).
    The README's install command has just resolved these very requirements from the index.
``python wheel_check.py check REF.json``
    In a fresh virtualenv holding only the wheel (and those dependencies), from a directory
    outside the clone: the wheel must import from site-packages, ship its data (official weights,
    checklists, Hydra configs), give the same tokenizer and scores as the reference, and run the
    ``vrexp`` console command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

OFFICIAL = ("image", "image_select", "video_select")
QUESTION = 'Does the image fully show "two red circles on a sky background"? Answer: yes'


def measure() -> dict:
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import vrexp.configs  # registers the schemas (and binds `vrexp`)
    from vrexp import resources
    from vrexp.backbones import build_backbone
    from vrexp.reward import LinearReward

    scores = {}
    for name in OFFICIAL:
        reward = LinearReward.from_official(name)
        n = len(reward.checklist.questions)
        answers = (torch.arange(3 * n, dtype=torch.float64).reshape(3, n) % 3) / 2
        scores[name] = reward.score(answers).tolist()
    with tempfile.TemporaryDirectory() as root:
        with initialize_config_dir(config_dir=str(resources.config_dir()), version_base="1.3"):
            cfg = compose(
                config_name="config",
                overrides=[
                    "backbone=tiny_qwen2_vl",
                    f"paths.root_dir={root}",
                    f"paths.output_dir={root}/out",
                ],
            )
        tokenizer = build_backbone(OmegaConf.to_object(cfg.backbone)).tokenizer
    result = {
        "vrexp_file": vrexp.__file__,
        "config_dir": str(resources.config_dir()),
        "scores": scores,
        "vocab": sorted(tokenizer.get_vocab().items()),
        "question_ids": tokenizer(QUESTION)["input_ids"],
    }
    return json.loads(json.dumps(result))  # lists, as the reference reads back from its file


def check(reference: dict, clone: Path) -> None:
    import vrexp

    got = measure()
    package = Path(vrexp.__file__).resolve().parent
    assert clone not in package.parents, f"vrexp imported from the clone: {package}"
    assert Path(got["config_dir"]) == package / "conf", got["config_dir"]
    for name in OFFICIAL:
        assert got["scores"][name] == reference["scores"][name], (name, got["scores"][name])
        print(f"from_official({name!r}) scores {got['scores'][name]}")
    assert len(got["vocab"]) > 300, len(got["vocab"])
    if got["vocab"] != reference["vocab"]:
        ours, theirs = dict(got["vocab"]), dict(reference["vocab"])
        differ = sorted(t for t in ours.keys() | theirs.keys() if ours.get(t) != theirs.get(t))
        raise AssertionError(f"the tiny tokenizer's vocabulary differs: {differ[:10]}")
    assert got["question_ids"] == reference["question_ids"], got["question_ids"]
    print(f"tiny tokenizer: {len(got['vocab'])} tokens, question ids as in the checkout")

    command = Path(sys.executable).parent / "vrexp"
    with tempfile.TemporaryDirectory() as root:
        args = [str(command), "task=make_data", "dataset.num_prompts=4", "logger=none"]
        args.append(f"paths.root_dir={root}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
        result = subprocess.run(
            args, cwd=root, env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        written = list(Path(root, "data", "synthworld_image").glob("seed0-n4x*"))
        assert written, f"vrexp task=make_data wrote no split under {root}/data"
        print(f"vrexp task=make_data from {root}: wrote {written[0].name}")


def link_runtime_deps(folder: Path) -> None:
    import importlib.metadata as metadata
    import sysconfig

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    runtime, todo = set(), ["vrexp"]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in runtime:
            continue
        runtime.add(name)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue  # an optional requirement left uninstalled
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    runtime.discard("vrexp")  # the wheel brings its own
    owners: dict[str, set[str]] = {}
    for dist in metadata.distributions():
        for file in dist.files or []:
            top = file.parts[0]
            if top != ".." and not top.endswith(".pth"):
                owners.setdefault(top, set()).add(canonicalize_name(dist.metadata["Name"]))
    site = Path(sysconfig.get_paths()["purelib"])
    folder.mkdir(parents=True)
    for entry in sorted(site.iterdir()):
        if owners.get(entry.name, set()) & runtime:
            (folder / entry.name).symlink_to(entry)


def main() -> None:
    mode, path = sys.argv[1], Path(sys.argv[2])
    if mode == "reference":
        path.write_text(json.dumps(measure()))
    elif mode == "runtime-deps":
        link_runtime_deps(path)
    elif mode == "check":
        check(json.loads(path.read_text()), Path(__file__).resolve().parents[1])
        print("wheel check: OK")
    else:
        raise SystemExit(f"usage: {sys.argv[0]} reference|runtime-deps|check PATH")


if __name__ == "__main__":
    main()
