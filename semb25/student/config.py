"""The student's hyper-parameters, saved beside its weights as versioned JSON."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_VERSION = 1
CONFIG_FILE = "semb25_config.json"


@dataclass(frozen=True)
class StudentConfig:
    """Shape and initialisation of a :class:`SemanticBM25Circuit`.

    Defaults were chosen on the offline demo's validation split (65 held-out
    dev-sample queries, all-MiniLM-L6-v2 teacher, 250 steps): the defaults
    reached a best validation nDCG@10 of 0.457 (Kendall tau to the teacher
    0.29). Each alternative we measured peaked lower: init_temperature 30,
    idf_init "probe", (in ``TrainConfig``) learning rate 0.003, temperature
    0.3 and Margin-MSE alone (all about 0.45 or below); 8 soft heads 0.400;
    train_embeddings 0.448; the exact head starting at 0.8 of the head
    weight with init_temperature 20, 0.412; one context layer 0.422 (tau
    0.27), at about a fifth of the training steps per second on a CPU.
    head_dim was not varied.

    Attributes:
        vocab_size, hidden_size: the teacher's token-embedding matrix shape.
        n_heads: soft-matching heads h (each with its own W_Q^h, W_K^h, k1_h, b_h).
        head_dim: width of each head's query/key projection.
        exact_match_head: add one head whose attention is exact id identity
            (classic lexical TF), so the student contains BM25 as a sub-model.
        train_embeddings: fine-tune the teacher's token embeddings too.
        context_layers: light self-attention layers (0, 1 or 2) applied to
            each text's embeddings before soft matching (see
            :mod:`semb25.student.contextualiser`); 0 keeps every token's
            match a function of its id alone.
        context_heads, context_dim: heads and total width of those layers.
        max_query_len, max_doc_len: word pieces kept (longer inputs truncated).
        avgdl: mean document length in word pieces of the training collection.
        init_k1, init_b: BM25-style starting values for every head.
        init_temperature: sharpness tau of the soft match exp(tau (cos - 1)).
        idf_init: ``"svd"``: u starts as the top singular direction (the
            study's IDF direction), sign and scale fitted to corpus IDF;
            ``"probe"``: u starts as the least-squares IDF probe direction.
        pad_id: the tokenizer's [PAD] id.
        special_ids: ids never scored as query terms nor counted in |d|.
    """

    vocab_size: int = 30522
    hidden_size: int = 384
    n_heads: int = 4
    head_dim: int = 32
    exact_match_head: bool = True
    train_embeddings: bool = False
    context_layers: int = 0
    context_heads: int = 4
    context_dim: int = 64
    max_query_len: int = 32
    max_doc_len: int = 256
    avgdl: float = 80.0
    init_k1: float = 1.2
    init_b: float = 0.75
    init_temperature: float = 10.0
    idf_init: str = "svd"
    pad_id: int = 0
    special_ids: tuple[int, ...] = field(default=(0, 100, 101, 102, 103))
    version: int = CONFIG_VERSION

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = {"int": int, "float": (int, float), "bool": bool, "str": str}.get(
                str(f.type)
            )
            if kind and (
                not isinstance(value, kind)
                or (kind is not bool and isinstance(value, bool))
            ):
                raise ValueError(
                    f"student config: {f.name} expected {f.type}, got {value!r}"
                )
        checks = [
            (self.n_heads >= 1, "n_heads must be >= 1 (the exact-match head is extra)"),
            (self.head_dim >= 1, "head_dim must be >= 1"),
            (0 <= self.context_layers <= 2, "context_layers must be 0, 1 or 2"),
            (
                self.context_heads >= 1
                and self.context_dim >= 1
                and self.context_dim % self.context_heads == 0,
                "context_dim must be a positive multiple of context_heads",
            ),
            (
                self.max_query_len >= 1 and self.max_doc_len >= 1,
                "max_query_len and max_doc_len must be >= 1",
            ),
            (self.avgdl > 0, "avgdl must be > 0"),
            (self.init_k1 > 0, "init_k1 must be > 0"),
            (0 < self.init_b < 1, "init_b must be in (0, 1)"),
            (self.init_temperature > 0, "init_temperature must be > 0"),
            (self.idf_init in ("svd", "probe"), "idf_init must be 'svd' or 'probe'"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"student config: {message}")

    @property
    def total_heads(self) -> int:
        """Soft heads plus the exact-match head, if any."""
        return self.n_heads + int(self.exact_match_head)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["special_ids"] = list(self.special_ids)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> StudentConfig:
        """Build from a dict, rejecting unknown fields and future versions."""
        d = {k: v for k, v in d.items() if k != "provenance"}  # metadata only
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{source}: unknown student config field(s) {unknown}")
        version = d.get("version", CONFIG_VERSION)
        if not isinstance(version, int) or version > CONFIG_VERSION:
            raise ValueError(
                f"{source}: config version {version!r} is newer than this semb25 "
                f"(supports <= {CONFIG_VERSION}); upgrade semb25"
            )
        d = dict(d)
        if "special_ids" in d:
            d["special_ids"] = tuple(int(i) for i in d["special_ids"])
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> StudentConfig:
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"student config {path}: file not found") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"student config {path}: not valid JSON ({e})") from None
        if not isinstance(d, dict):
            raise ValueError(f"student config {path}: expected a JSON object")
        return cls.from_dict(d, source=f"student config {path}")
