"""Word-piece inputs of the student: ids without specials, explicit masks.

The student reads queries and documents separately (it never sees the
``[CLS] q [SEP] d [SEP]`` pair), through the teacher's own ``tokenizer.json``
so that its token ids index the teacher's embedding matrix.

Limitation: documents longer than ``max_doc_len`` word pieces are truncated,
so soft TF undercounts matches after the cut and |d| is capped there.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from semb25.text import clean_text


def bucket(n: int, minimum: int, maximum: int | None = None) -> int:
    """``n`` rounded up to a power of two in [minimum, maximum].

    Padding every array dimension to such buckets keeps the number of shapes
    XLA compiles small (a handful per dimension) at under 2x padding.
    """
    width = max(minimum, 1 << max(0, int(n) - 1).bit_length())
    return width if maximum is None else max(minimum, min(width, maximum))


@dataclass(frozen=True)
class Batch:
    """Padded word-piece ids.

    Attributes:
        ids: ``[n, length]`` int32, ``pad_id`` after each text.
        mask: ``[n, length]`` bool, True on real (non-special) word pieces.
        truncated: ``[n]`` bool, True where the text was cut at the limit.
    """

    ids: np.ndarray
    mask: np.ndarray
    truncated: np.ndarray


class StudentTokenizer:
    """The teacher's WordPiece tokenizer, configured for the student."""

    def __init__(self, tokenizer: Tokenizer, pad_id: int, special_ids: Sequence[int]):
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.pad_id = pad_id
        self.special_ids = np.asarray(sorted(set(special_ids)), dtype=np.int64)

    @classmethod
    def from_file(
        cls, path: str | Path, pad_id: int = 0, special_ids: Sequence[int] = ()
    ) -> StudentTokenizer:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer {path}: file not found")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # the Rust error type is not exported
            raise ValueError(
                f"tokenizer {path}: not a tokenizers JSON file ({e})"
            ) from None
        return cls(tok, pad_id, special_ids)

    def to_str(self) -> str:
        return self.tokenizer.to_str()

    def token_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Word-piece ids of each text, special tokens dropped.

        ``encode_batch_fast`` skips the character offsets the student never
        reads; the specials are filtered once over all texts, not per text.
        """
        cleaned = [clean_text(t) for t in texts]
        encode = getattr(self.tokenizer, "encode_batch_fast", None)
        if encode is None:  # tokenizers < 0.21
            encode = self.tokenizer.encode_batch
        ids = [e.ids for e in encode(cleaned, add_special_tokens=False)]
        lengths = np.fromiter(map(len, ids), np.int64, len(ids))
        flat = np.fromiter(itertools.chain.from_iterable(ids), np.int64)
        keep = ~np.isin(flat, self.special_ids)
        owner = np.repeat(np.arange(len(texts)), lengths)
        kept = np.bincount(owner[keep], minlength=len(texts))
        return np.split(flat[keep], np.cumsum(kept)[:-1]) if len(texts) else []

    def tokens(self, ids: Sequence[int]) -> list[str]:
        return [self.tokenizer.id_to_token(int(i)) or "[?]" for i in ids]

    def batch(
        self,
        texts: Sequence[str],
        max_len: int,
        pad_to: int | None = None,
        min_width: int = 32,
    ) -> Batch:
        """Tokenise, truncate to ``max_len`` and pad to a bucketed length."""
        return self.pad(self.token_ids(texts), max_len, pad_to, min_width)

    def pad(
        self,
        id_lists: Sequence[np.ndarray],
        max_len: int,
        pad_to: int | None = None,
        min_width: int = 32,
    ) -> Batch:
        """Pad pre-tokenised ids; width = ``pad_to`` or the bucketed longest."""
        lengths = np.array([min(len(x), max_len) for x in id_lists], dtype=np.int64)
        longest = int(lengths.max()) if len(lengths) else 0
        width = pad_to or bucket(longest, min(min_width, max_len), max_len)
        ids = np.full((len(id_lists), width), self.pad_id, dtype=np.int32)
        for row, (x, n) in enumerate(zip(id_lists, lengths, strict=True)):
            ids[row, :n] = x[:n]
        mask = np.arange(width)[None, :] < lengths[:, None]
        truncated = np.array([len(x) > max_len for x in id_lists], dtype=bool)
        return Batch(ids=ids, mask=mask, truncated=truncated)
