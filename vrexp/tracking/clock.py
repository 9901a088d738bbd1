"""``StageClock``: runs a chain's stages under a heading each, recording each one's seconds."""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)


class StageClock:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        log.info("── %s ──", name)
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        self.seconds[name] = time.perf_counter() - start
        return out
