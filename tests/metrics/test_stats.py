import math

import numpy as np
import pytest
from scipy import integrate, stats as sp
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from metrics import stats


@pytest.mark.parametrize("p", [1e-6, 0.001, 0.02, 0.3, 0.5, 0.77, 0.975, 0.999999])
def test_normal_ppf_matches_scipy(p):
    assert stats.normal_ppf(p) == pytest.approx(sp.norm.ppf(p), abs=1e-9)


@pytest.mark.parametrize("x,n", [(0, 10), (3, 10), (29110, 41000), (10, 10), (1, 2000)])
def test_wilson_matches_statsmodels(x, n):
    assert stats.wilson_interval(x, n) == pytest.approx(proportion_confint(x, n, method="wilson"), abs=1e-12)


@pytest.mark.parametrize("x1,n1,x2,n2", [(28540, 41000, 29110, 41000), (0, 50, 3, 60), (12, 40, 12, 40), (199, 200, 150, 220)])
def test_newcombe_matches_statsmodels(x1, n1, x2, n2):
    expected = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff")
    assert stats.newcombe_diff_ci(x1, n1, x2, n2) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("control,treatment,share", [(5000, 5000, 0.5), (5200, 4800, 0.5), (9000, 1100, 0.1), (700, 450, 0.5)])
def test_chi_square_srm_matches_scipy(control, treatment, share):
    n = control + treatment
    expected = sp.chisquare([control, treatment], [n * (1 - share), n * share])
    statistic, p_value = stats.chi_square_srm(control=control, treatment=treatment, expected_treatment_share=share)
    assert statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("estimate,variance,tau", [(0.01, 1e-5, 0.02), (-0.003, 4e-6, 0.005), (0.0, 1e-4, 0.01), (0.05, 3e-4, 0.02)])
def test_msprt_is_the_normal_mixture_likelihood_ratio(estimate, variance, tau):
    sd = math.sqrt(variance)

    def integrand(theta):
        return sp.norm.pdf(estimate, theta, sd) / sp.norm.pdf(estimate, 0, sd) * sp.norm.pdf(theta, 0, tau)

    expected, _ = integrate.quad(integrand, -20 * tau, 20 * tau, points=[estimate], limit=200)
    assert stats.msprt_normal(estimate=estimate, variance=variance, tau=tau) == pytest.approx(expected, rel=1e-6)


def test_msprt_false_alarms_stay_below_alpha_with_peeking():
    rng = np.random.default_rng(0)
    alpha, runs, alarms = 0.05, 400, 0
    for _ in range(runs):
        a = rng.random(4000) < 0.7
        b = rng.random(4000) < 0.7
        for n in range(200, 4001, 100):
            pa, pb = a[:n].mean(), b[:n].mean()
            variance = (pa * (1 - pa) + pb * (1 - pb)) / n
            if stats.msprt_normal(estimate=pb - pa, variance=variance, tau=0.02) >= 1 / alpha:
                alarms += 1
                break
    assert alarms / runs <= alpha


def test_psi_and_bands():
    current = {"a": 50, "b": 30, "c": 20}
    reference = {"a": 30, "b": 30, "c": 40}
    c = np.array([0.5, 0.3, 0.2])
    r = np.array([0.3, 0.3, 0.4])
    assert stats.psi(current, reference) == pytest.approx(float(np.sum((c - r) * np.log(c / r))))
    assert stats.psi_band(0.05) == "stable" and stats.psi_band(0.2) == "moderate" and stats.psi_band(0.3) == "major"
    assert stats.psi({"a": 1}, {}) is None


def test_quantile_from_histogram_is_nearest_rank():
    values = list(range(1, 101))
    histogram = {v: 1 for v in values}
    for q in (0.5, 0.95, 0.99):
        assert stats.histogram_quantile(histogram, q, float) == float(np.percentile(values, q * 100, method="inverted_cdf"))


def test_ratio_variance_matches_a_direct_delta_method():
    rng = np.random.default_rng(1)
    x = rng.integers(100, 10000, 500).astype(float)
    y = x * (rng.random(500) < 0.05)
    ratio = y.sum() / x.sum()
    expected = np.var(y - ratio * x, ddof=1) / (len(x) * x.mean() ** 2)
    got = stats.ratio_variance(sum_y=y.sum(), sum_x=x.sum(), sum_yy=(y * y).sum(), sum_xx=(x * x).sum(),
                               sum_xy=(x * y).sum(), n=len(x))
    assert got == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("estimate,variance,taus", [(0.01, 1e-5, (0.02,)), (-0.003, 4e-6, (0.005,)), (0.0, 1e-4, (0.1,)),
                                                    (0.09, 2e-3, (0.1,)), (0.02, 3e-4, (0.02, 0.1))])
def test_one_sided_msprt_is_the_half_normal_mixture_likelihood_ratio(estimate, variance, taus):
    sd = math.sqrt(variance)
    expected = 0.0
    for tau in taus:
        def integrand(theta, tau=tau):
            return sp.norm.pdf(estimate, theta, sd) / sp.norm.pdf(estimate, 0, sd) * sp.halfnorm.pdf(theta, 0, tau)

        value, _ = integrate.quad(integrand, 0, 20 * tau, points=[max(estimate, 0.0)], limit=200)
        expected += value / len(taus)
    assert stats.msprt_one_sided(estimate=estimate, variance=variance, taus=taus) == pytest.approx(expected, rel=1e-6)


def test_one_sided_msprt_gains_on_the_symmetric_mixture_only_in_the_harmful_direction():
    for estimate in (0.01, 0.03, 0.08):
        one_sided = stats.msprt_one_sided(estimate=estimate, variance=1e-4, taus=(0.05,))
        symmetric = stats.msprt_normal(estimate=estimate, variance=1e-4, tau=0.05)
        assert symmetric < one_sided <= 2 * symmetric
    assert stats.msprt_one_sided(estimate=-0.03, variance=1e-4, taus=(0.05,)) < 0.05


@pytest.mark.parametrize("estimate,variance,taus,alpha", [(0.1, 1e-3, (0.1,), 0.05 / 27), (0.02, 1e-5, (0.02,), 0.05),
                                                          (-0.01, 1e-4, (0.1, 0.02), 0.01)])
def test_always_valid_lower_bound_inverts_the_test(estimate, variance, taus, alpha):
    bound = stats.always_valid_lower_bound(estimate=estimate, variance=variance, taus=taus, alpha=alpha)
    assert bound < estimate
    # at the bound the test of "theta <= bound" is exactly at its threshold; just above it, not rejected
    assert stats.log_msprt_one_sided(estimate=estimate - bound, variance=variance, taus=taus) == pytest.approx(math.log(1 / alpha), abs=1e-6)
    assert stats.msprt_one_sided(estimate=estimate - bound - 1e-6, variance=variance, taus=taus) < 1 / alpha + 1e-3
    # the always-valid bound is below the fixed-sample one-sided bound at the same level
    assert bound < estimate - sp.norm.ppf(1 - alpha) * math.sqrt(variance)


def test_one_sided_msprt_false_alarms_stay_below_alpha_with_peeking():
    rng = np.random.default_rng(3)
    alpha, runs, alarms = 0.05, 400, 0
    for _ in range(runs):
        a = rng.random(3000) < 0.6
        b = rng.random(3000) < 0.6
        for n in range(100, 3001, 50):  # a look every 50 orders per arm, from 100
            pa, pb = a[:n].mean(), b[:n].mean()
            variance = (pa * (1 - pa) + pb * (1 - pb)) / n
            if stats.msprt_one_sided(estimate=pa - pb, variance=variance, taus=(0.1,)) >= 1 / alpha:
                alarms += 1
                break
    assert alarms / runs <= alpha


@pytest.mark.parametrize("x1,n1,x2,n2,alpha", [(60, 120, 850, 2000, 0.0005), (466, 466, 17, 3500, 0.0005),
                                               (10, 300, 3, 3000, 0.01), (0, 100, 0, 100, 0.0005)])
def test_default_share_rise_lower_bound_matches_statsmodels(x1, n1, x2, n2, alpha):
    expected = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff", alpha=2 * alpha)[0]
    assert stats.default_share_rise_lower_bound(defaults=x1, n=n1, ref_defaults=x2, ref_n=n2, alpha=alpha) == pytest.approx(expected, abs=1e-12)


def test_psi_chance_level_is_the_mean_psi_of_unchanged_distributions():
    rng = np.random.default_rng(4)
    p = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.03, 0.01, 0.01])
    values = []
    for _ in range(400):
        current = rng.multinomial(400, p)
        reference = rng.multinomial(3000, p)
        values.append(stats.psi({i: int(c) for i, c in enumerate(current)}, {i: int(r) for i, r in enumerate(reference)}))
    chance = stats.psi_chance_level(bins=len(p), n=400, ref_n=3000)
    assert np.mean(values) == pytest.approx(chance, rel=0.2)
