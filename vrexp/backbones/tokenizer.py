"""A small BPE tokenizer trained locally on the checklist and prompt vocabulary.

Tiny backbones cannot download a hub tokenizer, so they train one in milliseconds on every checklist
question in ``conf/dimensions/`` and on SynthWorld prompts. Checklist words then become single
tokens, which keeps the question suffixes short. It is saved with the model (``tokenizer.json``) and
reloads with ``AutoTokenizer.from_pretrained``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from vrexp.checklist import Checklist, fill_prompt
from vrexp.data.synthworld.grammar import sample_spec

BASE_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]


def training_corpus(dimensions_dir: Path, extra: Iterable[str] = ()) -> list[str]:
    """Checklist questions (prompts filled in) and SynthWorld prompts, answers in both forms."""
    rng = np.random.default_rng(0)
    prompts = [sample_spec(rng, 4, bool(rng.random() < 0.5)).text for _ in range(400)]
    corpus = list(prompts) + list(extra)
    paths = sorted(Path(dimensions_dir).glob("*.yaml"))
    if not paths:  # without the checklists the tokenizer would silently lack their vocabulary
        raise FileNotFoundError(f"no checklist YAMLs in {dimensions_dir}")
    for path in paths:
        checklist = Checklist.from_yaml(path)
        for q in checklist.questions:
            for prompt in prompts[:20]:
                corpus.append(f"{fill_prompt(q.text, prompt)} Answer: yes")
                corpus.append(f"{fill_prompt(q.text, prompt)} Answer: no")
    return corpus


def train_tokenizer(
    corpus: Iterable[str], special_tokens: list[str], vocab_size: int = 1024
) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=BASE_TOKENS + special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_special_tokens=special_tokens,
    )
