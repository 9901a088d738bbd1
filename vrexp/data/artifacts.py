"""Reusable stage outputs: a folder is reused only if it was made by the same configuration.

Sweeps share their expensive artifacts (a checklist model, a base generator) through a fingerprint
file written next to them; a folder made with another configuration is an error, not a silent mix.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

FINGERPRINT = "fingerprint.json"


class ArtifactsError(RuntimeError):
    """An artifacts folder that holds a result made with another configuration."""


def ensure_artifact(
    folder: str | Path,
    wanted: dict[str, Any],
    done_file: str,
    make: Callable[[], Any],
    *,
    what: str,
    fingerprint_file: str = FINGERPRINT,
) -> bool:
    """Run ``make`` unless ``folder`` holds ``done_file`` made with ``wanted``; True if it ran."""
    folder = Path(folder)
    wanted = json.loads(json.dumps(wanted, sort_keys=True, default=str))
    if (folder / done_file).exists() and (folder / fingerprint_file).exists():
        found = json.loads((folder / fingerprint_file).read_text())
        if found == wanted:
            return False
        changed = sorted(k for k in wanted if wanted[k] != found.get(k))
        raise ArtifactsError(
            f"{folder} holds a {what} made with a different {', '.join(changed)} configuration; "
            "point task.artifacts_dir elsewhere or delete that folder"
        )
    make()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / fingerprint_file).write_text(json.dumps(wanted, indent=2, sort_keys=True) + "\n")
    return True
