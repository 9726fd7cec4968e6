"""A character-level tokenizer built with ``tokenizers``, saved so ``AutoTokenizer`` loads it.

Characters rather than BPE pieces because the string skills (reverse, rotate, ...) act on letters:
with one token per letter they are attention patterns a small low-rank update can learn, whereas
a sub-word vocabulary would hide the letters inside tokens.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"


def build_tokenizer(texts: Iterable[str]) -> Tokenizer:
    """Train a character vocabulary on ``texts``; encoding adds ``<s>`` in front, decoding joins characters."""
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    trainer = trainers.WordLevelTrainer(special_tokens=[PAD, BOS, EOS, UNK], min_frequency=1)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)])
    return tokenizer


def save_tokenizer(tokenizer: Tokenizer, repo: Path, max_length: int) -> None:
    """Write ``tokenizer.json`` plus the config files ``AutoTokenizer.from_pretrained`` reads."""
    tokenizer.save(str(repo / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS, "eos_token": EOS, "pad_token": PAD, "unk_token": UNK,
        "model_max_length": max_length, "padding_side": "right", "clean_up_tokenization_spaces": False,
    }
    (repo / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    specials = {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD, "unk_token": UNK}
    (repo / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")
