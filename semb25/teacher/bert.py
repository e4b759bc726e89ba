"""A BERT encoder for the MiniLM teachers, written from scratch in Flax NNX.

One post-LayerNorm transformer layer (Devlin et al. 2019, "BERT"; MiniLM, Wang et
al. 2020, uses the same block with fewer, narrower layers):

    a_h     = softmax(Q_h K_h^T / sqrt(d_head) + mask_bias)       [batch, L, L]
    c_h     = a_h V_h                                            [batch, L, d_head]
    x       = LayerNorm(x + W_o [c_1; ...; c_H] + b_o)
    x       = LayerNorm(x + W_2 gelu(W_1 x + b_1) + b_2)           gelu: exact (erf)

Embeddings are word + absolute position + token type, then LayerNorm. Two heads:

- ``kind="cross"`` (BertForSequenceClassification, e.g.
  ``cross-encoder/ms-marco-MiniLM-L-6-v2``): ``score = w^T tanh(P h_[CLS] + p) + c``,
  one logit per (query, doc) pair.
- ``kind="bi"`` (sentence-transformers, e.g. ``all-MiniLM-L6-v2``): mean of the
  token vectors over the attention mask (or the [CLS] vector), L2-normalised;
  the score of two texts is the dot product of their embeddings (cosine).

Head ablation (for the head analysis): for chosen (layer, head) pairs the head's
context vector c_h is replaced, at every position, by a given mean vector before
the output projection W_o. With zero means this is the usual "head mask".

Usage::

    model = Bert(BertConfig.from_hf(config_dict), kind="cross", rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    out = bert_forward(graphdef, state, input_ids, token_type_ids, attention_mask)
    out["scores"]        # [batch]

Inputs everywhere: ``input_ids, token_type_ids: [batch, L] int32`` and
``attention_mask: [batch, L]`` (1 = real token, 0 = padding).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

KINDS = ("cross", "bi")
POOLINGS = ("mean", "cls")
SQRT_HALF = 1.0 / math.sqrt(2.0)


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The fields of a Hugging Face ``config.json`` that the forward pass uses."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_hf(cls, config: dict[str, Any], source: str = "config.json") -> BertConfig:
        """Read a HF BERT config dict; unsupported variants raise one-line errors."""
        act = config.get("hidden_act", "gelu")
        if act != "gelu":
            raise ValueError(
                f"{source}: hidden_act {act!r} unsupported, expected 'gelu'"
            )
        pos = config.get("position_embedding_type", "absolute")
        if pos != "absolute":
            raise ValueError(
                f"{source}: position_embedding_type {pos!r} unsupported, "
                "expected 'absolute'"
            )
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = [n for n in fields if n not in config and n in _REQUIRED]
        if missing:
            raise ValueError(f"{source}: missing key {missing[0]!r}")
        cfg = cls(**{k: config[k] for k in fields if k in config})
        if cfg.hidden_size % cfg.num_attention_heads:
            raise ValueError(
                f"{source}: hidden_size {cfg.hidden_size} is not a multiple of "
                f"num_attention_heads {cfg.num_attention_heads}"
            )
        return cfg


_REQUIRED = {
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
}


def gelu(x: jax.Array) -> jax.Array:
    """Exact GELU, ``x Phi(x) = x (1 + erf(x / sqrt 2)) / 2`` (Hendrycks & Gimpel
    2016), written with erf as BERT and torch do; ``jax.nn.gelu(approximate=False)``
    goes through erfc, which XLA:CPU evaluates several times slower."""
    return 0.5 * x * (1.0 + jax.lax.erf(x * SQRT_HALF))


class Embeddings(nnx.Module):
    def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs):
        self.word = nnx.Embed(cfg.vocab_size, cfg.hidden_size, rngs=rngs)
        self.position = nnx.Embed(
            cfg.max_position_embeddings, cfg.hidden_size, rngs=rngs
        )
        self.token_type = nnx.Embed(cfg.type_vocab_size, cfg.hidden_size, rngs=rngs)
        self.norm = nnx.LayerNorm(
            cfg.hidden_size, epsilon=cfg.layer_norm_eps, rngs=rngs
        )

    def __call__(self, input_ids: jax.Array, token_type_ids: jax.Array) -> jax.Array:
        """``input_ids, token_type_ids: [batch, L]`` -> ``[batch, L, hidden]``."""
        positions = jnp.arange(input_ids.shape[1])[None, :]
        x = (
            self.word(input_ids)
            + self.position(positions)
            + self.token_type(token_type_ids)
        )
        return self.norm(x)


class Layer(nnx.Module):
    """One post-LN transformer block; returns attention probs and head contexts."""

    def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs):
        h, eps = cfg.hidden_size, cfg.layer_norm_eps
        self.n_heads, self.head_dim = cfg.num_attention_heads, cfg.head_dim
        self.query = nnx.Linear(h, h, rngs=rngs)
        self.key = nnx.Linear(h, h, rngs=rngs)
        self.value = nnx.Linear(h, h, rngs=rngs)
        self.attn_out = nnx.Linear(h, h, rngs=rngs)
        self.attn_norm = nnx.LayerNorm(h, epsilon=eps, rngs=rngs)
        self.ffn_in = nnx.Linear(h, cfg.intermediate_size, rngs=rngs)
        self.ffn_out = nnx.Linear(cfg.intermediate_size, h, rngs=rngs)
        self.ffn_norm = nnx.LayerNorm(h, epsilon=eps, rngs=rngs)

    def __call__(
        self,
        x: jax.Array,
        mask_bias: jax.Array,
        ablate: jax.Array | None = None,
        ablate_mean: jax.Array | None = None,
        return_probs: bool = False,
    ) -> tuple[jax.Array, jax.Array | None, jax.Array]:
        """``x: [batch, L, hidden]``, ``mask_bias: [batch, 1, 1, L]``,
        ``ablate: [heads] bool``, ``ablate_mean: [heads, head_dim]``.

        Returns ``(x [batch, L, hidden], probs [batch, heads, L, L] or None,
        context [batch, L, heads, head_dim])`` (context before ablation; probs
        only with ``return_probs``).
        """
        b, n = x.shape[:2]
        qkv = self.qkv(x).reshape(b, n, 3, self.n_heads, self.head_dim)
        # Head-major [3, heads, batch, L, head_dim]: one head at a time below.
        qkv = jnp.transpose(qkv, (2, 3, 0, 1, 4))
        bias = mask_bias[:, 0]  # [batch, 1, L]
        scale = math.sqrt(self.head_dim)

        def head(qkv_h):  # [3, batch, L, head_dim] -> context_h, probs_h
            q, k, v = qkv_h
            logits = jnp.matmul(q, jnp.swapaxes(k, 1, 2)) / scale  # [batch, L, L]
            probs = jax.nn.softmax(logits + bias, axis=-1)
            return jnp.matmul(probs, v), (probs if return_probs else None)

        # A loop over heads keeps each [batch, L, L] block cache-sized; the batch
        # axis (the sharded one) stays whole inside the loop.
        context, probs = jax.lax.map(head, jnp.moveaxis(qkv, 1, 0))
        context = jnp.transpose(context, (1, 2, 0, 3))  # [batch, L, heads, hd]
        if return_probs:
            probs = jnp.moveaxis(probs, 0, 1)  # [batch, heads, L, L]

        # Mean-ablate chosen heads: their context is replaced at every position.
        mixed = context
        if ablate is not None:
            mixed = jnp.where(
                ablate[None, None, :, None], ablate_mean[None, None], context
            )

        x = self.attn_norm(x + self.attn_out(mixed.reshape(b, n, -1)))
        x = self.ffn_norm(x + self.ffn_out(gelu(self.ffn_in(x))))
        return x, probs, context

    def qkv(self, x: jax.Array) -> jax.Array:
        """``[batch, L, hidden] -> [batch, L, 3 hidden]``: Q, K, V in one matmul."""
        kernel = jnp.concatenate(
            [self.query.kernel.value, self.key.kernel.value, self.value.kernel.value],
            axis=1,
        )
        bias = jnp.concatenate(
            [self.query.bias.value, self.key.bias.value, self.value.bias.value]
        )
        return x @ kernel + bias


class Bert(nnx.Module):
    """BERT body plus a cross-encoder (pooler + 1 logit) or bi-encoder head."""

    def __init__(
        self, cfg: BertConfig, kind: str, *, pooling: str = "mean", rngs: nnx.Rngs
    ):
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r} unknown, expected one of {KINDS}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r} unknown, expected one of {POOLINGS}")
        self.cfg, self.kind, self.pooling = cfg, kind, pooling
        self.embeddings = Embeddings(cfg, rngs=rngs)
        self.layers = nnx.List(
            [Layer(cfg, rngs=rngs) for _ in range(cfg.num_hidden_layers)]
        )
        if kind == "cross":
            self.pooler = nnx.Linear(cfg.hidden_size, cfg.hidden_size, rngs=rngs)
            self.classifier = nnx.Linear(cfg.hidden_size, 1, rngs=rngs)

    def __call__(
        self,
        input_ids: jax.Array,
        token_type_ids: jax.Array,
        attention_mask: jax.Array,
        head_ablation: tuple[jax.Array, jax.Array] | None = None,
        return_attentions: bool = False,
        return_contexts: bool = False,
    ) -> dict[str, jax.Array]:
        """Run the encoder and the head.

        ``head_ablation = (ablate [layers, heads] bool, mean [layers, heads,
        head_dim])``. Returns ``scores: [batch]`` (cross) or ``embeddings:
        [batch, hidden]`` (bi, unit norm); with ``return_attentions`` also
        ``attentions: [batch, layers, heads, L, L]``; with ``return_contexts``
        also ``contexts: [batch, layers, L, heads, head_dim]`` (pre-ablation).
        """
        mask = attention_mask.astype(jnp.float32)
        # Padding keys get the most negative float, as HF does: exp() is exactly 0.
        mask_bias = ((1.0 - mask) * jnp.finfo(jnp.float32).min)[:, None, None, :]
        x = self.embeddings(input_ids, token_type_ids)

        probs_all, contexts_all = [], []
        for i, layer in enumerate(self.layers):
            ablate = mean = None
            if head_ablation is not None:
                ablate, mean = head_ablation[0][i], head_ablation[1][i]
            x, probs, context = layer(
                x, mask_bias, ablate, mean, return_probs=return_attentions
            )
            probs_all.append(probs)
            contexts_all.append(context)

        out: dict[str, jax.Array] = {}
        if self.kind == "cross":
            pooled = jnp.tanh(self.pooler(x[:, 0]))
            out["scores"] = self.classifier(pooled)[:, 0]
        else:
            if self.pooling == "mean":
                summed = jnp.einsum("bld,bl->bd", x, mask)
                emb = summed / jnp.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
            else:
                emb = x[:, 0]
            norm = jnp.linalg.norm(emb, axis=-1, keepdims=True)
            out["embeddings"] = emb / jnp.maximum(norm, 1e-12)
        if return_attentions:
            out["attentions"] = jnp.stack(probs_all, axis=1)
        if return_contexts:
            out["contexts"] = jnp.stack(contexts_all, axis=1)
        return out


@functools.partial(
    jax.jit, static_argnames=("graphdef", "return_attentions", "return_contexts")
)
def bert_forward(
    graphdef: nnx.GraphDef,
    state: nnx.State,
    input_ids: jax.Array,
    token_type_ids: jax.Array,
    attention_mask: jax.Array,
    head_ablation: tuple[jax.Array, jax.Array] | None = None,
    return_attentions: bool = False,
    return_contexts: bool = False,
) -> dict[str, jax.Array]:
    """Pure, jit-compiled forward of ``nnx.merge(graphdef, state)``.

    Split the model once with ``nnx.split`` and call this per batch: XLA
    compiles once per (batch, L) shape and output set, with no NNX retracing.
    """
    model = nnx.merge(graphdef, state)
    return model(
        input_ids,
        token_type_ids,
        attention_mask,
        head_ablation=head_ablation,
        return_attentions=return_attentions,
        return_contexts=return_contexts,
    )
