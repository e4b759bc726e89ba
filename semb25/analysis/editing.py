"""Model editing along the IDF direction: change one token's IDF, watch its matches.

Lu, Chen & Eickhoff 2025 (arXiv:2502.04645, Sec. 6) edit a token's embedding
along the IDF direction and see the teacher weight that term's matches more or
less. With ``u`` the unit IDF axis (IDF grows along +u, see
``IdfDirection.idf_axis``) and a factor lambda, token t's embedding becomes::

    e_t <- e_t + (lambda - 1) (e_t . u) u

i.e. its component c = e_t . u along the axis is scaled to lambda c. Its IDF
(as the axis reads it) therefore goes *up* when ``(lambda - 1) c > 0`` and
down otherwise: with lambda > 1 a token whose component is negative moves to a
lower IDF. The circuit predicts that, for queries containing t, passages that
also contain t ("match") gain against passages that do not ("query only") when
t's IDF goes up, and lose when it goes down. We rescore both groups with the
edited teacher (its checkpoint reloaded, the embedding row replaced) and
report the mean score change of each and their difference.

Usage::

    token = choose_edit_token(tokenizer, coll, token_idf)
    study = editing_study(teacher, coll, token, idf_dir.idf_axis, lambdas=(0.0, 3.0))
    study.summary()["edits"]
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
import tokenizers

from semb25.analysis.idf_direction import special_token_ids
from semb25.data.collection import Collection
from semb25.teacher.checkpoint import load_checkpoint
from semb25.teacher.teacher import Teacher

log = logging.getLogger(__name__)


def edit_embedding(
    token_embeddings: np.ndarray, token_id: int, axis: np.ndarray, lam: float
) -> np.ndarray:
    """A copy of ``token_embeddings [vocab, hidden]`` with token_id's component
    along the unit vector ``axis [hidden]`` scaled by ``lam``."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    edited = np.array(token_embeddings, dtype=np.float32, copy=True)
    row = edited[token_id].astype(np.float64)
    edited[token_id] = row + (lam - 1.0) * (row @ axis) * axis
    return edited


def edited_teacher(
    teacher: Teacher, token_id: int, axis: np.ndarray, lam: float
) -> Teacher:
    """The teacher rebuilt from its checkpoint with one embedding row edited."""
    checkpoint = load_checkpoint(teacher.checkpoint_dir, kind=teacher.kind)
    word = checkpoint.model.embeddings.word.embedding
    word.value = jnp.asarray(
        edit_embedding(np.asarray(word.value), token_id, axis, lam)
    )
    return Teacher(
        checkpoint,
        f"{teacher.name} (token {token_id} x{lam:g} along the IDF axis)",
        max_length=teacher.max_length,
        batch_size=teacher.batch_size,
        show_progress=teacher.show_progress,
        bucket=teacher.bucket,
    )


def token_sets(tokenizer: tokenizers.Tokenizer, texts: Sequence[str]) -> list[set[int]]:
    """Each text's set of word-piece ids (no special tokens)."""
    encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    return [set(e.ids) for e in encodings]


def choose_edit_token(
    tokenizer: tokenizers.Tokenizer,
    collection: Collection,
    token_idf: np.ndarray,
    min_each: int = 3,
) -> int:
    """The highest-IDF whole-word query token with at least ``min_each`` candidates that
    contain it and ``min_each`` that do not, for one query of the collection."""
    # Whole alphabetic words only: a "##" piece's IDF is not a term's IDF.
    excluded = set(special_token_ids(tokenizer))
    is_word = {t: tokenizer.id_to_token(t).isalpha() for t in range(len(token_idf))}
    qids = list(collection.queries)
    best, best_idf = None, -np.inf
    query_tokens = token_sets(tokenizer, [collection.queries[q] for q in qids])
    for qid, tokens in zip(qids, query_tokens, strict=True):
        doc_tokens = token_sets(
            tokenizer, [collection.docs[d] for d, _ in collection.candidates[qid]]
        )
        for t in tokens - excluded:
            if not is_word[t]:
                continue
            n_match = sum(t in d for d in doc_tokens)
            if min(n_match, len(doc_tokens) - n_match) >= min_each:
                if token_idf[t] > best_idf:
                    best, best_idf = t, float(token_idf[t])
    if best is None:
        raise ValueError(
            f"collection {collection.name}: no query token is in >= {min_each} "
            f"candidates and missing from >= {min_each}"
        )
    return best


@dataclasses.dataclass
class EditingStudy:
    """Score changes after editing one token along the IDF axis.

    Attributes:
        token, token_id: the edited token.
        component: its component e_t . u on the IDF axis before editing.
        n_match, n_query_only: pairs whose query contains the token, with and
            without it in the passage.
        edits: per lambda, the predicted IDF direction ("up"/"down"), the mean
            score change of each group and ``match_minus_query_only``.
    """

    token: str
    token_id: int
    component: float
    n_match: int
    n_query_only: int
    edits: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def editing_study(
    teacher: Teacher,
    collection: Collection,
    token_id: int,
    axis: np.ndarray,
    lambdas: Sequence[float] = (0.0, 3.0),
    max_pairs: int | None = None,
    show_progress: bool = True,
) -> EditingStudy:
    """Rescore the candidates of the queries containing ``token_id`` with the
    token's IDF component scaled by each lambda (see the module docstring)."""
    tokenizer = teacher.tokenizer
    qids = [
        q
        for q, tokens in zip(
            collection.queries,
            token_sets(tokenizer, list(collection.queries.values())),
            strict=True,
        )
        if token_id in tokens
    ]
    pairs = [(q, d) for q in qids for d, _ in collection.candidates[q]][:max_pairs]
    if not pairs:
        raise ValueError(f"editing_study: no query contains token id {token_id}")
    queries = [collection.queries[q] for q, _ in pairs]
    docs = [collection.docs[d] for _, d in pairs]
    match = np.array([token_id in t for t in token_sets(tokenizer, docs)])

    # The unedited scores once, then one rescoring per lambda.
    axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    component = float(teacher.token_embeddings[token_id].astype(np.float64) @ axis)
    before = teacher.score(queries, docs, show_progress=show_progress)
    edits = []
    for lam in lambdas:
        edited = edited_teacher(teacher, token_id, axis, lam)
        delta = edited.score(queries, docs, show_progress=show_progress) - before
        d_match = float(delta[match].mean()) if match.any() else float("nan")
        d_other = float(delta[~match].mean()) if (~match).any() else float("nan")
        edits.append(
            {
                "lambda": float(lam),
                "idf_moves": "up" if (lam - 1.0) * component > 0 else "down",
                "delta_match": d_match,
                "delta_query_only": d_other,
                "match_minus_query_only": d_match - d_other,
            }
        )
        log.info(
            "edit %r x%g (IDF %s): score change %+.4f on matches, %+.4f on "
            "query-only pairs",
            tokenizer.id_to_token(token_id),
            lam,
            edits[-1]["idf_moves"],
            d_match,
            d_other,
        )
    return EditingStudy(
        token=tokenizer.id_to_token(token_id),
        token_id=int(token_id),
        component=component,
        n_match=int(match.sum()),
        n_query_only=int((~match).sum()),
        edits=edits,
    )
