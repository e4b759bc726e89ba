"""The teacher: a MiniLM cross- or bi-encoder that scores (query, doc) pairs.

- cross (``cross-encoder/ms-marco-MiniLM-L-6-v2``): ``score(q, d)`` is the logit
  of ``[CLS] q [SEP] d [SEP]``.
- bi (``sentence-transformers/all-MiniLM-L6-v2``, the offline default):
  ``score(q, d) = e(q) . e(d)``, unit-norm mean-pooled embeddings (cosine). Each
  distinct query and doc text is embedded once, however many pairs it is in.

Speed: inputs are sorted by token length (globally), cut into batches of
``batch_size``, and each batch is padded to a bucketed length (``bucket_length``:
the next multiple of ``max(bucket, 2^floor(log2 n) / 8)``, i.e. steps of
``bucket`` = 8 tokens up to 128, then at most 1/8 padding), so XLA compiles a
bounded set of shapes (at most 24 for 256 tokens, 32 for 512; each compile
takes about a second on a 2-core CPU, once per process) of one jit-compiled
pure function. Buckets of 8 instead of 32 pad 11% fewer tokens on TREC DL
passages, which is most of our speed against sentence-transformers (see
eval/bench_teacher.py). Batches are data-parallel over ``jax.local_devices()``:
a 1-D ``Mesh`` with the batch axis sharded (``NamedSharding(mesh, P("batch"))``)
and the parameters replicated; the batch is padded to a multiple of the device
count. Results do not depend on the device count beyond float rounding.

Multi-host: call ``jax.distributed.initialize()`` first in every process, give
each process its own slice of the pairs (e.g. ``pairs[jax.process_index()::
jax.process_count()]``), score it with a Teacher here (it shards over that host's
local devices only, no cross-host traffic), and merge the per-process outputs
(one run file or score store per process). Inputs are not sharded across hosts.

Usage::

    teacher = load_teacher("sentence-transformers/all-MiniLM-L6-v2")
    teacher.score(["what is bm25"], ["BM25 is a ranking function."])  # [1] float32
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
import tokenizers
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from semb25.teacher.bert import bert_forward
from semb25.teacher.checkpoint import BUNDLED_IDS, Checkpoint, load_checkpoint
from semb25.teacher.tokenization import (
    Encoded,
    encode_pairs,
    encode_texts,
    load_tokenizer,
)

log = logging.getLogger(__name__)

ATTENTION_BATCH = 8  # attention maps are [batch, layers, heads, L, L]: keep it small
BUCKET = 8  # default padding step (tokens)
STEPS_PER_OCTAVE = 8  # longer inputs: steps of 2^floor(log2 n) / 8 (<= 1/8 padding)


def bucket_length(n_tokens: int, bucket: int, max_length: int) -> int:
    """The padded length of a batch whose longest input has n_tokens tokens.

    The next multiple of ``step = max(bucket, 2^floor(log2 n) / 8)``, at most
    max_length: steps of ``bucket`` for short inputs, then padding of at most
    1/8 of the length, so that long inputs need few compiled shapes.
    """
    n = max(n_tokens, 1)
    step = max(bucket, (1 << (n.bit_length() - 1)) // STEPS_PER_OCTAVE)
    return min(max_length, step * math.ceil(n / step))


def plan_batches(
    lengths: Sequence[int], batch_size: int, bucket: int, max_length: int
) -> list[tuple[np.ndarray, int]]:
    """Batches of input indices, longest first, each with its padded length."""
    lengths_arr = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths_arr, kind="stable")
    return [
        (idx, bucket_length(int(lengths_arr[idx].max()), bucket, max_length))
        for idx in (order[s : s + batch_size] for s in range(0, len(order), batch_size))
    ]


class Teacher:
    """A loaded teacher; build it with ``load_teacher``."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        name: str,
        max_length: int = 512,
        batch_size: int = 32,
        show_progress: bool = True,
        bucket: int = BUCKET,
    ):
        self.name = name
        self.kind = checkpoint.kind
        self.checkpoint_dir = checkpoint.directory
        self.config: dict[str, Any] = checkpoint.config
        self.tokenizer: tokenizers.Tokenizer = load_tokenizer(checkpoint.directory)
        cfg = checkpoint.model.cfg
        self.n_layers, self.n_heads = cfg.num_hidden_layers, cfg.num_attention_heads
        limits = [max_length, cfg.max_position_embeddings]
        if self.kind == "bi" and checkpoint.max_seq_length:
            limits.append(checkpoint.max_seq_length)
        self.max_length = min(limits)
        self.show_progress = show_progress
        self.bucket = bucket

        # Data parallel: the batch axis is split over local devices, params replicated.
        self.devices = jax.local_devices()
        self._mesh = Mesh(np.array(self.devices), ("batch",))
        self._batch_sharding = NamedSharding(self._mesh, P("batch"))
        self._replicated = NamedSharding(self._mesh, P())
        self.batch_size = self._round_batch(batch_size)
        self._graphdef, state = nnx.split(checkpoint.model)
        self._state = jax.device_put(state, self._replicated)

        self.n_params = int(sum(x.size for x in jax.tree.leaves(self._state)))
        self.token_embeddings = np.asarray(
            checkpoint.model.embeddings.word.embedding.value, dtype=np.float32
        )

    def _round_batch(self, batch_size: int) -> int:
        n = len(self.devices)
        return max(n, n * math.ceil(batch_size / n))

    def __repr__(self) -> str:
        return (
            f"Teacher({self.name!r}, kind={self.kind!r}, {self.n_params / 1e6:.1f}M "
            f"params, max_length={self.max_length}, devices={len(self.devices)})"
        )

    # -- public API ---------------------------------------------------------

    def score(
        self,
        queries: Sequence[str],
        docs: Sequence[str],
        batch_size: int | None = None,
        show_progress: bool | None = None,
        head_ablation: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Scores of the pairs ``(queries[i], docs[i])``: ``[n] float32``.

        ``head_ablation = (ablate [layers, heads] bool, mean [layers, heads,
        head_dim])`` mean-ablates the chosen heads (see bert.py).
        """
        if len(queries) != len(docs):
            raise ValueError(f"score: {len(queries)} queries but {len(docs)} docs")
        if len(queries) == 0:
            return np.zeros(0, dtype=np.float32)
        if self.kind == "bi":
            # Embed each distinct text once; a pair's score is a dot product.
            index: dict[str, int] = {}
            q_rows = [index.setdefault(q, len(index)) for q in queries]
            d_rows = [index.setdefault(d, len(index)) for d in docs]
            emb = self._embed(list(index), batch_size, show_progress, head_ablation)
            return np.einsum("nd,nd->n", emb[q_rows], emb[d_rows]).astype(np.float32)
        encoded = encode_pairs(self.tokenizer, queries, docs, self.max_length)
        out = self._run(encoded, "scores", batch_size, show_progress, head_ablation)
        return out.astype(np.float32)

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Unit-norm embeddings ``[n, hidden] float32`` (bi-encoders only)."""
        if self.kind != "bi":
            raise ValueError(
                f"teacher {self.name}: embed() needs a bi-encoder, not {self.kind}"
            )
        return self._embed(list(texts), batch_size, show_progress, None)

    def attentions(
        self,
        queries: Sequence[str],
        docs: Sequence[str],
        batch_size: int = ATTENTION_BATCH,
        show_progress: bool | None = None,
    ) -> list[dict[str, Any]]:
        """Per pair: ``tokens`` (list[str], length L), ``token_type_ids [L]``,
        ``query_positions`` / ``doc_positions`` (indices of q and d tokens,
        special tokens excluded), ``attention [layers, heads, L, L] float32``.

        The input is the cross-encoder pair ``[CLS] q [SEP] d [SEP]`` for either
        kind; for a bi-encoder that is an input it was not trained on.
        """
        encoded = encode_pairs(self.tokenizer, queries, docs, self.max_length)
        results: list[dict[str, Any]] = [{} for _ in queries]
        for idx, _, out in self._batches(
            encoded,
            self._round_batch(batch_size),
            show_progress,
            None,
            return_attentions=True,
            desc="teacher attentions",
        ):
            maps = np.asarray(out["attentions"])  # [batch, layers, heads, Lpad, Lpad]
            for row, i in enumerate(idx):
                n = len(encoded.input_ids[i])
                types = np.asarray(encoded.token_type_ids[i], dtype=np.int32)
                q_pos, d_pos = np.flatnonzero(types == 0), np.flatnonzero(types == 1)
                results[i] = {
                    "tokens": encoded.tokens[i],
                    "token_type_ids": types,
                    "query_positions": q_pos[1:-1],  # drop [CLS] and the first [SEP]
                    "doc_positions": d_pos[:-1],  # drop the final [SEP]
                    "attention": maps[row, :, :, :n, :n].copy(),
                }
        return results

    # -- batching -----------------------------------------------------------

    def _embed(self, texts, batch_size, show_progress, head_ablation) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.config["hidden_size"]), dtype=np.float32)
        encoded = encode_texts(self.tokenizer, texts, self.max_length)
        return self._run(
            encoded, "embeddings", batch_size, show_progress, head_ablation
        )

    def _run(
        self, encoded: Encoded, key: str, batch_size, show_progress, head_ablation
    ):
        """One output (``scores [n]`` or ``embeddings [n, hidden]``) in input order."""
        batch_size = self._round_batch(batch_size or self.batch_size)
        parts: list[tuple[np.ndarray, jax.Array]] = []
        # Keep device results un-fetched until the end so dispatch runs ahead.
        for idx, _, out in self._batches(
            encoded, batch_size, show_progress, head_ablation, desc=f"teacher {key}"
        ):
            parts.append((idx, out[key]))
        first = np.asarray(parts[0][1])
        result = np.empty((len(encoded.input_ids), *first.shape[1:]), dtype=np.float32)
        for idx, values in parts:
            result[idx] = np.asarray(values)[: len(idx)]
        return result

    def _batches(
        self,
        encoded: Encoded,
        batch_size: int,
        show_progress,
        head_ablation,
        return_attentions: bool = False,
        desc: str = "teacher",
    ):
        """Yield ``(indices, padded_len, outputs)`` per length-bucketed batch."""
        plan = plan_batches(encoded.lengths, batch_size, self.bucket, self.max_length)
        ablation = None
        if head_ablation is not None:
            ablation = jax.device_put(
                (
                    np.asarray(head_ablation[0], dtype=bool),
                    np.asarray(head_ablation[1], dtype=np.float32),
                ),
                self._replicated,
            )
        show = self.show_progress if show_progress is None else show_progress
        for idx, length in tqdm(plan, desc=desc, unit="batch", disable=not show):
            # Fixed batch size and bucketed length: a few compiled shapes in all.
            ids = np.zeros((batch_size, length), dtype=np.int32)
            types = np.zeros((batch_size, length), dtype=np.int32)
            mask = np.zeros((batch_size, length), dtype=np.int32)
            for row, i in enumerate(idx):
                n = len(encoded.input_ids[i])
                ids[row, :n] = encoded.input_ids[i]
                types[row, :n] = encoded.token_type_ids[i]
                mask[row, :n] = 1
            mask[len(idx) :, 0] = 1  # padding rows attend to something: no NaN
            arrays = jax.device_put((ids, types, mask), self._batch_sharding)
            out = bert_forward(
                self._graphdef,
                self._state,
                *arrays,
                head_ablation=ablation,
                return_attentions=return_attentions,
            )
            yield idx, length, out


def teacher_name(id_or_dir: str | Path) -> str:
    """A stable name: the hub id as given (bundled ids in full), else the dir name."""
    path = Path(id_or_dir).expanduser()
    if path.is_dir():
        return path.resolve().name
    if str(id_or_dir) in BUNDLED_IDS:
        return BUNDLED_IDS[0]
    return str(id_or_dir)


def load_teacher(
    id_or_dir: str,
    kind: str | None = None,
    max_length: int = 512,
    batch_size: int = 32,
    show_progress: bool = True,
    bucket: int = BUCKET,
) -> Teacher:
    """Load a MiniLM teacher from a hub id or a local Hugging Face directory."""
    checkpoint = load_checkpoint(id_or_dir, kind=kind)
    teacher = Teacher(
        checkpoint,
        teacher_name(id_or_dir),
        max_length=max_length,
        batch_size=batch_size,
        show_progress=show_progress,
        bucket=bucket,
    )
    log.info(
        "loaded teacher %s (%s): %.1fM params, %d layers, from %s",
        teacher.name,
        teacher.kind,
        teacher.n_params / 1e6,
        teacher.n_layers,
        teacher.checkpoint_dir,
    )
    return teacher
