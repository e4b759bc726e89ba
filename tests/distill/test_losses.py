"""Distillation losses: values by hand, masks that really mask."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from semb25.distill.losses import combined_loss, listwise_kl, margin_mse, pointwise_mse

S = jnp.array([[2.0, 0.5, -1.0, 9.0]])
T = jnp.array([[1.0, 0.0, 0.5, -7.0]])
W = jnp.array([[True, True, True, False]])


def test_margin_mse_by_hand():
    # Teacher-ordered pairs among the 3 real candidates: (0,1), (0,2), (2,1).
    expected = np.mean(
        [
            ((2 - 0.5) - (1 - 0)) ** 2,
            ((2 + 1) - (1 - 0.5)) ** 2,
            ((-1 - 0.5) - (0.5 - 0)) ** 2,
        ]
    )
    assert float(margin_mse(S, T, W)) == pytest.approx(expected, rel=1e-6)


def test_listwise_kl_by_hand_and_zero_at_equality():
    p = np.exp([1.0, 0.0, 0.5]) / np.exp([1.0, 0.0, 0.5]).sum()
    q = np.exp([2.0, 0.5, -1.0]) / np.exp([2.0, 0.5, -1.0]).sum()
    assert float(listwise_kl(S, T, W)) == pytest.approx(
        np.sum(p * np.log(p / q)), rel=1e-5
    )
    assert float(listwise_kl(T, T, W)) == pytest.approx(0.0, abs=1e-6)
    shifted = T + 3.0  # softmax is shift-invariant
    assert float(listwise_kl(shifted, T, W)) == pytest.approx(0.0, abs=1e-6)


def test_pointwise_mse_by_hand():
    expected = np.mean([(2 - 1) ** 2, 0.5**2, (-1 - 0.5) ** 2])
    assert float(pointwise_mse(S, T, W)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("fn", [listwise_kl, margin_mse, pointwise_mse])
def test_padded_candidates_do_not_count(fn):
    other = S.at[0, 3].set(-1e4)
    other_t = T.at[0, 3].set(1e4)
    assert float(fn(S, T, W)) == pytest.approx(float(fn(other, other_t, W)), rel=1e-6)


def test_combined_loss_weights_and_rejects_unknown_names():
    total, terms = combined_loss(S, T, W, {"listwise_kl": 1.0, "margin_mse": 0.5})
    assert float(total) == pytest.approx(
        float(terms["listwise_kl"]) + 0.5 * float(terms["margin_mse"]), rel=1e-6
    )
    with pytest.raises(ValueError, match="unknown loss"):
        combined_loss(S, T, W, {"ranknet": 1.0})
