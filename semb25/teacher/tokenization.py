"""WordPiece tokenisation of teacher inputs with the checkpoint's own tokenizer.

- Cross-encoder pairs: ``[CLS] q [SEP] d [SEP]``, ``token_type_ids`` 0 over
  ``[CLS] q [SEP]`` and 1 over ``d [SEP]``; when too long, "longest first"
  truncation (drop a token from the longer of q and d until the pair fits), as
  ``transformers`` and sentence-transformers' ``CrossEncoder`` do.
- Bi-encoder texts: ``[CLS] t [SEP]`` cut to ``max_length`` tokens.

The tokenizer is the checkpoint's ``tokenizer.json``, or, without it, a
``tokenizers`` WordPiece built from ``vocab.txt`` with BERT normalisation
(lowercasing per ``tokenizer_config.json``'s ``do_lower_case``, default true).

Text is cleaned first so that any Python ``str`` is accepted: lone UTF-16
surrogates (invalid UTF-8, e.g. ``"\\udcff"``) become U+FFFD and control
characters other than tab/newline/CR are deleted, as BERT's own normaliser does
(so MS MARCO's mojibake, e.g. ``"\\xe2\\x80\\x99"``, tokenises exactly as in
``transformers``). Texts are also cut to ``max_chars`` characters before
tokenising, which keeps 20,000-character passages cheap; the default (64
characters per token of ``max_length``) changes nothing for natural text.

Usage::

    tok = load_tokenizer(checkpoint_dir)
    enc = encode_pairs(tok, ["what is bm25"], ["BM25 is a ranking function."], 512)
    enc.input_ids[0]      # list[int], unpadded
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer

from semb25.text import clean_text

CHARS_PER_TOKEN = 64


@dataclasses.dataclass
class Encoded:
    """Unpadded token ids of n inputs (each a list of length L_i <= max_length)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    tokens: list[list[str]]

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


def load_tokenizer(checkpoint_dir: str | Path) -> Tokenizer:
    """The checkpoint's tokenizer with its own padding/truncation switched off."""
    directory = Path(checkpoint_dir)
    tokenizer_file = directory / "tokenizer.json"
    if tokenizer_file.is_file():
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
    elif (directory / "vocab.txt").is_file():
        lowercase = True
        config_file = directory / "tokenizer_config.json"
        if config_file.is_file():
            lowercase = bool(
                json.loads(config_file.read_text()).get("do_lower_case", True)
            )
        tokenizer = BertWordPieceTokenizer(
            str(directory / "vocab.txt"), lowercase=lowercase
        )._tokenizer
    else:
        raise ValueError(f"checkpoint {directory}: no tokenizer.json or vocab.txt")
    # We pad and truncate ourselves (per batch, to bucket sizes); a tokenizer.json
    # saved with fixed padding (all-MiniLM-L6-v2 pads to 128) would fight that.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def encode_pairs(
    tokenizer: Tokenizer,
    queries: Sequence[str],
    docs: Sequence[str],
    max_length: int,
    max_chars: int | None = None,
) -> Encoded:
    """``[CLS] q [SEP] d [SEP]`` per pair, longest-first truncated to max_length."""
    if len(queries) != len(docs):
        raise ValueError(f"encode_pairs: {len(queries)} queries but {len(docs)} docs")
    max_chars = max_chars or CHARS_PER_TOKEN * max_length
    pairs = [
        (clean_text(q, max_chars), clean_text(d, max_chars))
        for q, d in zip(queries, docs, strict=True)
    ]
    tokenizer.enable_truncation(max_length, strategy="longest_first")
    try:
        encodings = tokenizer.encode_batch(pairs)
    finally:
        tokenizer.no_truncation()
    return Encoded(
        [e.ids for e in encodings],
        [e.type_ids for e in encodings],
        [e.tokens for e in encodings],
    )


def encode_texts(
    tokenizer: Tokenizer,
    texts: Sequence[str],
    max_length: int,
    max_chars: int | None = None,
) -> Encoded:
    """``[CLS] t [SEP]`` per text, truncated to max_length tokens."""
    max_chars = max_chars or CHARS_PER_TOKEN * max_length
    tokenizer.enable_truncation(max_length)
    try:
        encodings = tokenizer.encode_batch([clean_text(t, max_chars) for t in texts])
    finally:
        tokenizer.no_truncation()
    return Encoded(
        [e.ids for e in encodings],
        [e.type_ids for e in encodings],
        [e.tokens for e in encodings],
    )
