"""Statistics for KPIs and guardrails, in plain Python (no scipy at runtime).

- `newcombe_diff_ci`: 95 % interval for a difference of two proportions, Newcombe's hybrid
  score method (method 10 of Newcombe 1998, built from two Wilson intervals); it behaves well
  at small counts and rates near 0, where the Wald interval fails.
- `wald_diff_ci`: Wald interval for a difference of two ratio estimates with given variances
  (used for the money-weighted fraud-loss rate, via the delta method).
- `msprt_normal`: mixture sequential probability ratio test (Johari et al. 2017, "Always valid
  inference") with a normal mixing distribution N(0, tau^2) over the effect, on the normal
  approximation of the difference of two rates. Its p-value min(1, 1/Lambda) stays valid however
  often it is looked at; one-sided use (reject only when the estimate points to harm) keeps the
  error rate at or below alpha.
- `msprt_one_sided`: the same test for a one-sided question (is the harm above 0?): the mixing
  distribution is a half-normal over positive effects only (or an equal-weight mixture of a few
  half-normals), so no evidence is spent on the direction that does not matter: Lambda is about
  twice the symmetric mixture's when the estimate points to harm. Under any effect <= 0 it is a
  non-negative supermartingale, so rejecting at Lambda >= 1/alpha is valid at every look.
  `always_valid_lower_bound` inverts it: the harm every always-valid test still rejects.
- `default_share_rise_lower_bound`: one-sided lower confidence bound of a rise in a share
  (Newcombe hybrid score, from two Wilson intervals), for feature health.
- `chi_square_srm`: Pearson chi-square goodness-of-fit of the arm counts against the expected
  share (1 degree of freedom).
- `psi`: population stability index with the usual bands.
"""
from __future__ import annotations

import math

Z95 = 1.959963984540054


def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def normal_sf(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def normal_ppf(p: float) -> float:
    """Inverse of the standard normal CDF (Acklam's rational approximation + one Newton step)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    a = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
         -3.066479806614716e+01, 2.506628277459239e+00)
    b = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01,
         -1.328068155288572e+01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
         4.374664141464968e+00, 2.938163982698783e+00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00)
    low = 0.02425
    if p < low:
        q = math.sqrt(-2 * math.log(p))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    elif p <= 1 - low:
        q = p - 0.5
        r = q * q
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    else:
        q = math.sqrt(-2 * math.log(1 - p))
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    e = normal_cdf(x) - p
    u = e * math.sqrt(2 * math.pi) * math.exp(x * x / 2)
    return x - u / (1 + x * u / 2)


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe_diff_ci(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float] | None:
    """CI of p1 - p2 (Newcombe hybrid score); None when either sample is empty."""
    if n1 <= 0 or n2 <= 0:
        return None
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, z)
    l2, u2 = wilson_interval(x2, n2, z)
    delta = p1 - p2
    lower = delta - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = delta + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (lower, upper)


def wald_diff_ci(estimate1: float, variance1: float, estimate2: float, variance2: float, z: float = Z95) -> tuple[float, float]:
    half = z * math.sqrt(max(0.0, variance1) + max(0.0, variance2))
    delta = estimate1 - estimate2
    return (delta - half, delta + half)


def ratio_variance(*, sum_y: float, sum_x: float, sum_yy: float, sum_xx: float, sum_xy: float, n: int) -> float:
    """Delta-method variance of R = sum(y) / sum(x) over n independent units."""
    if n <= 1 or sum_x <= 0:
        return 0.0
    ratio = sum_y / sum_x
    mean_x = sum_x / n
    # sample variance of the residuals y - R x
    residual_ss = sum_yy - 2 * ratio * sum_xy + ratio * ratio * sum_xx
    return max(0.0, residual_ss / (n - 1)) / (n * mean_x * mean_x)


def msprt_normal(*, estimate: float, variance: float, tau: float) -> float:
    """Mixture likelihood ratio Lambda of H0: theta = 0 vs theta ~ N(0, tau^2), for an estimate
    of theta with the given variance (normal approximation). Reject at level alpha when
    Lambda >= 1/alpha; the always-valid p-value is min(1, 1/Lambda)."""
    if variance <= 0:
        return 1.0
    t2 = tau * tau
    log_lambda = 0.5 * math.log(variance / (variance + t2)) + (t2 * estimate * estimate) / (2 * variance * (variance + t2))
    return math.exp(min(log_lambda, 700.0))


def _log_normal_cdf(x: float) -> float:
    if x > -30:
        return math.log(max(normal_cdf(x), 1e-300))
    # Mills ratio asymptote: log Phi(x) ~ log phi(x) - log(-x) for very negative x
    return -0.5 * x * x - math.log(-x) - 0.5 * math.log(2 * math.pi)


def log_msprt_one_sided(*, estimate: float, variance: float, taus: tuple[float, ...] | list[float]) -> float:
    """log Lambda of H0: theta <= 0 against theta ~ half-normal(tau) on theta > 0, averaged with
    equal weights over `taus` (normal approximation of the estimate, variance known):
    Lambda_tau = 2 sqrt(V / (V + tau^2)) exp(x^2 tau^2 / (2 V (V + tau^2))) Phi(x tau / sqrt(V (V + tau^2)))."""
    if variance <= 0:
        return 0.0
    logs = []
    for tau in taus:
        t2 = tau * tau
        logs.append(math.log(2.0) + 0.5 * math.log(variance / (variance + t2))
                    + (t2 * estimate * estimate) / (2 * variance * (variance + t2))
                    + _log_normal_cdf(estimate * tau / math.sqrt(variance * (variance + t2))))
    top = max(logs)
    return top + math.log(sum(math.exp(v - top) for v in logs) / len(logs))


def msprt_one_sided(*, estimate: float, variance: float, taus: tuple[float, ...] | list[float]) -> float:
    """Lambda of `log_msprt_one_sided` (capped at e^700). Reject H0: theta <= 0 when Lambda >= 1/alpha;
    the always-valid one-sided p-value is min(1, 1/Lambda)."""
    return math.exp(min(log_msprt_one_sided(estimate=estimate, variance=variance, taus=taus), 700.0))


def always_valid_lower_bound(*, estimate: float, variance: float, taus, alpha: float) -> float | None:
    """The largest c such that the one-sided mSPRT of H0: theta <= c still rejects at `alpha`
    (Lambda(estimate - c) >= 1/alpha): an always-valid (1 - alpha) lower confidence bound of theta.
    Lambda grows with the estimate, so the bound is found by bisection. None when variance is 0."""
    if variance <= 0:
        return None
    target = math.log(1 / alpha)
    sd = math.sqrt(variance)
    high = estimate  # Lambda(0) < 1 <= 1/alpha: never rejected at c = estimate
    low = estimate - sd
    while log_msprt_one_sided(estimate=estimate - low, variance=variance, taus=taus) < target:
        low -= 2 * (high - low)
    for _ in range(80):
        mid = (low + high) / 2
        if log_msprt_one_sided(estimate=estimate - mid, variance=variance, taus=taus) >= target:
            low = mid
        else:
            high = mid
        if high - low <= 1e-10 * max(1.0, abs(low)):
            break
    return low


def default_share_rise_lower_bound(*, defaults: int, n: int, ref_defaults: int, ref_n: int, alpha: float) -> float | None:
    """One-sided (1 - alpha) lower bound of (share now - share in the reference), Newcombe hybrid
    score; None when a sample is empty."""
    interval = newcombe_diff_ci(defaults, n, ref_defaults, ref_n, z=normal_ppf(1 - alpha))
    return None if interval is None else interval[0]


def psi_chance_level(*, bins: int, n: int, ref_n: int) -> float | None:
    """What PSI is by chance alone when nothing changed: PSI ~ (1/n + 1/n_ref) chi-square with
    bins - 1 degrees of freedom, whose mean is (bins - 1)(1/n + 1/n_ref)."""
    if n <= 0 or ref_n <= 0:
        return None
    return max(bins - 1, 1) * (1 / n + 1 / ref_n)


def confidence_sequence_radius(*, variance: float, tau: float, alpha: float) -> float:
    """Half-width of the always-valid (1 - alpha) confidence sequence matching `msprt_normal`."""
    if variance <= 0:
        return 0.0
    t2 = tau * tau
    return math.sqrt(variance * (variance + t2) / t2 * (2 * math.log(1 / alpha) + math.log((variance + t2) / variance)))


def chi2_sf_df1(statistic: float) -> float:
    """Survival function of the chi-square distribution with one degree of freedom."""
    if statistic <= 0:
        return 1.0
    return math.erfc(math.sqrt(statistic / 2))


def chi_square_srm(*, control: int, treatment: int, expected_treatment_share: float) -> tuple[float, float] | None:
    """(statistic, p-value) of the observed split vs the expected one; None if not testable."""
    n = control + treatment
    if n == 0 or not 0.0 < expected_treatment_share < 1.0:
        return None
    expected_t = n * expected_treatment_share
    expected_c = n - expected_t
    statistic = (treatment - expected_t) ** 2 / expected_t + (control - expected_c) ** 2 / expected_c
    return statistic, chi2_sf_df1(statistic)


PSI_EPSILON = 1e-4


def psi(current: dict[str, float], reference: dict[str, float]) -> float | None:
    """PSI = sum (c - r) ln(c / r) over the union of bins of the two count distributions (empty
    bins floored at 1e-4 so a new category counts instead of dividing by zero)."""
    total_c = sum(current.values())
    total_r = sum(reference.values())
    if total_c <= 0 or total_r <= 0:
        return None
    value = 0.0
    for key in set(current) | set(reference):
        c = max(current.get(key, 0) / total_c, PSI_EPSILON)
        r = max(reference.get(key, 0) / total_r, PSI_EPSILON)
        value += (c - r) * math.log(c / r)
    return value


def psi_band(value: float | None) -> str | None:
    if value is None:
        return None
    if value < 0.1:
        return "stable"
    if value <= 0.25:
        return "moderate"
    return "major"


def histogram_quantile(counts: dict[int, int], q: float, value_of) -> float | None:
    """Nearest-rank quantile from a histogram {bin: count}."""
    n = sum(counts.values())
    if n <= 0:
        return None
    rank = max(1, math.ceil(q * n))
    running = 0
    for index in sorted(counts):
        running += counts[index]
        if running >= rank:
            return value_of(index)
    return value_of(max(counts))


def histogram_quantile_ci(counts: dict[int, int], q: float, value_of, z: float = Z95) -> tuple[float, float] | None:
    """Distribution-free CI of a quantile: the order statistics at ranks n q -/+ z sqrt(n q (1-q))."""
    n = sum(counts.values())
    if n <= 0:
        return None
    half = z * math.sqrt(n * q * (1 - q))
    low_rank = max(1, math.floor(n * q - half))
    high_rank = min(n, math.ceil(n * q + half) + 1)
    low = histogram_quantile(counts, low_rank / n, value_of)
    high = histogram_quantile(counts, high_rank / n, value_of)
    return (low, high)
