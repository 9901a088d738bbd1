"""The weights plot of ``fit_weights``: one bar per feature question, grouped and coloured by
dimension, zero weights marked (the questions a "select" checklist drops)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from vrexp.data.atomic import atomic_write
from vrexp.reward.linear import LinearReward


def plot_weights(reward: LinearReward, path: str | Path, title: str = "") -> Path:
    path = Path(path)
    questions = reward.feature_questions
    weights = reward.weights.tolist()
    names = reward.checklist.dimension_names
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * len(questions) + 2), 4.2))
    for i, (q, w) in enumerate(zip(questions, weights, strict=True)):
        ax.bar(i, w, color=colours(names.index(q.dimension) % 10))
        if w == 0:
            ax.text(i, 0, "0", ha="center", va="bottom", fontsize=7, color="grey")
    ax.set_xticks(range(len(questions)), [f"{q.id}" for q in questions], fontsize=7, rotation=90)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours(d % 10)) for d in range(len(names))]
    ax.legend(handles, names, fontsize=7, loc="upper right")
    ax.set_xlabel("question id")
    ax.set_ylabel("weight")
    ax.set_title(title or f"{reward.checklist.name}: weights by dimension")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)
    return path
