"""A tiny fixed-vocabulary tokenizer for task instructions (no downloads, no training).

Lower-cases, splits into words and digits, and maps each to an id from ``VOCAB``; unknown
words map to ``<unk>``. The vocabulary is stored in every checkpoint's config so a model
always decodes instructions the way it was trained.
"""

from __future__ import annotations

import re

import numpy as np

PAD, UNK = "<pad>", "<unk>"
VOCAB: tuple[str, ...] = (
    PAD,
    UNK,
    *"0123456789",
    "install",
    "nut",
    "nuts",
    "screw",
    "screws",
    "drive",
    "fasten",
    "tighten",
    "thread",
    "per",
    "each",
    "side",
    "sides",
    "both",
    "left",
    "right",
    "on",
    "in",
    "into",
    "the",
    "a",
    "of",
    "and",
    "to",
    "from",
    "at",
    "with",
    "casting",
    "part",
    "stud",
    "studs",
    "hole",
    "holes",
    "tapped",
    "pick",
    "place",
    "move",
    "conveyor",
    "fixture",
    "feeder",
    "bin",
    "put",
    "take",
    "handle",
    "material",
    "handling",
    "dual",
    "arm",
    "arms",
    "position",
    "positions",
    "self",
    "tapping",
    "all",
    "up",
    "down",
    "onto",
    "set",
)
_WORD = re.compile(r"[a-z]+|[0-9]")


class Tokenizer:
    """Maps text to a fixed-length int64 id array padded with ``<pad>`` (id 0)."""

    def __init__(self, vocab: tuple[str, ...] = VOCAB, max_len: int = 16) -> None:
        if vocab[:2] != (PAD, UNK):
            raise ValueError("vocab must start with <pad>, <unk>")
        self.vocab = tuple(vocab)
        self.max_len = max_len
        self._ids = {w: i for i, w in enumerate(self.vocab)}

    def encode(self, text: str) -> np.ndarray:
        ids = [self._ids.get(w, 1) for w in _WORD.findall(text.lower())][: self.max_len]
        out = np.zeros(self.max_len, dtype=np.int64)
        out[: len(ids)] = ids
        return out
