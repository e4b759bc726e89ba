"""Significance tests and confidence intervals against textbook values."""

import math

import pytest

from semb25.evaluate.significance import confidence_interval, holm, paired_ttest


def test_paired_ttest_matches_hand_formula():
    a = {"q1": 0.5, "q2": 0.7, "q3": 0.4, "q4": 0.9}
    b = {"q1": 0.4, "q2": 0.5, "q3": 0.4, "q4": 0.6}
    # d = .1, .2, 0, .3: mean .15, sd sqrt(.05/3), t = mean / (sd / 2).
    t, p = paired_ttest(a, b)
    assert t == pytest.approx(0.15 / (math.sqrt(0.05 / 3) / 2))
    # t = 2.324 on 3 df; t tables: 2.353 at two-sided 0.10, 1.638 at 0.20.
    assert 0.10 < p < 0.20
    t_rev, p_rev = paired_ttest(b, a)
    assert t_rev == pytest.approx(-t) and p_rev == pytest.approx(p)


def test_paired_ttest_uses_shared_queries_only():
    t, _ = paired_ttest({"q1": 1.0, "q2": 0.0, "q3": 5.0}, {"q1": 0.0, "q2": 0.0})
    # Shared q1, q2: d = 1, 0 -> mean .5, sd .7071, t = .5 / (.7071 / sqrt 2) = 1.
    assert t == pytest.approx(1.0)


def test_identical_values_give_no_evidence():
    assert paired_ttest({"q1": 0.3, "q2": 0.5}, {"q1": 0.3, "q2": 0.5}) == (0.0, 1.0)


def test_constant_nonzero_difference_is_certain():
    t, p = paired_ttest({"q1": 1.0, "q2": 1.0}, {"q1": 0.0, "q2": 0.0})
    assert t == math.inf and p == 0.0


def test_holm_step_down_by_hand():
    # Sorted .01, .03, .04 -> 3*.01=.03, 2*.03=.06, 1*.04=.04 -> monotone .06.
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.2, 0.9]) == pytest.approx([0.4, 0.9])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_t_interval_of_one_to_five():
    # mean 3, sd sqrt(2.5), t(0.975, 4) = 2.7764 -> 3 +- 2.7764 * 0.7071.
    lo, hi = confidence_interval([1, 2, 3, 4, 5])
    assert lo == pytest.approx(3 - 2.7764 * math.sqrt(0.5), abs=1e-3)
    assert hi == pytest.approx(3 + 2.7764 * math.sqrt(0.5), abs=1e-3)


def test_bootstrap_interval_is_close_to_t_on_many_values():
    values = [((i * 37) % 101) / 100 for i in range(200)]
    t_lo, t_hi = confidence_interval(values)
    b_lo, b_hi = confidence_interval(values, method="bootstrap", n_resamples=2000)
    assert b_lo == pytest.approx(t_lo, abs=0.01) and b_hi == pytest.approx(
        t_hi, abs=0.01
    )


def test_constant_values_collapse_the_interval():
    assert confidence_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)


def test_unknown_ci_method_raises():
    with pytest.raises(ValueError, match="method expected 't' or 'bootstrap'"):
        confidence_interval([1.0, 2.0], method="jackknife")
