"""Training examples: each query with its candidates and their teacher scores.

Scores come from the teacher-score store (``semb25.teacher``) or from a file of
precomputed scores, ``query_id<TAB>doc_id<TAB>score`` (the form of the published
MS MARCO cross-encoder score files). Bad rows never crash a run: NaN or
infinite scores, empty texts and queries left with fewer than two candidates
are skipped and counted.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# The batch vocabulary is padded to a multiple of this (few compiled shapes).
VOCAB_BUCKET = 2048


@dataclass(frozen=True)
class QueryGroup:
    """One training query.

    Attributes:
        qid: query id.
        query_tokens: ``[q_len]`` word-piece ids (no specials).
        doc_ids: ``n`` candidate doc ids.
        doc_tokens: ``n`` arrays of word-piece ids.
        teacher: ``[n]`` float32 raw teacher scores.
    """

    qid: str
    query_tokens: np.ndarray
    doc_ids: list[str]
    doc_tokens: list[np.ndarray]
    teacher: np.ndarray


def read_score_file(path: str | Path) -> dict[tuple[str, str], float]:
    """Read ``qid doc_id score`` lines (tab or space separated).

    Raises:
        ValueError: naming the line when it has the wrong column count or a
            score that is not a number.
    """
    path = Path(path)
    scores: dict[tuple[str, str], float] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3:
                raise ValueError(
                    f"{path} line {n}: expected 3 columns "
                    f"'query_id doc_id score', got {len(parts)}"
                )
            try:
                scores[(parts[0], parts[1])] = float(parts[2])
            except ValueError:
                raise ValueError(
                    f"{path} line {n}: score {parts[2]!r} is not a number"
                ) from None
    return scores


def build_groups(
    candidates: Mapping[str, Sequence[str]],
    queries: Mapping[str, str],
    docs: Mapping[str, str],
    scores: Mapping[tuple[str, str], float],
    tokenizer,
) -> tuple[list[QueryGroup], Counter]:
    """Assemble query groups, skipping and counting bad data.

    Args:
        candidates: ``{qid: [doc_id, ...]}`` first-stage candidates.
        queries, docs: texts by id.
        scores: teacher scores by ``(qid, doc_id)``.
        tokenizer: a :class:`semb25.student.tokenization.StudentTokenizer`.

    Returns:
        The groups (in ``candidates`` order) and a Counter of skipped items by
        reason: ``non_finite_score``, ``missing_score``, ``empty_doc``,
        ``empty_query``, ``fewer_than_two_candidates``.
    """
    skipped: Counter = Counter()
    groups = []
    qids = [q for q in candidates if q in queries]
    skipped["unknown_query"] += len(candidates) - len(qids)
    q_tokens = dict(
        zip(qids, tokenizer.token_ids([queries[q] for q in qids]), strict=True)
    )
    for qid in qids:
        if not queries[qid].strip() or q_tokens[qid].size == 0:
            skipped["empty_query"] += 1
            continue
        kept, values = [], []
        for did in candidates[qid]:
            value = scores.get((qid, did))
            if value is None:
                skipped["missing_score"] += 1
            elif not math.isfinite(value):
                skipped["non_finite_score"] += 1
            elif not docs.get(did, "").strip():
                skipped["empty_doc"] += 1
            else:
                kept.append(did)
                values.append(value)
        if len(kept) < 2:
            skipped["fewer_than_two_candidates"] += 1
            continue
        groups.append(
            QueryGroup(
                qid=qid,
                query_tokens=q_tokens[qid],
                doc_ids=kept,
                doc_tokens=tokenizer.token_ids([docs[d] for d in kept]),
                teacher=np.asarray(values, dtype=np.float32),
            )
        )
    if sum(skipped.values()):
        log.warning("training data: skipped %s", dict(skipped))
    log.info(
        "training data: %d queries, %d candidate pairs",
        len(groups),
        sum(len(g.doc_ids) for g in groups),
    )
    return groups, skipped


class BatchSampler:
    """Deterministic batches: batch ``step`` depends only on (seed, step).

    That is what makes resuming exact: a resumed run draws the same batches
    as an uninterrupted one. Each epoch is a seeded permutation of the
    queries; each query contributes ``docs_per_query`` candidates drawn
    without replacement (padded with a False mask when it has fewer).

    ``positional=True`` adds each candidate's word pieces by position (a
    contextual student needs them; term counts do not keep the order).
    """

    def __init__(
        self,
        groups: Sequence[QueryGroup],
        queries_per_batch: int,
        docs_per_query: int,
        max_query_len: int,
        max_doc_len: int,
        seed: int,
        teacher_mean: float,
        teacher_std: float,
        pad_id: int = 0,
        positional: bool = False,
    ):
        if len(groups) < queries_per_batch:
            raise ValueError(
                f"training data: {len(groups)} usable queries, fewer "
                f"than queries_per_batch = {queries_per_batch}"
            )
        self.groups = list(groups)
        self.b, self.n = queries_per_batch, docs_per_query
        self.max_q, self.max_d = max_query_len, max_doc_len
        self.seed, self.pad_id = seed, pad_id
        self.positional = positional
        self.mean, self.std = teacher_mean, teacher_std
        self.steps_per_epoch = len(self.groups) // queries_per_batch

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """Arrays for one step.

        Returns:
            ``vocab [1, V]``: the token ids the batch uses (padded);
            ``q_ids [B, Lq]`` as positions in ``vocab``, ``q_mask [B, Lq]``;
            ``counts [B, N, V]``: each candidate's term counts over ``vocab``;
            ``teacher [B, N]`` (standardised), ``where [B, N]`` (False on
            padded candidates), ``query_index [B]`` (indices into ``groups``);
            when positional, also ``q_tokens [B, Lq]`` (vocabulary ids),
            ``d_tokens [B, N, Ld]`` and ``d_mask [B, N, Ld]``.
        """
        epoch, offset = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.groups))
        chosen = order[offset * self.b : (offset + 1) * self.b]
        rng = np.random.default_rng([self.seed, epoch, offset, 1])

        picks = []
        for gi in chosen:
            g = self.groups[gi]
            k = min(self.n, len(g.doc_ids))
            picks.append(np.sort(rng.choice(len(g.doc_ids), size=k, replace=False)))
        return self.assemble(self.groups, chosen, picks, self.n)

    def full_lists(self, groups: Sequence[QueryGroup] | None = None):
        """Batches holding every candidate of every query (for validation).

        The last batch repeats its first query to stay full (same compiled
        shape); ``query_index`` of such rows is -1.
        """
        groups = self.groups if groups is None else list(groups)
        n = max(len(g.doc_ids) for g in groups)
        for start in range(0, len(groups), self.b):
            chosen = np.arange(start, min(start + self.b, len(groups)))
            real = len(chosen)
            chosen = np.concatenate([chosen, np.repeat(chosen[:1], self.b - real)])
            picks = [np.arange(len(groups[gi].doc_ids)) for gi in chosen]
            batch = self.assemble(groups, chosen, picks, n)
            batch["query_index"][real:] = -1
            yield batch

    def assemble(
        self,
        groups: Sequence[QueryGroup],
        chosen: np.ndarray,
        picks: list[np.ndarray],
        n: int,
    ) -> dict[str, np.ndarray]:
        """Arrays for queries ``chosen`` with candidates ``picks`` (see batch)."""
        longest_q = max(min(len(groups[gi].query_tokens), self.max_q) for gi in chosen)
        q_width = min(self.max_q, max(8, -(-longest_q // 8) * 8))
        q_ids = np.full((self.b, q_width), self.pad_id, np.int64)
        q_len = np.zeros(self.b, np.int64)
        teacher = np.zeros((self.b, n), np.float32)
        where = np.zeros((self.b, n), bool)
        docs: list[tuple[int, int, np.ndarray]] = []
        for row, (gi, p) in enumerate(zip(chosen, picks, strict=True)):
            g = groups[gi]
            q = g.query_tokens[:q_width]
            q_ids[row, : len(q)] = q
            q_len[row] = len(q)
            for col, j in enumerate(p):
                docs.append((row, col, g.doc_tokens[j][: self.max_d]))
                teacher[row, col] = (g.teacher[j] - self.mean) / self.std
                where[row, col] = True

        # The batch's own vocabulary: a step projects a few thousand
        # embeddings, not the whole vocabulary; ids become positions in it.
        all_ids = np.concatenate([q_ids.ravel()] + [d for _, _, d in docs])
        vocab, inverse = np.unique(all_ids, return_inverse=True)
        size = -(-len(vocab) // VOCAB_BUCKET) * VOCAB_BUCKET
        vocab = np.concatenate([vocab, np.full(size - len(vocab), self.pad_id)])
        local_q = inverse[: q_ids.size].reshape(q_ids.shape)
        counts = np.zeros((self.b, n, size), np.float32)
        offset = q_ids.size
        for row, col, d in docs:
            np.add.at(counts[row, col], inverse[offset : offset + len(d)], 1.0)
            offset += len(d)
        batch = {
            "vocab": vocab[None].astype(np.int32),
            "q_ids": local_q.astype(np.int32),
            "q_mask": np.arange(q_width)[None] < q_len[:, None],
            "counts": counts,
            "teacher": teacher,
            "where": where,
            "query_index": chosen.astype(np.int64),
        }
        if self.positional:
            batch.update(self._positions(q_ids, docs, n))
        return batch

    def _positions(self, q_ids, docs, n: int) -> dict[str, np.ndarray]:
        """Vocabulary ids by position, padded to a power-of-two length."""
        from semb25.student.tokenization import bucket

        longest = max((len(d) for _, _, d in docs), default=1)
        width = bucket(longest, min(32, self.max_d), self.max_d)
        d_tokens = np.full((self.b, n, width), self.pad_id, np.int32)
        d_mask = np.zeros((self.b, n, width), bool)
        for row, col, d in docs:
            d_tokens[row, col, : len(d)] = d
            d_mask[row, col, : len(d)] = True
        return {
            "q_tokens": q_ids.astype(np.int32),
            "d_tokens": d_tokens,
            "d_mask": d_mask,
        }


def teacher_standardisation(groups: Sequence[QueryGroup]) -> tuple[float, float]:
    """Mean and standard deviation of all training teacher scores."""
    values = np.concatenate([g.teacher for g in groups]).astype(np.float64)
    std = float(values.std())
    return float(values.mean()), std if std > 0 else 1.0
