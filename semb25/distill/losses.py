r"""Distillation losses over each query's candidate list, with explicit masks.

All losses take ``student: [batch, n_docs]``, ``teacher: [batch, n_docs]``
(standardised teacher scores) and ``where: [batch, n_docs]`` (False on padded
candidates), and return a scalar mean over queries (or pairs).

- Listwise KL (Hinton et al. 2015 style soft targets over a ranking list):
  :math:`\mathrm{CE}(\mathrm{softmax}(t/T), \mathrm{softmax}(s/T))`, which has
  the same gradient as KL; via ``optax.losses.softmax_cross_entropy`` with
  ``where``.
- Margin-MSE (Hofstätter et al. 2020, arXiv:2010.02666):
  :math:`((s_i - s_j) - (t_i - t_j))^2` over every pair of candidates of a
  query where the teacher prefers i to j, the list generalisation of the
  (positive, negative) triple form.
- Pointwise MSE on standardised teacher scores, via
  ``optax.losses.squared_error``.

>>> import jax.numpy as jnp
>>> s = jnp.array([[2.0, 1.0, 0.0]]); m = jnp.array([[True, True, False]])
>>> float(margin_mse(s, s, m))
0.0
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

LOSSES = ("listwise_kl", "margin_mse", "pointwise_mse")


def listwise_kl(
    student: jax.Array, teacher: jax.Array, where: jax.Array, temperature: float = 1.0
) -> jax.Array:
    """Cross-entropy of the student's list softmax against the teacher's."""
    neg = jnp.finfo(student.dtype).min
    targets = jax.nn.softmax(jnp.where(where, teacher / temperature, neg), axis=-1)
    targets = jnp.where(where, targets, 0.0)
    ce = optax.losses.softmax_cross_entropy(student / temperature, targets, where=where)
    # Subtracting the teacher's entropy turns CE into KL (>= 0, 0 when equal).
    entropy = -jnp.sum(jnp.where(where, targets * jnp.log(targets + 1e-30), 0.0), -1)
    valid = where.sum(-1) >= 2
    return jnp.sum(jnp.where(valid, ce - entropy, 0.0)) / jnp.maximum(valid.sum(), 1)


def margin_mse(student: jax.Array, teacher: jax.Array, where: jax.Array) -> jax.Array:
    """Margin-MSE over all teacher-ordered candidate pairs of each query."""
    ds = student[:, :, None] - student[:, None, :]
    dt = teacher[:, :, None] - teacher[:, None, :]
    pair = where[:, :, None] & where[:, None, :] & (dt > 0)
    err = optax.losses.squared_error(ds, dt)
    return jnp.sum(jnp.where(pair, err, 0.0)) / jnp.maximum(pair.sum(), 1)


def pointwise_mse(
    student: jax.Array, teacher: jax.Array, where: jax.Array
) -> jax.Array:
    """Mean squared error to the standardised teacher scores."""
    err = optax.losses.squared_error(student, teacher)
    return jnp.sum(jnp.where(where, err, 0.0)) / jnp.maximum(where.sum(), 1)


def combined_loss(
    student, teacher, where, weights: dict[str, float], temperature: float = 1.0
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted sum of the selected losses and each term (for logging).

    Args:
        weights: ``{loss_name: weight}`` over :data:`LOSSES`; zero weights
            are skipped.
    """
    unknown = sorted(set(weights) - set(LOSSES))
    if unknown:
        raise ValueError(f"loss weights: unknown loss(es) {unknown}; known {LOSSES}")
    terms = {}
    if weights.get("listwise_kl", 0.0):
        terms["listwise_kl"] = listwise_kl(student, teacher, where, temperature)
    if weights.get("margin_mse", 0.0):
        terms["margin_mse"] = margin_mse(student, teacher, where)
    if weights.get("pointwise_mse", 0.0):
        terms["pointwise_mse"] = pointwise_mse(student, teacher, where)
    if not terms:
        raise ValueError("loss weights: at least one loss needs a non-zero weight")
    total = sum(weights[k] * v for k, v in terms.items())
    return total, terms
