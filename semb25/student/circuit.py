r"""The SemanticBM25 circuit: BM25's form with a transformer's semantics.

Lu, Chen & Eickhoff (2025, arXiv:2502.04645) found inside the MS MARCO MiniLM
cross-encoder a semantic variant of BM25: attention heads that count soft
term frequency, saturate it and normalise it by document length, weighted by
an IDF that lives in a rank-1 direction of the token-embedding matrix. This
module builds that circuit explicitly:

.. math::

    s(q, d) = \sum_i m_i \, \mathrm{idf}(q_i)
              \sum_h w_h \, \frac{tf_h(q_i, d)\,(k_{1,h} + 1)}
              {tf_h(q_i, d) + k_{1,h}\,(1 - b_h + b_h\,|d| / \mathrm{avgdl})}
              + \beta

- :math:`\mathrm{idf}(t) = \mathrm{softplus}(a\,(e_t \cdot u) + c) \ge 0`, with
  ``u`` initialised to the top right-singular vector of the embedding matrix
  (so that :math:`e_t \cdot u = \sigma_0 U_{t,0}`, the top left-singular
  direction), ``a`` and ``c`` fitted to corpus IDF.
- :math:`tf_h(q_i, d) = \sum_j m_j\, \alpha_h(q_i, d_j)`, with the soft match
  :math:`\alpha_h = \exp(\tau_h (\cos(W_Q^h e_{q_i}, W_K^h e_{d_j}) - 1))`.
  W_Q^h and W_K^h start equal, so an exact match counts one occurrence
  (cos = 1) and unrelated tokens count almost nothing. Unlike a softmax, this
  attention is not normalised over the document, so it counts rather than
  averages; saturation is left to the explicit BM25 term.
- The optional exact-match head uses :math:`\alpha = [q_i = d_j]`, the
  classic TF; with it alone, ``idf`` set to corpus IDF, ``w = 1`` and fixed
  :math:`k_1, b`, the score is BM25 over word pieces (Robertson & Zaragoza
  2009), which the tests pin.
- Optionally (``context_layers`` 1 or 2) the soft heads read token vectors
  that a light contextualiser has mixed within each text (queries and
  documents separately; :mod:`semb25.student.contextualiser`); idf and the
  exact head still read ids.
- Constraints by parameterisation: :math:`k_1 = \mathrm{softplus}(\cdot) > 0`,
  :math:`b = \mathrm{sigmoid}(\cdot) \in (0, 1)`,
  :math:`\tau = \mathrm{softplus}(\cdot) > 0`.

Because the score is a sum over query tokens plus :math:`\beta`, every score
splits exactly into per-term contributions (:meth:`contributions`).

>>> import numpy as np
>>> from flax import nnx
>>> from semb25.student.config import StudentConfig
from semb25.student.contextualiser import Contextualiser
>>> cfg = StudentConfig(vocab_size=10, hidden_size=8, n_heads=2, head_dim=4)
>>> emb = np.random.default_rng(0).normal(size=(10, 8)).astype("float32")
>>> circuit = SemanticBM25Circuit(cfg, emb, rngs=nnx.Rngs(0))
>>> q = np.array([[5, 6, 0]]); d = np.array([[5, 7, 7, 0]])
>>> circuit(q, q > 0, d, d > 0).shape
(1,)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from semb25.student.config import StudentConfig
from semb25.student.contextualiser import Contextualiser


class FrozenEmbedding(nnx.Variable):
    """The teacher's token embeddings when they are not trained."""


def _inverse_softplus(y: float | np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return np.where(y > 20, y, np.log(np.expm1(np.maximum(y, 1e-6))))


def _inverse_sigmoid(p: float) -> float:
    return float(np.log(p / (1 - p)))


def top_singular_direction(embeddings: np.ndarray) -> np.ndarray:
    """Top right-singular vector ``v_0`` of the (uncentred) ``[vocab, hidden]`` matrix.

    ``embeddings @ v_0`` equals ``sigma_0 * U[:, 0]``, the top left-singular
    direction the study found to encode IDF.
    """
    gram = embeddings.astype(np.float64).T @ embeddings.astype(np.float64)
    eigvals, eigvecs = np.linalg.eigh(gram)
    return eigvecs[:, np.argmax(eigvals)].astype(np.float32)


def _orthogonal_heads(
    embeddings: np.ndarray, n_heads: int, head_dim: int, seed: int
) -> np.ndarray:
    """``[heads, hidden, head_dim]`` projections onto principal directions.

    Head h gets principal components h*head_dim..(h+1)*head_dim-1 of the
    centred embeddings, plus a small random rotation, so heads
    start by matching on different semantic subspaces.
    """
    hidden = embeddings.shape[1]
    centred = embeddings - embeddings.mean(0, keepdims=True)
    _, s, vt = np.linalg.svd(
        centred[:: max(1, len(centred) // 8192)], full_matrices=False
    )
    rng = np.random.default_rng(seed)
    if n_heads == 0:
        return np.zeros((0, hidden, head_dim), np.float32)
    heads = []
    for h in range(n_heads):
        lo = (h * head_dim) % max(1, hidden - head_dim)
        basis = vt[lo : lo + head_dim].T  # [hidden, head_dim]
        noise = rng.normal(scale=0.1 / np.sqrt(hidden), size=basis.shape)
        heads.append(basis + noise)
    return np.stack(heads).astype(np.float32)


class SemanticBM25Circuit(nnx.Module):
    """The explicit circuit; see the module docstring for the equation.

    Inputs are word-piece ids without [CLS]/[SEP]; padding and specials are
    excluded by the explicit masks ``q_mask`` and ``d_mask``.
    """

    def __init__(
        self,
        config: StudentConfig,
        embeddings: np.ndarray,
        *,
        rngs: nnx.Rngs,
        idf_init: tuple[float, float] | None = None,
        initialise: bool = True,
    ):
        """Args:
        config: the shape; ``embeddings`` must be ``[vocab_size, hidden_size]``.
        embeddings: the teacher's token-embedding matrix (an array only).
        rngs: random streams (used for the projection noise seed).
        idf_init: ``(a, c)`` so that softplus(a (e.u) + c) fits corpus IDF;
            default a=1, c=0 until :func:`fit_idf_to_corpus` is applied.
        initialise: False skips the SVD-based initial values (zeros
            instead), for loading weights that overwrite them anyway.
        """
        expected = (config.vocab_size, config.hidden_size)
        if tuple(embeddings.shape) != expected:
            raise ValueError(
                f"student embeddings: expected shape {expected}, got "
                f"{tuple(embeddings.shape)}"
            )
        self.config = config
        emb = jnp.asarray(embeddings, dtype=jnp.float32)
        self.embeddings = (
            nnx.Param(emb) if config.train_embeddings else FrozenEmbedding(emb)
        )

        # IDF: a rank-1 readout of the embedding, kept non-negative by softplus.
        a, c = idf_init if idf_init is not None else (1.0, 0.0)
        direction = (
            top_singular_direction(embeddings)
            if initialise
            else np.zeros(config.hidden_size, np.float32)
        )
        self.idf_direction = nnx.Param(jnp.asarray(direction))
        self.idf_scale = nnx.Param(jnp.asarray(a, dtype=jnp.float32))
        self.idf_offset = nnx.Param(jnp.asarray(c, dtype=jnp.float32))

        # Soft TF: W_Q = W_K at the start, so identical tokens match with cos 1.
        seed = int(jax.random.randint(rngs.params(), (), 0, 2**31 - 1))
        w = (
            _orthogonal_heads(
                np.asarray(embeddings), config.n_heads, config.head_dim, seed
            )
            if initialise
            else np.zeros(
                (config.n_heads, config.hidden_size, config.head_dim), np.float32
            )
        )
        self.w_query = nnx.Param(jnp.asarray(w))
        self.w_key = nnx.Param(jnp.asarray(w))
        self.temperature_raw = nnx.Param(
            jnp.full(
                (config.n_heads,),
                _inverse_softplus(config.init_temperature),
                dtype=jnp.float32,
            )
        )

        # Optional context mixing before soft matching; identity at the start.
        self.contextualiser = (
            Contextualiser(
                config.hidden_size,
                config.context_layers,
                config.context_heads,
                config.context_dim,
                rngs=rngs,
            )
            if config.context_layers
            else None
        )

        # Saturation and length normalisation per head (soft heads + exact head).
        n = config.total_heads
        self.k1_raw = nnx.Param(
            jnp.full((n,), _inverse_softplus(config.init_k1), dtype=jnp.float32)
        )
        self.b_raw = nnx.Param(
            jnp.full((n,), _inverse_sigmoid(config.init_b), dtype=jnp.float32)
        )
        self.head_weight = nnx.Param(jnp.full((n,), 1.0 / n, dtype=jnp.float32))
        self.bias = nnx.Param(jnp.zeros((), dtype=jnp.float32))

    # -- the named quantities of the equation -------------------------------

    @property
    def k1(self) -> jax.Array:
        """``[total_heads]`` saturation k1_h > 0."""
        return jax.nn.softplus(self.k1_raw[...])

    @property
    def b(self) -> jax.Array:
        """``[total_heads]`` length normalisation 0 < b_h < 1."""
        return jax.nn.sigmoid(self.b_raw[...])

    @property
    def temperature(self) -> jax.Array:
        """``[n_heads]`` soft-match sharpness tau_h > 0."""
        return jax.nn.softplus(self.temperature_raw[...])

    def tables(self, vocab_ids: jax.Array | None = None) -> dict[str, jax.Array]:
        """Per-vocabulary projections, the only place embeddings are read.

        Without a contextualiser every quantity of a token depends on its id
        alone, so the circuit is evaluated through lookup tables: inference
        computes them once for the whole vocabulary and reuses them for every
        document; training computes them for the batch's own vocabulary only.
        With a contextualiser only ``idf`` depends on the id alone, and only
        ``idf`` is returned.

        Args:
            vocab_ids: ``[n_ids]`` optional subset of token ids; the rows of
                the tables then follow this order, and the circuit must be
                fed ids remapped to positions in it.

        Returns:
            ``query``/``key``: ``[vocab, n_heads, head_dim]`` unit vectors
            W_Q^h e_t / |.| and W_K^h e_t / |.|; ``key_by_head``: the keys as
            ``[n_heads, vocab, head_dim]``; ``idf``: ``[vocab]``.
        """
        emb = self.embeddings[...]
        if vocab_ids is not None:
            emb = jnp.take(emb, vocab_ids, axis=0)
        proj = emb @ self.idf_direction[...]
        idf = jax.nn.softplus(self.idf_scale[...] * proj + self.idf_offset[...])
        out = {"idf": idf}
        # With a contextualiser the soft vectors depend on the whole text,
        # so there are no per-vocabulary soft tables, only idf.
        if self.config.n_heads and self.contextualiser is None:
            for name, w in (("query", self.w_query), ("key", self.w_key)):
                x = jnp.einsum("vd,hde->vhe", emb, w[...])
                out[name] = x / (jnp.linalg.norm(x, axis=-1, keepdims=True) + 1e-6)
            # Head-major keys for the reranking form (a plain batched matmul);
            # XLA drops this when a caller does not use it.
            out["key_by_head"] = jnp.transpose(out["key"], (1, 0, 2))
        return out

    @property
    def contextual(self) -> bool:
        """Whether soft matching reads contextualised token vectors."""
        return self.contextualiser is not None

    def idf_of(self, ids: jax.Array) -> jax.Array:
        """idf ``[...]`` of the tokens ``ids`` (full-vocabulary ids)."""
        proj = jnp.take(self.embeddings[...], ids, axis=0) @ self.idf_direction[...]
        return jax.nn.softplus(self.idf_scale[...] * proj + self.idf_offset[...])

    def token_vectors(self, ids, mask, side: str) -> jax.Array:
        """Unit soft-matching vectors of each position of each text.

        Args:
            ids: ``[batch, length]`` full-vocabulary ids; mask: ``[batch,
                length]`` bool (the contextualiser attends to True only).
            side: ``"query"`` (W_Q) or ``"key"`` (W_K).

        Returns:
            ``[batch, length, n_heads, head_dim]``, equal to the rows of
            :meth:`tables` when there is no contextualiser.
        """
        x = jnp.take(self.embeddings[...], ids, axis=0)
        if self.contextualiser is not None:
            x = self.contextualiser(x, mask)
        w = (self.w_query if side == "query" else self.w_key)[...]
        # One [hidden, heads * head_dim] matmul (XLA:CPU runs it faster than
        # the equivalent einsum over a head axis).
        h, d, e = w.shape
        v = (x @ jnp.transpose(w, (1, 0, 2)).reshape(d, h * e)).reshape(
            *x.shape[:-1], h, e
        )
        return v / (jnp.linalg.norm(v, axis=-1, keepdims=True) + 1e-6)

    def match_weights(
        self, q_ids, q_mask, d_ids, d_mask, tables=None, doc_keys=None
    ) -> jax.Array:
        """Attention of each query token on each document token.

        Args:
            q_ids: ``[batch, q_len]`` int; q_mask: ``[batch, q_len]`` bool.
            d_ids: ``[batch, d_len]`` int; d_mask: ``[batch, d_len]`` bool.
            tables: the output of :meth:`tables`; without a contextualiser
                the ids may then be rows of it (a batch vocabulary), else
                they are full-vocabulary ids.
            doc_keys: optional precomputed ``[batch, d_len, heads, head_dim]``
                document vectors (:meth:`token_vectors` of the key side).

        Returns:
            alpha ``[batch, total_heads, q_len, d_len]``, zero on padded
            document positions; soft heads first, the exact head last.
        """
        heads = []
        if self.config.n_heads:
            if tables is not None and not self.contextual:
                qh = jnp.take(tables["query"], q_ids, axis=0)  # [b, q, h, e]
                kh = jnp.take(tables["key"], d_ids, axis=0)  # [b, d, h, e]
            else:
                qh = self.token_vectors(q_ids, q_mask, "query")
                kh = (
                    self.token_vectors(d_ids, d_mask, "key")
                    if doc_keys is None
                    else doc_keys
                )
            cos = jnp.einsum("bihe,bjhe->bhij", qh, kh)
            tau = self.temperature[None, :, None, None]
            heads.append(jnp.exp(tau * (cos - 1.0)))
        if self.config.exact_match_head:
            same = q_ids[:, :, None] == d_ids[:, None, :]
            heads.append(same[:, None].astype(jnp.float32))
        alpha = jnp.concatenate(heads, axis=1)
        return alpha * d_mask[:, None, None, :].astype(jnp.float32)

    def saturate(self, tf: jax.Array, doc_len: jax.Array) -> jax.Array:
        """BM25 saturation per head.

        Args:
            tf: ``[batch, total_heads, q_len]`` soft term frequencies.
            doc_len: ``[batch]`` |d| in word pieces.

        Returns:
            ``[batch, total_heads, q_len]`` tf (k1+1) / (tf + k1 (1 - b + b |d|/avgdl)).
        """
        k1 = self.k1[None, :, None]
        b = self.b[None, :, None]
        rel_len = (doc_len / self.config.avgdl)[:, None, None]
        return tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * rel_len))

    def contributions(
        self,
        q_ids,
        q_mask,
        d_ids,
        d_mask,
        *,
        tables=None,
        idf=None,
        exact_only: bool = False,
        doc_keys=None,
    ) -> dict[str, jax.Array]:
        """Every intermediate of the score, per query token (positional form).

        Args:
            q_ids, q_mask, d_ids, d_mask: ``[batch, q_len]`` / ``[batch, d_len]``
                ids and boolean masks (False on padding and specials).
            tables: precomputed :meth:`tables` (computed if omitted).
            idf: optional ``[batch, q_len]`` override of the learned idf (the
                BM25 special case sets corpus IDF here).
            exact_only: keep only the exact-match head (w = 1), for BM25.
            doc_keys: precomputed document vectors (see :meth:`match_weights`).

        Returns:
            ``idf [b, q]``, ``alpha [b, h, q, d]``, ``tf [b, h, q]``,
            ``sat [b, h, q]``, ``contribution [b, q]`` (zero on masked query
            positions) and ``score [b]`` = sum of contributions + bias.
        """
        alpha = self.match_weights(q_ids, q_mask, d_ids, d_mask, tables, doc_keys)
        doc_len = d_mask.astype(jnp.float32).sum(-1)
        out = self._combine(
            q_ids, q_mask, alpha.sum(-1), doc_len, tables, idf, exact_only
        )
        return {"alpha": alpha, **out}

    def contributions_from_counts(
        self, q_ids, q_mask, counts, *, tables, idf=None
    ) -> dict[str, jax.Array]:
        """The same score from bag-of-words counts (the training form).

        Without context, alpha depends on token ids only, so
        ``tf_h(q_i, d) = sum_v c_d(v) alpha_h(q_i, v)`` over the vocabulary:
        one matmul with the document's term counts instead of a gather per
        position (no scatter in the backward pass).

        Args:
            q_ids: ``[batch, q_len]`` row indices into ``tables``.
            q_mask: ``[batch, q_len]`` bool.
            counts: ``[batch, n_docs, vocab]`` term counts of each document
                over the rows of ``tables`` (specials and padding excluded).
            tables: :meth:`tables`, usually of the batch's own vocabulary.

        Returns:
            ``tf``/``sat`` ``[batch, n_docs, heads, q_len]``, ``contribution
            [batch, n_docs, q_len]`` and ``score [batch, n_docs]``.
        """
        if self.contextual:
            raise ValueError(
                "contributions_from_counts: a contextual circuit needs token "
                "positions; use contributions_for_lists"
            )
        b, n, v = counts.shape
        tfs = []
        if self.config.n_heads:
            qh = jnp.take(tables["query"], q_ids, axis=0)  # [b, q, h, e]
            cos = jnp.einsum("bihe,vhe->bhiv", qh, tables["key"])
            alpha = jnp.exp(self.temperature[None, :, None, None] * (cos - 1.0))
            tfs.append(jnp.einsum("bnv,bhiv->bnhi", counts, alpha))
        if self.config.exact_match_head:
            exact = jnp.take_along_axis(counts, q_ids[:, None, :].repeat(n, 1), -1)
            tfs.append(exact[:, :, None, :])
        tf = jnp.concatenate(tfs, axis=2).reshape(b * n, -1, q_ids.shape[1])
        rep = lambda x: None if x is None else jnp.repeat(x, n, axis=0)  # noqa: E731
        out = self._combine(
            rep(q_ids),
            rep(q_mask),
            tf,
            counts.sum(-1).reshape(b * n),
            tables,
            rep(idf),
            False,
        )
        return {k: x.reshape(b, n, *x.shape[1:]) for k, x in out.items()}

    def contributions_for_query(
        self, q_ids, q_mask, d_ids, d_mask, *, tables, doc_keys=None
    ) -> dict[str, jax.Array]:
        """The same score for one query against many documents (reranking form).

        Without a contextualiser, the query's soft match against every
        vocabulary entry is computed once, ``alpha_h(q_i, v)`` as ``[heads,
        q_len, vocab]``; each document then only gathers its tokens' columns.
        That is the query-side-only cost of reranking: no per-document
        projection at all. With one, the query's vectors are computed once
        and matched against the documents' (``doc_keys`` when precomputed).

        Args:
            q_ids: ``[1, q_len]``; q_mask: ``[1, q_len]`` bool.
            d_ids: ``[n_docs, d_len]``; d_mask: ``[n_docs, d_len]`` bool.
            tables: :meth:`tables` over the full vocabulary.
            doc_keys: optional ``[n_docs, d_len, heads, head_dim]`` document
                vectors of a contextual circuit (a :class:`DocIndex`'s).

        Returns:
            As :meth:`contributions` without ``alpha``, batch = ``n_docs``.
        """
        if self.contextual:
            out = self.contributions_for_lists(
                q_ids,
                q_mask,
                d_ids[None],
                d_mask[None],
                tables=tables,
                doc_keys=None if doc_keys is None else doc_keys[None],
            )
            return {k: v[0] for k, v in out.items()}
        n = d_ids.shape[0]
        d_mask_f = d_mask.astype(jnp.float32)
        tfs = []
        if self.config.n_heads:
            qh = jnp.take(tables["query"], q_ids[0], axis=0)  # [q, h, e]
            cos = jnp.einsum("hve,ihe->hvi", tables["key_by_head"], qh)
            alpha = jnp.exp(self.temperature[:, None, None] * (cos - 1.0))
            alpha = jnp.transpose(alpha, (1, 0, 2))  # [vocab, h, q]
            per_doc = jnp.take(alpha, d_ids, axis=0)  # [n, d, h, q]
            tfs.append(jnp.einsum("ndhq,nd->nhq", per_doc, d_mask_f))
        if self.config.exact_match_head:
            same = (q_ids[0][None, :, None] == d_ids[:, None, :]).astype(jnp.float32)
            tfs.append(jnp.einsum("nqd,nd->nq", same, d_mask_f)[:, None, :])
        tf = jnp.concatenate(tfs, axis=1)
        rep = lambda x: jnp.repeat(x, n, axis=0)  # noqa: E731
        return self._combine(
            rep(q_ids), rep(q_mask), tf, d_mask_f.sum(-1), tables, None, False
        )

    def contributions_for_lists(
        self, q_ids, q_mask, d_ids, d_mask, *, tables=None, doc_keys=None
    ) -> dict[str, jax.Array]:
        """Each query against its own list of documents, by position.

        The form for a contextual circuit (training and reranking): each
        query's vectors are computed once and matched against every position
        of its documents. Ids are full-vocabulary ids.

        Args:
            q_ids: ``[batch, q_len]``; q_mask: ``[batch, q_len]`` bool.
            d_ids: ``[batch, n_docs, d_len]``; d_mask: the same shape, bool
                (all False for a padded candidate).
            tables: optional :meth:`tables` (only its ``idf`` is read).
            doc_keys: optional ``[batch, n_docs, d_len, heads, head_dim]``.

        Returns:
            ``tf``/``sat`` ``[batch, n_docs, heads, q_len]``, ``idf`` and
            ``contribution`` ``[batch, n_docs, q_len]``, ``score [batch,
            n_docs]``.
        """
        b, n, length = d_ids.shape
        d_mask_f = d_mask.astype(jnp.float32)
        tfs = []
        if self.config.n_heads:
            qh = self.token_vectors(q_ids, q_mask, "query")  # [b, q, h, e]
            if doc_keys is None:
                flat = self.token_vectors(
                    d_ids.reshape(b * n, length), d_mask.reshape(b * n, length), "key"
                )
                doc_keys = flat.reshape(b, n, *flat.shape[1:])
            cos = jnp.einsum("bihe,bnjhe->bnhij", qh, doc_keys)
            alpha = jnp.exp(self.temperature[None, None, :, None, None] * (cos - 1.0))
            tfs.append(jnp.einsum("bnhij,bnj->bnhi", alpha, d_mask_f))
        if self.config.exact_match_head:
            same = q_ids[:, None, :, None] == d_ids[:, :, None, :]
            exact = jnp.einsum("bnij,bnj->bni", same.astype(jnp.float32), d_mask_f)
            tfs.append(exact[:, :, None, :])
        tf = jnp.concatenate(tfs, axis=2).reshape(b * n, -1, q_ids.shape[1])
        rep = lambda x: jnp.repeat(x, n, axis=0)  # noqa: E731
        out = self._combine(
            rep(q_ids),
            rep(q_mask),
            tf,
            d_mask_f.sum(-1).reshape(b * n),
            tables,
            None,
            False,
        )
        return {k: x.reshape(b, n, *x.shape[1:]) for k, x in out.items()}

    def _combine(self, q_ids, q_mask, tf, doc_len, tables, idf, exact_only):
        """Saturate tf, weight heads, multiply by idf: BM25's outer form."""
        q_mask = q_mask.astype(jnp.float32)
        if idf is None:
            idf = (
                self.idf_of(q_ids)
                if tables is None
                else jnp.take(tables["idf"], q_ids, axis=0)
            )
        sat = self.saturate(tf, doc_len)
        if exact_only:
            if not self.config.exact_match_head:
                raise ValueError("exact_only needs a circuit with exact_match_head")
            weights = jnp.zeros((self.config.total_heads,)).at[-1].set(1.0)
            bias = jnp.zeros(())
        else:
            weights = self.head_weight[...]
            bias = self.bias[...]
        contribution = idf * jnp.einsum("bhq,h->bq", sat, weights) * q_mask
        return {
            "idf": idf * q_mask,
            "tf": tf,
            "sat": sat,
            "contribution": contribution,
            "score": contribution.sum(-1) + bias,
        }

    def __call__(self, q_ids, q_mask, d_ids, d_mask, tables=None) -> jax.Array:
        """Scores ``[batch]`` for aligned query/document rows."""
        return self.contributions(q_ids, q_mask, d_ids, d_mask, tables=tables)["score"]


def fit_idf_to_corpus(
    circuit: SemanticBM25Circuit,
    corpus_idf: np.ndarray,
    df: np.ndarray,
    mode: str = "svd",
) -> tuple[float, float, float]:
    """Fit the idf readout to corpus IDF, in place.

    ``mode="svd"`` keeps u as the top singular direction (the study's) and
    fits its sign and scale: least squares of softplus^{-1}(idf(t)) on
    e_t . u. ``mode="probe"`` also fits the direction: u is the normalised
    least-squares probe from embeddings to softplus^{-1}(idf), still one
    rank-1 readout of the same form. Only tokens occurring in the corpus
    (df > 0, specials excluded) are fitted.

    Args:
        circuit: the circuit whose ``idf_direction``/``idf_scale``/``idf_offset``
            are set.
        corpus_idf: ``[vocab]`` IDF of the training collection.
        df: ``[vocab]`` document frequencies (selects the fitted tokens).
        mode: ``"svd"`` or ``"probe"``.

    Returns:
        ``(a, c, pearson_r)``, r between the fitted idf and corpus IDF on
        those tokens.
    """
    if mode not in ("svd", "probe"):
        raise ValueError(f"idf_init: expected 'svd' or 'probe', got {mode!r}")
    seen = np.asarray(df) > 0
    special = np.asarray(circuit.config.special_ids, dtype=np.int64)
    seen[special[special < seen.size]] = False
    emb = np.asarray(circuit.embeddings[...], dtype=np.float64)[seen]
    target = _inverse_softplus(np.asarray(corpus_idf)[seen])
    if mode == "probe":
        design = np.concatenate([emb, np.ones((len(emb), 1))], axis=1)
        coef, *_ = np.linalg.lstsq(design, target, rcond=None)
        u = coef[:-1] / np.linalg.norm(coef[:-1])
        circuit.idf_direction[...] = jnp.asarray(u, dtype=jnp.float32)
    proj = emb @ np.asarray(circuit.idf_direction[...], dtype=np.float64)
    a, c = np.polyfit(proj, target, 1)
    circuit.idf_scale[...] = jnp.asarray(a, dtype=jnp.float32)
    circuit.idf_offset[...] = jnp.asarray(c, dtype=jnp.float32)
    fitted = np.logaddexp(0.0, a * proj + c)
    r = float(np.corrcoef(fitted, np.asarray(corpus_idf)[seen])[0, 1])
    return float(a), float(c), r
