"""Checklist answering on a transformers VLM: one media forward, every question as a cached suffix.

:class:`ChecklistBackbone` wraps a real ``*ForConditionalGeneration`` model and its processor. The
media (and the fixed prompt text around it) form a *prefix* that is encoded once per item; every
question of the checklist is then a short *suffix* run as one batch against that prefix's KV cache,
for many items at once. The answer is read, never generated: P(yes) is the softmax over the yes/no
answer-token logits at the last suffix position (several spellings of yes or no are pooled with
logsumexp). The same cached computation is differentiable, so training packs all questions of an
item behind one media forward (:meth:`ChecklistBackbone.answer_logits` with gradients on).

Family specifics (media placeholder tokens, processor construction, position ids after a cached
prefix) live in ``families.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn
from transformers import DynamicCache

from vrexp.backbones.media import is_video, media_shape, sampled, to_frames
from vrexp.configs import BackboneConfig
from vrexp.configs.versioning import stamp
from vrexp.media import Clip, load_for_model

BACKBONE_FILE = "vrexp_backbone.json"
# Put after the first character of a special token's spelling met in a question: the text then
# tokenises as the characters it is, never as the control token (docs/security.md §3).
WORD_JOINER = "\u2060"
# BackboneConfig fields that say how to load, not what the model is: not saved in a folder's
# BACKBONE_FILE, and ignored there on load (folders without a format_version hold them) in
# favour of the caller's value. name_or_path is always the folder itself.
LOAD_SWITCHES = ("name_or_path", "local_files_only", "trust_remote_code")


def _special_pattern(tokenizer: Any) -> re.Pattern | None:
    """A regex of the spellings of the tokenizer's special tokens (longest first), or None."""
    spellings = set(getattr(tokenizer, "all_special_tokens", ()))
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    spellings |= {t.content for t in decoder.values() if getattr(t, "special", False)}
    spellings = sorted((s for s in spellings if len(s) > 1), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, spellings))) if spellings else None


class BackboneError(RuntimeError):
    """A backbone that cannot be built or loaded (e.g. weights absent on an offline machine)."""


@dataclass
class Prefix:
    """The encoded prefixes of a batch of items."""

    cache: DynamicCache
    length: int
    rope_deltas: torch.Tensor | None  # Qwen-VL family: M-RoPE offset per item


class ChecklistBackbone(nn.Module):
    family: ClassVar[str]
    media_token: ClassVar[str]  # one media placeholder per frame in the prefix text
    vision_module: ClassVar[str]  # attribute of the inner transformers model: the vision tower
    # Submodule path of the inner model: the projector of vision features into the LM's embeddings.
    projector_module: ClassVar[str]
    native_video: ClassVar[bool] = False  # the family can take a clip as one video input
    # The repeated blocks (language decoder layers, vision tower blocks) that FSDP shards as
    # one unit each and recomputes under activation checkpointing (trainer=fsdp).
    shard_layers: ClassVar[tuple[type[nn.Module], ...]] = ()

    def __init__(self, model: nn.Module, processor: Any, config: BackboneConfig) -> None:
        super().__init__()
        self.model = model
        self.processor = processor
        self.config = config
        self.yes_ids = self._answer_ids(config.yes_tokens, "yes_tokens")
        self.no_ids = self._answer_ids(config.no_tokens, "no_tokens")
        self._token_cache: dict[str, list[int]] = {}
        self._special = _special_pattern(self.tokenizer)

    # ------------------------------------------------------------------ family hooks
    def media_text(self, num_frames: int) -> str:
        return self.media_token * num_frames

    def video_inputs(
        self, media: Sequence[np.ndarray | Clip], frames: list[list[np.ndarray]]
    ) -> Any:
        """Prefix inputs of clips sent as the family's native video input (``native_video``)."""
        raise NotImplementedError(f"{type(self).__name__} has no native video input")

    def suffix_position_ids(
        self, prefix: Prefix, item: torch.Tensor, offsets: torch.Tensor
    ) -> torch.Tensor:
        """Positions of suffix tokens [R, L] at ``offsets`` after the prefix of ``item`` [R]."""
        return prefix.length + offsets

    def prefix_positions(self, inputs: Any) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Position ids of the prefix ``inputs`` (None: the model's default), and the per-item
        offset of the text positions that follow it (M-RoPE families)."""
        return None, None

    # ------------------------------------------------------------------ text and media
    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    @property
    def base_model(self) -> nn.Module:
        """The transformers model itself, under any peft wrapper."""
        get_base = getattr(self.model, "get_base_model", None)
        return get_base() if get_base is not None else self.model

    def vision_parameters(self) -> list[nn.Parameter]:
        """The vision tower's parameters (with Qwen's patch merger), for a separate learning rate."""
        return list(getattr(self.base_model.model, self.vision_module).parameters())

    def projector_parameters(self) -> list[nn.Parameter]:
        """The vision-language projector's parameters (inside the vision tower for Qwen, beside it
        for LLaVA), for a learning rate of its own (``task.projector_lr_scale``)."""
        return list(self.base_model.model.get_submodule(self.projector_module).parameters())

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _answer_ids(self, tokens: Sequence[str], key: str) -> list[int]:
        ids = []
        for token in tokens:
            encoded = self.tokenizer(token, add_special_tokens=False).input_ids
            if len(encoded) != 1:
                raise BackboneError(
                    f"backbone.{key}: {token!r} is {len(encoded)} tokens for this tokenizer; every "
                    "answer spelling must be a single token"
                )
            ids.append(encoded[0])
        return ids

    def frames(self, media: np.ndarray | Clip) -> list[np.ndarray]:
        return to_frames(media, self.config.image_size, self.config.frames)

    def read_media(self, path: str | Path) -> np.ndarray | Clip:
        """What this backbone sees of a file: the frames its sampling picks, each reduced to its
        ``image_size`` as it is read (what :meth:`frames` would resize them to)."""
        return load_for_model(path, self.config.frames, size=self.config.image_size)

    def prefix_text(self, num_frames: int) -> str:
        return self.config.prompt_template.format(media=self.media_text(num_frames))

    def question_text(self, question: str) -> str:
        """The suffix of ``question`` (a checklist question, a user's prompt filled in): the
        question is text, so a special token spelt in it (``<|image_pad|>``, ``</s>``) is
        neutralised; the template's own special tokens (a chat turn's end) stay."""
        return self.config.question_template.format(question=self.plain_text(question))

    def plain_text(self, text: str) -> str:
        """``text`` with every special token's spelling broken by a word joiner, so that it
        cannot tokenise to a special-token id."""
        if self._special is None:
            return text
        return self._special.sub(lambda m: m[0][0] + WORD_JOINER + m[0][1:], text)

    # ------------------------------------------------------------------ the cached path
    def process(self, media: Sequence[np.ndarray | Clip]) -> dict[str, torch.Tensor]:
        """Processor outputs of the prefixes of ``media`` (equal frame counts), on the CPU.

        Every output has the items along its first axis, so the outputs of single items
        concatenated along that axis equal those of the batch: a data pipeline may process each
        item once, cache it, and batch it later.
        """
        frames = [self.frames(m) for m in media]
        counts = {len(f) for f in frames}
        if len(counts) != 1:
            raise BackboneError(f"a prefix batch needs equal frame counts, got {sorted(counts)}")
        if self.native_video and self.config.frames.native and is_video(media[0]):
            return dict(self.video_inputs(media, frames))
        text = [self.prefix_text(counts.pop())] * len(frames)
        images = [frame for item in frames for frame in item]
        return dict(self.processor(text=text, images=images, return_tensors="pt"))

    def prefix_inputs(
        self, media: Sequence[np.ndarray | Clip], processed: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """Model inputs of the prefixes of ``media`` on the model's device (``processed``: the
        output of :meth:`process` for these media, when already computed)."""
        inputs = self.process(media) if processed is None else processed
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        for key in ("pixel_values", "pixel_values_videos"):
            if key in inputs:
                inputs[key] = inputs[key].to(self.model.dtype)
        return inputs

    def encode_prefix(
        self, media: Sequence[np.ndarray | Clip], processed: dict[str, torch.Tensor] | None = None
    ) -> Prefix:
        """Encode media (all of the same shape) once; the returned cache serves every question."""
        inputs = self.prefix_inputs(media, processed)
        positions, rope_deltas = self.prefix_positions(inputs)
        # The decoder without its LM head: only the cache is needed.
        out = self.base_model.model(**inputs, position_ids=positions, use_cache=True)
        return Prefix(out.cache, inputs["input_ids"].shape[1], rope_deltas)

    def answer_logits(
        self, media: Sequence[np.ndarray | Clip], questions: Sequence[Sequence[str]] | Sequence[str]
    ) -> torch.Tensor:
        """[B, Q] log-odds of yes against no for every item and question.

        ``questions`` is one list for all items, or one list per item (questions with the item's
        prompt filled in); per-item lists may differ in content but not in length.
        """
        per_item = [list(questions)] * len(media) if isinstance(questions[0], str) else questions
        if len(per_item) != len(media) or len({len(q) for q in per_item}) != 1:
            raise BackboneError(
                "give one question list for all items, or one of equal length per item"
            )
        prefix = self.encode_prefix(media)
        flat = [self.question_text(q) for qs in per_item for q in qs]
        item = torch.arange(len(media), device=self.device).repeat_interleave(len(per_item[0]))
        logits = self.suffix_logits(prefix, item, flat)
        return logits.view(len(media), -1)

    def suffix_logits(
        self, prefix: Prefix, item: torch.Tensor, suffixes: list[str]
    ) -> torch.Tensor:
        """[M] yes/no log-odds of suffix ``m`` read against the prefix of item ``item[m]``.

        The suffixes of one item are packed into one row, one after another, under a block mask:
        each question sees the item's cached prefix and its own earlier tokens, never another
        question. The prefix cache is therefore not copied per question, and nothing is padded
        but the row ends. A row holds at most ``question_batch_size`` questions; at inference, a
        forward holds at most that many questions too, to bound memory.
        """
        return self.yes_no_log_odds(self.answer_head(self.suffix_hidden(prefix, item, suffixes)))

    def suffix_hidden(
        self, prefix: Prefix, item: torch.Tensor, suffixes: list[str]
    ) -> torch.Tensor:
        """[M, H] last hidden state at the final token of suffix ``m`` (see :meth:`suffix_logits`)."""
        encoded = self.encode_suffixes(suffixes)
        cap = self.config.question_batch_size
        by_item: dict[int, list[int]] = {}
        for m, owner in enumerate(item.tolist()):
            by_item.setdefault(owner, []).append(m)
        rows = [(b, ms[i : i + cap]) for b, ms in by_item.items() for i in range(0, len(ms), cap)]
        per_forward = (
            len(rows) if torch.is_grad_enabled() else max(cap // max(len(r[1]) for r in rows), 1)
        )
        out = None
        for start in range(0, len(rows), per_forward):
            chunk = rows[start : start + per_forward]
            members = torch.tensor([m for _, ms in chunk for m in ms], device=self.device)
            hidden = self._packed_rows(prefix, chunk, encoded)
            if out is None:
                out = hidden.new_empty(len(suffixes), hidden.shape[-1])
            out = out.index_put((members,), hidden)
        return out

    def encode_suffixes(self, suffixes: list[str]) -> list[list[int]]:
        """Token ids of suffixes; checklist questions repeat for every item, so they are memoised."""
        missing = [t for t in dict.fromkeys(suffixes) if t not in self._token_cache]
        if len(self._token_cache) + len(missing) > 100_000:
            self._token_cache.clear()
        if missing:
            ids = self.tokenizer(missing, add_special_tokens=False).input_ids
            self._token_cache.update(zip(missing, ids, strict=True))
        return [self._token_cache[t] for t in suffixes]

    def _packed_rows(
        self, prefix: Prefix, rows: list[tuple[int, list[int]]], encoded: list[list[int]]
    ) -> torch.Tensor:
        """Final-token hidden states of the suffixes packed in ``rows`` (item, suffix indices)."""
        device = self.device
        width = max(sum(len(encoded[m]) for m in members) for _, members in rows)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        offsets = torch.zeros((len(rows), width), dtype=torch.long)  # position within its question
        segment = torch.full((len(rows), width), -1, dtype=torch.long)
        last_r, last_c = [], []
        for r, (_, members) in enumerate(rows):
            col = 0
            for s, m in enumerate(members):
                n = len(encoded[m])
                ids[r, col : col + n] = torch.tensor(encoded[m])
                offsets[r, col : col + n] = torch.arange(n)
                segment[r, col : col + n] = s
                last_r.append(r)
                last_c.append(col + n - 1)
                col += n
        # Block-causal mask over the suffix part; every token (padding too, so no row is empty)
        # sees the whole prefix.
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] >= 0)
        allowed = torch.cat(
            [torch.ones(len(rows), width, prefix.length, dtype=torch.bool), same & causal], dim=2
        )
        dtype = self.model.dtype
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
        row_item = torch.tensor([b for b, _ in rows], device=device)
        cache = DynamicCache()
        for index, layer in enumerate(prefix.cache.layers):
            cache.update(layer.keys[row_item], layer.values[row_item], index)
        # The decoder without its LM head: only the yes/no rows of the head are ever needed.
        hidden = self.base_model.model(
            input_ids=ids.to(device),
            attention_mask=mask[:, None].to(device),
            cache=cache,
            position_ids=self.suffix_position_ids(prefix, row_item, offsets.to(device)),
            use_cache=False,
        ).last_hidden_state
        return hidden[torch.tensor(last_r, device=device), torch.tensor(last_c, device=device)]

    def answer_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """[N, A] logits of the yes and no answer tokens (in ``yes_ids + no_ids`` order)."""
        head = self.base_model.get_output_embeddings()
        rows = torch.tensor(self.yes_ids + self.no_ids, device=hidden.device)
        logits = hidden @ head.weight[rows].T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[rows]
        return logits

    def yes_no_log_odds(self, logits: torch.Tensor) -> torch.Tensor:
        """Pooled log-odds from [N, A] answer logits in ``yes_ids + no_ids`` order."""
        logits = logits.float()
        yes, no = logits[:, : len(self.yes_ids)], logits[:, len(self.yes_ids) :]
        return torch.logsumexp(yes, -1) - torch.logsumexp(no, -1)

    def answer(
        self, media: Sequence[np.ndarray | Clip], questions: Sequence[Sequence[str]] | Sequence[str]
    ) -> torch.Tensor:
        """[B, Q] P(yes) = softmax over the yes/no answer logits; the hard answer is P > 0.5."""
        with torch.inference_mode():
            return torch.sigmoid(self.answer_logits(media, questions))

    def answer_batched(
        self,
        media: Sequence[np.ndarray | Clip],
        questions: Sequence[Sequence[str]],
        batch_size: int = 32,
    ) -> np.ndarray:
        """[N, Q] P(yes) for any number of items, ``batch_size`` prefixes per forward.

        Items are grouped by the shape of what the model sees (videos may differ in length and
        frame rate, so in their sampled frames), and every item has its own question list
        (prompts filled in), all of length Q.
        """
        if len(media) != len(questions):
            raise BackboneError(f"got {len(media)} media but {len(questions)} question lists")
        width = len(questions[0]) if len(questions) else 0
        out = np.zeros((len(media), width), dtype=np.float64)
        media = [sampled(m, self.config.frames) for m in media]
        by_shape: dict[tuple, list[int]] = {}
        for index, m in enumerate(media):
            by_shape.setdefault(media_shape(m), []).append(index)
        for indices in by_shape.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                out[chunk] = (
                    self.answer([media[i] for i in chunk], [questions[i] for i in chunk])
                    .cpu()
                    .numpy()
                )
        return out

    # ------------------------------------------------------------------ the reference path
    def full_inputs(self, media: np.ndarray | Clip, question: str) -> dict[str, torch.Tensor]:
        """Processor inputs of one (media, question) sequence, tokenised exactly as the cached path."""
        inputs = self.prefix_inputs([media])
        suffix = torch.tensor(
            self.encode_suffixes([self.question_text(question)]), device=self.device
        )
        inputs["input_ids"] = torch.cat([inputs["input_ids"], suffix], dim=1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        if "mm_token_type_ids" in inputs:
            inputs["mm_token_type_ids"] = torch.cat(
                [inputs["mm_token_type_ids"], torch.zeros_like(suffix)], dim=1
            )
        return dict(inputs)

    def full_log_odds(self, media: np.ndarray | Clip, question: str) -> torch.Tensor:
        """Yes/no log-odds from one full forward of (media, prompt, question): no cache."""
        out = self.model(**self.full_inputs(media, question), use_cache=False)
        return self.yes_no_log_odds(out.logits[:, -1, self.yes_ids + self.no_ids])[0]

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | Path) -> None:
        """An HF folder: model (safetensors), processor, and this backbone's settings."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        model = self.model
        if hasattr(model, "merge_and_unload"):  # LoRA: save standalone merged weights
            import copy

            model = copy.deepcopy(model).merge_and_unload()
        model.save_pretrained(directory, safe_serialization=True)
        self.processor.save_pretrained(directory)
        settings = OmegaConf.to_container(OmegaConf.structured(self.config), resolve=True)
        for key in LOAD_SWITCHES:  # the loader's choice, not the folder's
            settings.pop(key)
        settings["lora"]["enabled"] = False  # the saved weights are merged
        (directory / BACKBONE_FILE).write_text(json.dumps(stamp(settings), indent=2) + "\n")
