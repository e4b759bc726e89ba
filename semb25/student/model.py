"""``SemanticBM25``: the trained student as a reranking library.

>>> import semb25                                         # doctest: +SKIP
>>> model = semb25.SemanticBM25.from_pretrained("runs/demo")  # doctest: +SKIP
>>> model.rerank("what is a flea", ["Fleas are insects.", "Paris"])  # doctest: +SKIP
[(0, 4.1), (1, 0.3)]
>>> ex = model.explain("what is a flea", "Fleas are insects.")  # doctest: +SKIP
>>> print(ex.to_text())                                       # doctest: +SKIP

``predict(pairs)`` and ``rank(query, documents)`` follow the shapes of
sentence-transformers' ``CrossEncoder`` so the student drops into pipelines
built around one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from semb25.corpus import CorpusStats
from semb25.student.circuit import SemanticBM25Circuit, fit_idf_to_corpus
from semb25.student.config import StudentConfig
from semb25.student.contextualiser import context_flops_per_token
from semb25.student.explain import Explanation, explain_pair
from semb25.student.index import DocIndex
from semb25.student.tokenization import Batch, StudentTokenizer, bucket
from semb25.student.weights import load_student, resolve_student_dir, save_student

log = logging.getLogger(__name__)


class SemanticBM25:
    """A SemanticBM25 circuit with its tokenizer, ready to score text."""

    def __init__(
        self,
        circuit: SemanticBM25Circuit,
        tokenizer: StudentTokenizer,
        batch_size: int = 256,
    ):
        self.circuit = circuit
        self.config: StudentConfig = circuit.config
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self._compiled = None
        self._keys_fn = None
        self._fingerprint = None

    # -- construction ------------------------------------------------------

    @classmethod
    def create(
        cls,
        embeddings: np.ndarray,
        tokenizer_json: str | Path | Tokenizer,
        config: StudentConfig | None = None,
        corpus: CorpusStats | None = None,
        seed: int = 0,
    ) -> SemanticBM25:
        """A fresh student from the teacher's embedding matrix and tokenizer.

        Args:
            embeddings: ``[vocab, hidden]`` teacher token embeddings.
            tokenizer_json: the teacher's ``tokenizer.json`` path (or a loaded
                ``tokenizers.Tokenizer``).
            config: shape options; vocab/hidden sizes come from ``embeddings``.
            corpus: statistics of the training collection: sets avgdl and fits
                the IDF readout to its IDF.
            seed: initialisation seed.
        """
        config = config or StudentConfig()
        if isinstance(tokenizer_json, Tokenizer):
            tok = StudentTokenizer(
                Tokenizer.from_str(tokenizer_json.to_str()),
                config.pad_id,
                config.special_ids,
            )
        else:
            tok = StudentTokenizer.from_file(
                tokenizer_json, pad_id=config.pad_id, special_ids=config.special_ids
            )
        updates = {
            "vocab_size": int(embeddings.shape[0]),
            "hidden_size": int(embeddings.shape[1]),
        }
        if corpus is not None:
            updates["avgdl"] = float(corpus.avgdl)
        config = StudentConfig.from_dict({**config.to_dict(), **updates})
        circuit = SemanticBM25Circuit(config, embeddings, rngs=nnx.Rngs(seed))
        if corpus is not None:
            a, c, r = fit_idf_to_corpus(circuit, corpus.idf, corpus.df, config.idf_init)
            log.info(
                "IDF direction fitted to corpus IDF of %d documents: Pearson "
                "r = %.3f (a = %.3f, c = %.3f)",
                corpus.n_docs,
                r,
                a,
                c,
            )
        return cls(circuit, tok)

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path) -> SemanticBM25:
        """Load a student directory (or a run directory, or a hub id)."""
        directory = resolve_student_dir(path_or_id)
        config, circuit = load_student(directory)
        tok = StudentTokenizer.from_file(
            directory / "tokenizer.json",
            pad_id=config.pad_id,
            special_ids=config.special_ids,
        )
        log.info(
            "loaded student from %s: %d soft heads%s",
            directory,
            config.n_heads,
            " + exact-match head" if config.exact_match_head else "",
        )
        return cls(circuit, tok)

    def save_pretrained(
        self, directory: str | Path, provenance: dict | None = None
    ) -> Path:
        """Write the student so that :meth:`from_pretrained` reads it back."""
        return save_student(
            directory, self.circuit, self.tokenizer.to_str(), provenance
        )

    # -- scoring -----------------------------------------------------------

    def refresh(self) -> None:
        """Forget cached tables (call after changing the circuit's weights)."""
        self._compiled = None
        self._keys_fn = None
        self._fingerprint = None

    def weights_fingerprint(self) -> str:
        """A short hash of every parameter (ties a DocIndex's keys to them)."""
        if self._fingerprint is None:
            import hashlib

            from semb25.student.weights import circuit_arrays

            digest = hashlib.sha256()
            for name, array in sorted(circuit_arrays(self.circuit).items()):
                digest.update(name.encode())
                digest.update(np.ascontiguousarray(array).tobytes())
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint

    def doc_key_vectors(self, doc_ids: Sequence[np.ndarray]) -> list[np.ndarray]:
        """A contextual student's key vectors ``[len, heads, head_dim]`` per doc."""
        if self._keys_fn is None:
            graphdef, state = nnx.split(self.circuit)

            @jax.jit
            def keys(state, ids, mask):
                return nnx.merge(graphdef, state).token_vectors(ids, mask, "key")

            self._keys_fn = (keys, state)
        keys, state = self._keys_fn
        out: list[np.ndarray] = [None] * len(doc_ids)  # type: ignore[list-item]
        lengths = np.array([min(len(d), self.config.max_doc_len) for d in doc_ids])
        order = np.argsort(lengths, kind="stable")
        rows = self.batch_size
        for start in range(0, len(order), rows):
            chosen = order[start : start + rows]
            batch = self.tokenizer.pad(
                [doc_ids[i] for i in chosen], self.config.max_doc_len
            )
            ids, mask = _pad_rows(batch.ids, batch.mask, bucket(len(chosen), 8))
            vectors = np.asarray(keys(state, ids, mask))
            for row, i in enumerate(chosen):
                out[i] = vectors[row, : lengths[i]]
        return out

    def _scorer(self):
        """Jitted ``(q_ids [1, q], q_mask, d_ids [n, d], d_mask) -> scores [n]``."""
        if self._compiled is None:
            graphdef, state = nnx.split(self.circuit)
            tables = jax.jit(lambda s: nnx.merge(graphdef, s).tables())(state)

            @jax.jit
            def score(state, tables, q_ids, q_mask, d_ids, d_mask, doc_keys=None):
                circuit = nnx.merge(graphdef, state)
                out = circuit.contributions_for_query(
                    q_ids, q_mask, d_ids, d_mask, tables=tables, doc_keys=doc_keys
                )
                return out["score"]

            self._compiled = (score, state, tables)
        score, state, tables = self._compiled
        return lambda *arrays: score(state, tables, *arrays)

    def lookup_tables(self) -> dict[str, jax.Array]:
        """The cached per-vocabulary tables of the circuit (see ``tables``)."""
        self._scorer()
        return self._compiled[2]

    def encode_queries(self, queries: Sequence[str]) -> Batch:
        """Query word pieces, padded to a bucketed width (8, 16, 32...)."""
        return self.tokenizer.batch(queries, self.config.max_query_len, min_width=8)

    def encode_docs(self, docs: Sequence[str]) -> list[np.ndarray]:
        return self.tokenizer.token_ids(docs)

    def score(
        self,
        queries: Sequence[str],
        docs: Sequence[str],
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> np.ndarray:
        """Scores of aligned pairs: ``queries[i]`` with ``docs[i]``.

        Returns:
            ``[n]`` float32.
        """
        if len(queries) != len(docs):
            raise ValueError(f"score: {len(queries)} queries but {len(docs)} docs")
        q_unique, q_index = np.unique(
            np.asarray(queries, dtype=object), return_inverse=True
        )
        q_batch = self.encode_queries(list(q_unique))
        return self.score_tokens(
            q_batch, q_index, self.encode_docs(docs), batch_size, show_progress
        )

    def score_tokens(
        self,
        q_batch: Batch,
        q_index: np.ndarray,
        doc_ids: Sequence[np.ndarray],
        batch_size: int | None = None,
        show_progress: bool = False,
        doc_keys: Sequence[np.ndarray] | None = None,
    ) -> np.ndarray:
        """Score pre-tokenised pairs: row ``q_index[i]`` of ``q_batch`` with doc i.

        ``doc_keys`` are a contextual student's precomputed key vectors per
        document (from a :class:`DocIndex`); without them they are computed.

        Pairs are grouped by document length (sorted, padded to power-of-two
        widths and row counts) so that XLA compiles only a handful of shapes.
        """
        n = len(doc_ids)
        out = np.zeros(n, dtype=np.float32)
        if n == 0:
            return out
        batch_size = batch_size or self.batch_size
        scorer = self._scorer()
        lengths = np.array([min(len(d), self.config.max_doc_len) for d in doc_ids])
        # One query at a time (its vocabulary match is computed once), its
        # documents sorted by length; rows padded to a power of two so that
        # lists of any size reuse a few compiled shapes. A contextual student
        # does per-position work, so its documents are also grouped by
        # power-of-two length (less padding); without context a padded
        # position is a cheap gather and fewer, larger calls are faster.
        widths = (
            np.array([bucket(n, 32, self.config.max_doc_len) for n in lengths])
            if self.circuit.contextual
            else np.zeros(n, np.int64)
        )
        calls = []
        for q in np.unique(q_index):
            mine = np.flatnonzero(q_index == q)
            mine = mine[np.argsort(lengths[mine], kind="stable")]
            for width in np.unique(widths[mine]):
                same = mine[widths[mine] == width]
                rows_per_call = min(batch_size, bucket(len(same), 8))
                calls += [
                    (q, same[i : i + rows_per_call], rows_per_call)
                    for i in range(0, len(same), rows_per_call)
                ]
        for q, rows, rows_per_call in tqdm(
            calls, desc="student scoring", disable=not show_progress
        ):
            docs = self.tokenizer.pad(
                [doc_ids[r] for r in rows], self.config.max_doc_len
            )
            keys = None
            if doc_keys is not None:
                keys = np.zeros(
                    (*docs.ids.shape, self.config.n_heads, self.config.head_dim),
                    np.float32,
                )
                for row, r in enumerate(rows):
                    n_real = int(docs.mask[row].sum())
                    keys[row, :n_real] = doc_keys[r][:n_real]
            d_ids, d_mask = _pad_rows(docs.ids, docs.mask, rows_per_call)
            if keys is not None:
                keys = np.concatenate(
                    [keys, np.repeat(keys[:1], rows_per_call - len(rows), 0)]
                )
            width = bucket(int(q_batch.mask[q].sum()), 8, q_batch.ids.shape[1])
            scores = scorer(
                q_batch.ids[q : q + 1, :width],
                q_batch.mask[q : q + 1, :width],
                d_ids,
                d_mask,
                keys,
            )
            out[rows] = np.asarray(scores)[: len(rows)]
        return out

    def predict(
        self,
        pairs: Sequence[Sequence[str]],
        batch_size: int | None = None,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """CrossEncoder-style: ``[(query, doc), ...]`` -> scores ``[n]``."""
        pairs = list(pairs)
        for i, pair in enumerate(pairs):
            if len(pair) != 2:
                raise ValueError(f"predict: pair {i} has {len(pair)} texts, expected 2")
        return self.score(
            [p[0] for p in pairs], [p[1] for p in pairs], batch_size, show_progress_bar
        )

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        return_documents: bool = False,
    ) -> list[dict]:
        """CrossEncoder-style ``[{"corpus_id", "score"[, "text"]}]``, best first."""
        _check_rerank_args(query, documents, top_k)
        scores = self.score([query] * len(documents), list(documents))
        order = np.argsort(-scores, kind="stable")[:top_k]
        ranked = []
        for i in order:
            item = {"corpus_id": int(i), "score": float(scores[i])}
            if return_documents:
                item["text"] = documents[i]
            ranked.append(item)
        return ranked

    def rerank(
        self,
        query: str,
        docs: Sequence[str] | Mapping[str, str],
        top_k: int | None = None,
        index: DocIndex | None = None,
    ) -> list[tuple[int | str, float]]:
        """Rerank candidates: texts, ``{doc_id: text}``, or doc ids of an index.

        Args:
            query: the query text.
            docs: a list of passages (keys are positions), a mapping
                ``{doc_id: text}``, or, with ``index``, a list of doc ids.
            top_k: keep the best k.
            index: a :class:`DocIndex`; documents are then not tokenised again.

        Returns:
            ``[(position_or_doc_id, score)]`` sorted by score, best first.
        """
        _check_rerank_args(query, docs, top_k)
        q_batch = self.encode_queries([query])
        if index is not None:
            index.check(self)
            keys = list(docs)
            doc_ids = index.token_ids(keys)
            doc_keys = index.key_vectors(keys)
        else:
            keys = (
                list(docs.keys())
                if isinstance(docs, Mapping)
                else list(range(len(docs)))
            )
            texts = list(docs.values()) if isinstance(docs, Mapping) else list(docs)
            doc_ids = self.encode_docs(texts)
            doc_keys = None
        scores = self.score_tokens(
            q_batch, np.zeros(len(keys), np.int64), doc_ids, doc_keys=doc_keys
        )
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [(keys[i], float(scores[i])) for i in order]

    def explain(self, query: str, doc: str, top_matches: int = 3) -> Explanation:
        """Per-query-token breakdown whose contributions sum to the score."""
        return explain_pair(self, query, doc, top_matches)

    # -- introspection -----------------------------------------------------

    def summary(self) -> dict:
        """Parameter counts (trainable, frozen) and FLOPs per pair at avgdl."""
        cfg = self.config
        params = nnx.state(self.circuit, nnx.Param)
        trainable = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
        total = sum(
            int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(self.circuit))
        )
        q_len, d_len = 8, cfg.avgdl
        # cosine per head and position pair (2 e) + exp, then tf sums and the
        # saturation/idf products per query token and head.
        match = q_len * d_len * cfg.n_heads * (2 * cfg.head_dim + 2)
        exact = q_len * d_len * int(cfg.exact_match_head)
        per_token = q_len * cfg.total_heads * 8
        flops = match + exact + per_token
        assumption = (
            f"query of {q_len} and document of {d_len:.0f} word pieces, "
            "lookup tables cached"
        )
        if self.circuit.contextual:
            # Context mixing and the key projection of the document's word
            # pieces; a DocIndex computes them once per document instead.
            flops += q_len * 2 * cfg.hidden_size * cfg.n_heads * cfg.head_dim
            flops += q_len * context_flops_per_token(
                cfg.hidden_size, cfg.context_layers, cfg.context_dim, q_len
            )
            doc_side = d_len * (
                context_flops_per_token(
                    cfg.hidden_size, cfg.context_layers, cfg.context_dim, d_len
                )
                + 2 * cfg.hidden_size * cfg.n_heads * cfg.head_dim
            )
            flops += doc_side
            assumption += (
                f"; contextual: includes {int(doc_side):,} FLOPs of document-side "
                "work that a DocIndex precomputes"
            )
        return {
            "trainable_params": trainable,
            "frozen_params": total - trainable,
            "soft_heads": cfg.n_heads,
            "exact_match_head": cfg.exact_match_head,
            "context_layers": cfg.context_layers,
            "flops_per_pair": int(flops),
            "flops_assumption": assumption,
        }


def _pad_rows(ids: np.ndarray, mask: np.ndarray, rows: int):
    """Repeat the first row until there are ``rows`` (a compiled shape)."""
    pad = rows - len(ids)
    if pad <= 0:
        return ids, mask
    return (
        np.concatenate([ids, np.repeat(ids[:1], pad, 0)]),
        np.concatenate([mask, np.repeat(mask[:1], pad, 0)]),
    )


def _check_rerank_args(query, docs, top_k) -> None:
    """Reject the argument mix-ups that would otherwise rank silently."""
    if not isinstance(query, str):
        raise TypeError(f"query: expected str, got {type(query).__name__}")
    if isinstance(docs, (str, bytes)):
        raise TypeError(
            "docs: expected a list of passages or a mapping, got a single string"
        )
    if top_k is not None and (not isinstance(top_k, int) or top_k < 0):
        raise ValueError(f"top_k: expected None or an integer >= 0, got {top_k!r}")
