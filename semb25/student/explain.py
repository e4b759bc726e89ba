"""Exact explanations: a score split into its query terms' contributions.

Because the circuit's score is ``sum_i idf(q_i) sum_h w_h sat_h(q_i, d) + bias``,
the per-term contributions plus the bias equal the score (up to float32
rounding); an :class:`Explanation` carries every factor of each term.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class TermExplanation:
    """One query word piece's share of the score.

    Attributes:
        token: the word piece; position: its index in the query.
        idf: learned idf(q_i).
        tf: per head soft term frequency tf_h(q_i, d) (soft heads, then exact).
        saturated_tf: per head saturated, length-normalised tf.
        contribution: idf * sum_h w_h saturated_tf_h.
        matches: top ``(doc_token, doc_position, weight)`` by summed attention.
    """

    token: str
    position: int
    idf: float
    tf: list[float]
    saturated_tf: list[float]
    contribution: float
    matches: list[tuple[str, int, float]]


@dataclass(frozen=True)
class Explanation:
    """The full breakdown of one (query, document) score."""

    query: str
    score: float
    bias: float
    terms: list[TermExplanation]
    head_names: list[str]
    head_weights: list[float]
    doc_tokens: list[str]
    doc_length: int
    doc_truncated: bool
    query_truncated: bool
    match_matrix: np.ndarray = field(repr=False)  # [q_terms, doc_tokens]

    @property
    def total(self) -> float:
        """Sum of contributions plus bias (equals ``score``)."""
        return float(sum(t.contribution for t in self.terms) + self.bias)

    def to_text(self) -> str:
        """A terminal table, one row per query term."""
        lines = [
            f"score {self.score:.4f} = bias {self.bias:+.4f} + terms below",
            f"document: {self.doc_length} word pieces"
            + (" (truncated at the length limit)" if self.doc_truncated else ""),
        ]
        if self.query_truncated:
            lines.append("query truncated at the length limit")
        heads = " ".join(f"{h:>7}" for h in self.head_names)
        lines.append(
            f"{'term':<14}{'idf':>7}  sat-tf per head: {heads}  "
            f"{'contrib':>8}  top matches"
        )
        for t in self.terms:
            sats = " ".join(f"{s:7.3f}" for s in t.saturated_tf)
            matches = ", ".join(f"{tok}({w:.2f})" for tok, _, w in t.matches)
            lines.append(
                f"{t.token:<14}{t.idf:7.3f}  {'':16}{sats}  "
                f"{t.contribution:8.4f}  {matches}"
            )
        if not self.terms:
            lines.append(
                "(no query terms to score: the query is empty or only "
                "characters outside the vocabulary, [UNK]; the score is the bias)"
            )
        else:
            lines.append(
                "top matches: document word pieces by attention summed over "
                "heads, each weighted by |head weight|"
            )
        return "\n".join(lines)

    def to_html(self) -> str:
        """An HTML snippet: the document with each token shaded by match mass."""
        mass = (
            self.match_matrix.sum(0) if self.terms else np.zeros(len(self.doc_tokens))
        )
        top = float(mass.max()) if mass.size and mass.max() > 0 else 1.0
        spans = []
        for tok, m in zip(self.doc_tokens, mass, strict=True):
            alpha = min(1.0, float(m) / top)
            spans.append(
                f'<span style="background:rgba(255,140,0,{alpha:.2f})" '
                f'title="{m:.3f}">{html.escape(tok)}</span>'
            )
        rows = "".join(
            f"<tr><td>{html.escape(t.token)}</td><td>{t.idf:.3f}</td>"
            f"<td>{t.contribution:.4f}</td></tr>"
            for t in self.terms
        )
        return (
            f'<div class="semb25-explanation"><p>score {self.score:.4f} '
            f"(bias {self.bias:+.4f})</p><table><tr><th>term</th><th>idf</th>"
            f"<th>contribution</th></tr>{rows}</table><p>{' '.join(spans)}</p></div>"
        )

    def heatmap_png(self, path) -> None:
        """Save the query x document match matrix as a PNG heatmap."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from semb25.atomic import atomic_write_bytes

        q = [t.token for t in self.terms]
        fig, ax = plt.subplots(
            figsize=(max(6, 0.25 * len(self.doc_tokens)), 1.5 + 0.35 * max(1, len(q)))
        )
        ax.imshow(
            self.match_matrix if q else np.zeros((1, 1)), aspect="auto", cmap="Oranges"
        )
        ax.set_yticks(range(len(q)), q)
        ax.set_xticks(
            range(len(self.doc_tokens)), self.doc_tokens, rotation=90, fontsize=7
        )
        ax.set_title(f"soft term matching (score {self.score:.3f})")
        fig.tight_layout()
        import io

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        atomic_write_bytes(path, buf.getvalue())


def explain_pair(model, query: str, doc: str, top_matches: int = 3) -> Explanation:
    """Run the circuit on one pair and keep every intermediate.

    Args:
        model: a :class:`semb25.SemanticBM25`.
        query, doc: the texts.
        top_matches: how many document tokens to list per query term.
    """
    cfg = model.config
    q_ids = model.tokenizer.token_ids([query])[0]
    d_ids = model.tokenizer.token_ids([doc])[0]
    q_batch = model.tokenizer.pad([q_ids], cfg.max_query_len)
    d_batch = model.tokenizer.pad([d_ids], cfg.max_doc_len)
    out = model.circuit.contributions(
        jnp.asarray(q_batch.ids),
        jnp.asarray(q_batch.mask),
        jnp.asarray(d_batch.ids),
        jnp.asarray(d_batch.mask),
        tables=model.lookup_tables(),
    )
    out = {k: np.asarray(v)[0] for k, v in out.items()}

    n_q = int(q_batch.mask[0].sum())
    n_d = int(d_batch.mask[0].sum())
    weights = np.asarray(model.circuit.head_weight[...])
    # Weighted attention over heads: what each query term "sees" in the doc.
    matrix = np.einsum("hqd,h->qd", out["alpha"][:, :n_q, :n_d], np.abs(weights))
    q_tokens = model.tokenizer.tokens(q_batch.ids[0, :n_q])
    d_tokens = model.tokenizer.tokens(d_batch.ids[0, :n_d])
    terms = []
    for i in range(n_q):
        best = np.argsort(-matrix[i], kind="stable")[:top_matches] if n_d else []
        terms.append(
            TermExplanation(
                token=q_tokens[i],
                position=i,
                idf=float(out["idf"][i]),
                tf=[float(x) for x in out["tf"][:, i]],
                saturated_tf=[float(x) for x in out["sat"][:, i]],
                contribution=float(out["contribution"][i]),
                matches=[
                    (d_tokens[j], int(j), float(matrix[i, j]))
                    for j in best
                    if matrix[i, j] > 0
                ],
            )
        )
    names = [f"soft{h}" for h in range(cfg.n_heads)]
    names += ["exact"] if cfg.exact_match_head else []
    return Explanation(
        query=query,
        score=float(out["score"]),
        bias=float(model.circuit.bias[...]),
        terms=terms,
        head_names=names,
        head_weights=[float(w) for w in weights],
        doc_tokens=d_tokens,
        doc_length=n_d,
        doc_truncated=bool(d_batch.truncated[0]),
        query_truncated=bool(q_batch.truncated[0]),
        match_matrix=matrix,
    )
