"""A precomputed document index, so reranking costs only query-side work.

Without a contextualiser, everything the circuit needs from a document is its
word-piece ids: the key projections live in per-vocabulary tables, and the
query's match against the whole vocabulary is computed once per query. The
index stores each passage's ids (truncated to ``max_doc_len``) as two flat
arrays, saved as ``.npz`` with ``allow_pickle=False``.

A contextual student's key vectors depend on each passage's other word
pieces, so its index also stores them, ``[total, heads, head_dim]`` float32
per word piece (512 bytes per word piece at 4 x 32: about 40 kB per MS MARCO
passage). They belong to those exact weights: the index keeps a fingerprint
of the parameters they were computed with and refuses any other student.

>>> index = DocIndex.build(model, {"d1": "Fleas are insects."})  # doctest: +SKIP
>>> index.save("dl19.index.npz")                                    # doctest: +SKIP
>>> model.rerank("what is a flea", ["d1"], index=index)           # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semb25.atomic import atomic_write_bytes

INDEX_VERSION = 1


@dataclass(frozen=True)
class DocIndex:
    """Word-piece ids of a collection's passages.

    Attributes:
        doc_ids: ``n`` passage ids.
        offsets: ``[n + 1]`` int64, passage k is ``tokens[offsets[k]:offsets[k+1]]``.
        tokens: ``[total]`` int32 word-piece ids (specials dropped, truncated).
        max_doc_len: the student's limit the ids were truncated to.
        tokenizer_sha: fingerprint of the tokenizer, checked at use.
        keys: ``[total, heads, head_dim]`` float32 contextual key vectors, or
            None for a context-free student.
        weights_sha: fingerprint of the student parameters the keys were
            computed with ("" without keys).
        source: the file it was loaded from, for error messages.
    """

    doc_ids: list[str]
    offsets: np.ndarray
    tokens: np.ndarray
    max_doc_len: int
    tokenizer_sha: str
    keys: np.ndarray | None = None
    weights_sha: str = ""
    source: str = "(in memory)"

    @classmethod
    def build(
        cls,
        model,
        docs: Mapping[str, str],
        batch: int = 4096,
        show_progress: bool = False,
    ) -> DocIndex:
        """Tokenise every passage of ``docs`` (and, for a contextual student,
        compute its key vectors)."""
        from tqdm.auto import tqdm

        ids = list(docs)
        pieces, keys = [], []
        starts = range(0, len(ids), batch)
        for start in tqdm(starts, desc="indexing", disable=not show_progress):
            chunk = ids[start : start + batch]
            tokens = [
                t[: model.config.max_doc_len]
                for t in model.tokenizer.token_ids([docs[d] for d in chunk])
            ]
            pieces += tokens
            if model.circuit.contextual:
                keys += model.doc_key_vectors(tokens)
        offsets = np.zeros(len(ids) + 1, np.int64)
        offsets[1:] = np.cumsum([len(p) for p in pieces])
        tokens = (
            np.concatenate(pieces).astype(np.int32) if pieces else np.zeros(0, np.int32)
        )
        key_array = None
        if model.circuit.contextual:
            cfg = model.config
            key_array = (
                np.concatenate(keys).astype(np.float32)
                if keys
                else np.zeros((0, cfg.n_heads, cfg.head_dim), np.float32)
            )
        return cls(
            ids,
            offsets,
            tokens,
            model.config.max_doc_len,
            _tokenizer_sha(model),
            key_array,
            model.weights_fingerprint() if key_array is not None else "",
        )

    def __len__(self) -> int:
        return len(self.doc_ids)

    def token_ids(self, doc_ids: Sequence[str]) -> list[np.ndarray]:
        """The stored ids of ``doc_ids`` (KeyError naming an unknown id)."""
        return self._rows(self.tokens, doc_ids)

    def key_vectors(self, doc_ids: Sequence[str]) -> list[np.ndarray] | None:
        """The stored ``[len, heads, head_dim]`` keys of ``doc_ids`` (or None)."""
        return None if self.keys is None else self._rows(self.keys, doc_ids)

    def _rows(self, flat: np.ndarray, doc_ids: Sequence[str]) -> list[np.ndarray]:
        """Each passage's slice of a flat per-word-piece array."""
        position = self._positions()
        out = []
        for d in doc_ids:
            if d not in position:
                raise KeyError(f"document index {self.source}: unknown doc id {d!r}")
            k = position[d]
            out.append(flat[self.offsets[k] : self.offsets[k + 1]])
        return out

    def _positions(self) -> dict[str, int]:
        cached = self.__dict__.get("_pos")
        if cached is None:
            cached = {d: k for k, d in enumerate(self.doc_ids)}
            object.__setattr__(self, "_pos", cached)
        return cached

    def check(self, model) -> None:
        """Refuse an index built with another tokenizer or length limit."""
        if self.tokenizer_sha != _tokenizer_sha(model):
            raise ValueError(
                f"document index {self.source}: built with another tokenizer "
                "than this student's; rebuild it"
            )
        if self.max_doc_len != model.config.max_doc_len:
            raise ValueError(
                f"document index {self.source}: truncated at {self.max_doc_len} word "
                f"pieces, the student uses {model.config.max_doc_len}"
            )
        if model.circuit.contextual and self.keys is None:
            raise ValueError(
                f"document index {self.source}: holds no key vectors, and this "
                "student is contextual; rebuild the index with it"
            )
        if self.keys is not None and self.weights_sha != model.weights_fingerprint():
            raise ValueError(
                f"document index {self.source}: its key vectors were computed by "
                "a student with other weights; rebuild the index with this one"
            )

    def save(self, path: str | Path) -> Path:
        buf = io.BytesIO()
        meta = {
            "version": INDEX_VERSION,
            "max_doc_len": self.max_doc_len,
            "tokenizer_sha": self.tokenizer_sha,
            "weights_sha": self.weights_sha,
        }
        extra = {} if self.keys is None else {"keys": self.keys}
        np.savez(
            buf,
            offsets=self.offsets,
            tokens=self.tokens,
            doc_ids=np.asarray(self.doc_ids, dtype=np.str_),
            meta=np.asarray(json.dumps(meta)),
            **extra,
        )
        return atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> DocIndex:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                arrays = {k: z[k] for k in ("offsets", "tokens", "doc_ids")}
                keys = z["keys"] if "keys" in z.files else None
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(
                f"document index {path}: unreadable, not an index written by "
                f"DocIndex.save ({type(e).__name__})"
            ) from None
        if meta.get("version", 0) > INDEX_VERSION:
            raise ValueError(
                f"document index {path}: version {meta['version']} is "
                "newer than this semb25"
            )
        if len(arrays["offsets"]) != len(arrays["doc_ids"]) + 1:
            raise ValueError(f"document index {path}: offsets do not match doc ids")
        if keys is not None and len(keys) != len(arrays["tokens"]):
            raise ValueError(
                f"document index {path}: {len(keys)} key vectors for "
                f"{len(arrays['tokens'])} word pieces"
            )
        return cls(
            [str(d) for d in arrays["doc_ids"]],
            arrays["offsets"],
            arrays["tokens"],
            int(meta["max_doc_len"]),
            meta["tokenizer_sha"],
            keys,
            meta.get("weights_sha", ""),
            str(path),
        )


def _tokenizer_sha(model) -> str:
    import hashlib

    return hashlib.sha256(model.tokenizer.to_str().encode()).hexdigest()[:16]
