r"""An optional light contextualiser of the student's token representations.

Without it, a token's soft-matching vectors depend on its id alone (the
teacher's static embedding), so "bank" matches the same way in "river bank"
and "bank account". With ``context_layers`` = 1 or 2, each text's embeddings
first pass through that many light self-attention layers (pre-LayerNorm,
no MLP, residual):

.. math::

    x \leftarrow x + W_O\,\mathrm{MHA}(\mathrm{LN}(x); \text{mask})

with ``context_heads`` heads of total width ``context_dim``, attending only
to the same text's real word pieces. Queries and documents are
contextualised separately, never jointly, so a document's vectors can still
be computed once and stored (see :class:`semb25.student.index.DocIndex`) and
reranking stays query-side work; idf and the exact-match head keep reading
token ids, so the BM25 special case is untouched.

:math:`W_O` starts at zero: an untrained contextualiser is the identity and
the student starts as exactly the context-free circuit.

Limitation: there are no position embeddings, so context is the bag of the
text's other word pieces; word order is not seen.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class ContextLayer(nnx.Module):
    """One pre-LN self-attention layer with a zero-initialised output."""

    def __init__(self, hidden: int, heads: int, dim: int, *, rngs: nnx.Rngs):
        self.heads, self.dim = heads, dim
        self.norm = nnx.LayerNorm(hidden, rngs=rngs)
        self.qkv = nnx.Linear(hidden, 3 * dim, use_bias=False, rngs=rngs)
        self.out = nnx.Linear(
            dim, hidden, use_bias=False, kernel_init=nnx.initializers.zeros, rngs=rngs
        )

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        """Args: x ``[batch, length, hidden]``; mask ``[batch, length]`` bool.

        Returns:
            ``[batch, length, hidden]``; padded positions attend but are never
            attended to (their outputs are ignored downstream).
        """
        b, n, _ = x.shape
        q, k, v = jnp.split(self.qkv(self.norm(x)), 3, axis=-1)
        shape = (b, n, self.heads, self.dim // self.heads)
        # A row with no real token at all (an empty text) attends uniformly:
        # finite, and masked out by the circuit anyway.
        attended = jax.nn.dot_product_attention(
            q.reshape(shape),
            k.reshape(shape),
            v.reshape(shape),
            mask=mask[:, None, None, :],
        )
        return x + self.out(attended.reshape(b, n, self.dim))


class Contextualiser(nnx.Module):
    """``context_layers`` :class:`ContextLayer` s applied in turn."""

    def __init__(self, hidden: int, layers: int, heads: int, dim: int, *, rngs):
        self.layers = nnx.List(
            [ContextLayer(hidden, heads, dim, rngs=rngs) for _ in range(layers)]
        )

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        for layer in self.layers:
            x = layer(x, mask)
        return x


def context_flops_per_token(hidden: int, layers: int, dim: int, length: float) -> int:
    """Multiply-adds x 2 of the contextualiser per token of a ``length`` text."""
    projections = 2 * hidden * 3 * dim + 2 * dim * hidden
    attention = 2 * 2 * length * dim
    return int(layers * (projections + attention))
