"""``cartsim power``: configuration keys, the statistical tests, power of null and clear comparisons, determinism."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats
from typer.testing import CliRunner

from cartsim.cli import app
from cartsim.errors import CartsimInputError
from cartsim.model import build_model
from cartsim.trial import cohort, hypothesis
from cartsim.trial.config import parse_config
from cartsim.trial.power import (
    PowerPlan,
    analyse,
    draw_replicates,
    prepare_power,
    rate_exposure,
    replicate_seed,
    run_power,
)
from cartsim.trial.run import execute, prepare

runner = CliRunner()

CONFIG = """\
[trial]
name = "power test"
seed = 7
horizon_days = {horizon}
primary_endpoint = "{endpoint}"

[population]
n = {n}
disease = "ms"

[[arm]]
name = "first"
therapy = "{first}"

[[arm]]
name = "second"
therapy = "{second}"
"""


def config(endpoint: str = "bcell_nadir_per_uL", first: str = "untreated", second: str = "untreated",
           n: int = 15, horizon: int = 30, **replace: str) -> str:
    text = CONFIG.format(endpoint=endpoint, first=first, second=second, n=n, horizon=horizon)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def error(text: str) -> str:
    with pytest.raises(CartsimInputError) as err:
        parse_config(text, "t.toml")
    return str(err.value)


def line_of(text: str, fragment: str) -> int:
    return 1 + next(i for i, line in enumerate(text.splitlines()) if fragment in line)


# ---- configuration -----------------------------------------------------------------------------

def test_defaults():
    cfg = parse_config(config())
    assert cfg.trial.alpha == 0.05 and cfg.trial.mri_interval_weeks == 24 and cfg.trial.comparison is None
    assert cfg.comparison_arms() == (0, 1)
    cfg = parse_config(config(**{'primary_endpoint': 'comparison = ["second", "first"]\nprimary_endpoint'}))
    assert cfg.comparison_arms() == (1, 0)


def test_unknown_primary_endpoint_names_field_line_and_allowed():
    text = config(endpoint="relapses")
    msg = error(text)
    assert msg.startswith("trial.primary_endpoint: unknown endpoint 'relapses'")
    assert f"t.toml line {line_of(text, 'primary_endpoint')}" in msg
    assert re.search(r"allowed: .*annualized_relapse_rate.*bcell_reappearance_day.*edss_change", msg)


@pytest.mark.parametrize("comparison, field, expected", [
    ('["first", "third"]', "trial.comparison[1]", "unknown arm 'third'"),
    ('["zeroth", "first"]', "trial.comparison[0]", "unknown arm 'zeroth'"),
    ('["first", "first"]', "trial.comparison", "with itself"),
])
def test_bad_comparison_arm(comparison, field, expected):
    text = config(**{"primary_endpoint": f"comparison = {comparison}\nprimary_endpoint"})
    msg = error(text)
    assert msg.startswith(f"{field}: ") and expected in msg
    assert f"t.toml line {line_of(text, 'comparison')}" in msg
    if "unknown" in expected:
        assert "allowed: 'first', 'second'" in msg


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.05"])
def test_alpha_out_of_range(value):
    text = config(**{"primary_endpoint": f"alpha = {value}\nprimary_endpoint"})
    msg = error(text)
    assert msg.startswith(f"trial.alpha: must satisfy 0 < alpha < 1, got {value} ")
    assert f"t.toml line {line_of(text, 'alpha')}" in msg


def test_mri_interval_and_arm_n_must_be_positive():
    msg = error(config(**{"primary_endpoint": "mri_interval_weeks = 0\nprimary_endpoint"}))
    assert msg.startswith("trial.mri_interval_weeks:") and "allowed: > 0" in msg
    msg = error(config(**{'therapy = "untreated"\n': 'therapy = "untreated"\nn = 0\n'}))
    assert msg.startswith("arm[0].n:") and "allowed: >= 1" in msg


@pytest.mark.parametrize("args, field", [
    (["--replicates", "0"], "--replicates"),
    (["--replicates", "-3"], "--replicates"),
    (["--replicates", "many"], "--replicates"),
    (["--replicates", "5", "--seed", "-1"], "--seed"),
    (["--replicates", "5", "--workers", "0"], "--workers"),
])
def test_cli_bad_options_exit_2_and_write_nothing(tmp_path, args, field):
    cfg = tmp_path / "t.toml"
    cfg.write_text(config())
    out = tmp_path / "out"
    r = runner.invoke(app, ["power", str(cfg), "--out", str(out), *args])
    assert r.exit_code == 2 and r.output.startswith(f"error: {field}: ") and r.output.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("text, field", [
    (config(**{'primary_endpoint = "bcell_nadir_per_uL"\n': ""}), "trial.primary_endpoint"),
    (config(endpoint="bogus"), "trial.primary_endpoint"),
    (config(**{"primary_endpoint": 'comparison = ["first", "nobody"]\nprimary_endpoint'}), "trial.comparison[1]"),
    (config(**{"primary_endpoint": "alpha = 2\nprimary_endpoint"}), "trial.alpha"),
])
def test_cli_bad_config_exit_2_before_simulating(tmp_path, monkeypatch, text, field):
    from cartsim.trial import power

    monkeypatch.setattr(power, "simulate_chunk", lambda *a, **k: pytest.fail("simulated despite bad input"))
    cfg = tmp_path / "t.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    r = runner.invoke(app, ["power", str(cfg), "--replicates", "10", "--out", str(out)])
    assert r.exit_code == 2 and r.output.startswith(f"error: {field}: ") and r.output.count("\n") == 1
    assert not out.exists()


def test_one_arm_trial_has_no_comparison():
    text = config().split("[[arm]]\nname = \"second\"")[0]
    with pytest.raises(CartsimInputError, match="a comparison needs two arms"):
        prepare_power(parse_config(text), 10)


# ---- the statistical tests against textbook and SciPy values ------------------------------------

# Freireich EJ et al. Blood 1963;21:699 (6-MP vs placebo in acute leukaemia, weeks of remission; as in
# Kleinbaum DG, Klein M. Survival Analysis, 3rd ed., 2012, ch. 2: log-rank chi-square 16.79, E1 = 19.25).
MP_WEEKS = [6, 6, 6, 6, 7, 9, 10, 10, 11, 13, 16, 17, 19, 20, 22, 23, 25, 32, 32, 34, 35]
MP_CENSORED = [0, 0, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1]
PLACEBO_WEEKS = [1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23]


def test_logrank_freireich():
    ta, ea = np.array(MP_WEEKS, float), ~np.array(MP_CENSORED, bool)
    tb, eb = np.array(PLACEBO_WEEKS, float), np.ones(21, bool)
    res = hypothesis.logrank(ta, ea, tb, eb)
    assert stats.chi2.isf(res.p_value, 1) == pytest.approx(16.79, abs=0.01)
    assert hypothesis.logrank(tb, eb, ta, ea).p_value == pytest.approx(res.p_value)
    assert hypothesis.logrank(ta, np.zeros(21, bool), tb, np.zeros(21, bool)).p_value == 1.0   # no events


def test_hazard_ratio_is_the_cox_estimate_of_r_survival():
    """The same data (MASS::gehan): R's coxph(Surv(time, cens) ~ treat) gives exp(coef) 4.82 for control vs
    6-MP, 95% CI 2.15-10.8 (Efron ties; Venables WN, Ripley BD. Modern Applied Statistics with S, 4th ed.,
    2002, section 13.3). A / B = 6-MP / placebo is its inverse. The O/E ratio of the log-rank test that
    cartsim reported before gives 0.24, biased towards 1."""
    ta, ea = np.array(MP_WEEKS, float), ~np.array(MP_CENSORED, bool)
    tb, eb = np.array(PLACEBO_WEEKS, float), np.ones(21, bool)
    res = hypothesis.logrank(ta, ea, tb, eb)
    assert 1 / res.effect == pytest.approx(4.817, abs=0.001)
    assert 1 / res.ci95[1] == pytest.approx(2.147, abs=0.001) and 1 / res.ci95[0] == pytest.approx(10.81, abs=0.01)
    back = hypothesis.logrank(tb, eb, ta, ea)
    assert back.effect == pytest.approx(1 / res.effect, rel=1e-6)
    # Breslow ties reproduce Kleinbaum & Klein's (Stata) 4.523, 2.027-10.094: the same fitter, other ties
    from statsmodels.duration.hazard_regression import PHReg
    fit = PHReg(np.r_[tb, ta], np.r_[np.ones(21), np.zeros(21)][:, None], status=np.r_[eb, ea].astype(float),
                ties="breslow").fit()
    assert np.exp(fit.params[0]) == pytest.approx(4.523, abs=0.001)


def test_hazard_ratio_not_estimable_when_an_arm_has_no_events():
    """With no events in one arm the Cox estimate runs off to 0 or infinity: NaN and no interval, p still tested."""
    ta, ea = np.array(MP_WEEKS, float), np.zeros(21, bool)
    tb, eb = np.array(PLACEBO_WEEKS, float), np.ones(21, bool)
    for res in (hypothesis.logrank(ta, ea, tb, eb), hypothesis.logrank(tb, eb, ta, ea)):
        assert np.isnan(res.effect) and res.ci95 is None and res.p_value < 1e-6


def test_fisher_lady_tasting_tea():
    # Fisher RA. The Design of Experiments, 1935: 3 of 4 cups right, two-sided p = 34/70
    res = hypothesis.fisher(np.array([1, 1, 1, 0], bool), np.array([1, 0, 0, 0], bool))
    assert res.p_value == pytest.approx(34 / 70) and res.effect == 0.5


def test_welch_textbook_example():
    # Welch's t-test, worked example 1 (Wikipedia "Welch's t-test"): t = -2.46, df = 24.99, p = 0.021
    a = np.array([27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4])
    b = np.array([27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4])
    se2 = a.var(ddof=1) / a.size + b.var(ddof=1) / b.size
    t = (a.mean() - b.mean()) / np.sqrt(se2)
    df = se2**2 / ((a.var(ddof=1) / a.size) ** 2 / (a.size - 1) + (b.var(ddof=1) / b.size) ** 2 / (b.size - 1))
    res = hypothesis.welch(a, b)
    assert t == pytest.approx(-2.46, abs=0.005) and df == pytest.approx(24.99, abs=0.005)
    assert res.p_value == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-12)
    assert res.p_value == pytest.approx(0.021, abs=0.0005) and res.effect == pytest.approx(a.mean() - b.mean())
    assert hypothesis.welch(np.full(4, 2.0), np.full(5, 2.0)).p_value == 1.0
    assert hypothesis.welch(np.full(4, 2.0), np.full(5, 3.0)).p_value == 0.0


def test_mann_whitney_exact_and_with_ties():
    # SciPy's documented example (Conover, Practical Nonparametric Statistics): U = 17, exact p = 0.1111
    res = hypothesis.mann_whitney(np.array([19, 22, 16, 29, 24.0]), np.array([20, 11, 17, 12.0]))
    assert res.p_value == pytest.approx(1 / 9) and res.effect == pytest.approx(17 / 20)
    # grades with ties: normal approximation with tie and continuity correction, computed by hand
    a, b = np.array([0, 0, 1, 1, 2, 3, 0, 1]), np.array([0, 0, 0, 1, 0, 0, 2, 0])
    ranks = stats.rankdata(np.concatenate([a, b]))
    u = ranks[: a.size].sum() - a.size * (a.size + 1) / 2
    n = a.size + b.size
    ties = np.unique(np.concatenate([a, b]), return_counts=True)[1]
    sd = np.sqrt(a.size * b.size / 12 * ((n + 1) - np.sum(ties**3 - ties) / (n * (n - 1))))
    p = 2 * stats.norm.sf((abs(u - a.size * b.size / 2) - 0.5) / sd)
    res = hypothesis.mann_whitney(a, b)
    assert res.p_value == pytest.approx(p, rel=1e-12) and res.effect == pytest.approx(u / (a.size * b.size))
    assert hypothesis.mann_whitney(np.zeros(5), np.zeros(6)).p_value == 1.0


def _nb_lr_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Likelihood-ratio p-value by general maximisation of SciPy's negative binomial log-pmf."""
    def nll(log_means, log_alpha):
        r = np.exp(-log_alpha)
        return -sum(stats.nbinom.logpmf(y, r, r / (r + np.exp(m))).sum() for y, m in zip((a, b), log_means))

    opts = {"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000}
    full = optimize.minimize(lambda t: nll(t[:2], t[2]), [0, 0, 0], method="Nelder-Mead", options=opts)
    null = optimize.minimize(lambda t: nll([t[0], t[0]], t[1]), [0, 0], method="Nelder-Mead", options=opts)
    return float(stats.chi2.sf(2 * (null.fun - full.fun), 1))


def test_negative_binomial_against_general_maximum_likelihood():
    a = np.array([0, 1, 2, 5, 0, 3, 7, 0, 1, 4, 0, 2])
    b = np.array([1, 0, 0, 0, 2, 0, 1, 3, 0, 0, 0, 1])
    res = hypothesis.negative_binomial(a, b)
    assert res.p_value == pytest.approx(_nb_lr_reference(a, b), rel=1e-5) and res.effect == pytest.approx(2.5 / 0.8)
    assert res.p_value == pytest.approx(0.0455, abs=1e-4)
    assert res.ci95[0] < 2.5 / 0.8 < res.ci95[1] and res.ci95[0] > 1.0     # p < 0.05: the interval excludes 1


def _nb_reference_with_exposure(a, b, xa, xb) -> tuple[float, float]:
    """Rate ratio and LR p-value maximising SciPy's NB2 log-pmf with mean = rate x exposure."""
    def nll(log_rates, log_alpha):
        r = np.exp(-log_alpha)
        return -sum(stats.nbinom.logpmf(y, r, r / (r + np.exp(m) * x)).sum()
                    for y, m, x in zip((a, b), log_rates, (xa, xb)))

    opts = {"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000}
    full = optimize.minimize(lambda t: nll(t[:2], t[2]), [0, 0, 0], method="Nelder-Mead", options=opts)
    null = optimize.minimize(lambda t: nll([t[0], t[0]], t[1]), [0, 0], method="Nelder-Mead", options=opts)
    return float(np.exp(full.x[0] - full.x[1])), float(stats.chi2.sf(2 * (null.fun - full.fun), 1))


def test_negative_binomial_uses_each_patients_exposure():
    """Patients followed for different times: the rate ratio is not the ratio of mean counts."""
    a = np.array([0, 1, 2, 5, 0, 3, 7, 0, 1, 4, 0, 2])
    b = np.array([1, 0, 0, 0, 2, 0, 1, 3, 0, 0, 0, 1])
    xa = np.array([0.5, 1, 1, 2, 0.5, 2, 2, 1, 1, 2, 0.5, 1.5])
    xb = np.array([2, 1, 1, 2, 2, 1, 1, 2, 2, 1, 1, 2.0])
    ratio, p = _nb_reference_with_exposure(a, b, xa, xb)
    res = hypothesis.negative_binomial(a, b, xa, xb)
    assert res.effect == pytest.approx(ratio, rel=1e-4) and res.p_value == pytest.approx(p, rel=1e-4)
    assert abs(res.effect - a.mean() / b.mean()) > 0.5
    # equal exposure for all: the same as without exposure, at any scale
    assert hypothesis.negative_binomial(a, b, np.full(12, 2.0), np.full(12, 2.0)).p_value == pytest.approx(
        hypothesis.negative_binomial(a, b).p_value, rel=1e-7)


def test_negative_binomial_without_overdispersion_is_the_poisson_test():
    a, b = np.array([2, 3, 2, 3, 2, 3, 2, 3]), np.array([1, 1, 2, 1, 1, 2, 1, 1])
    loglik = lambda y, mu: np.sum(y * np.log(mu) - mu)  # noqa: E731
    pooled = np.concatenate([a, b])
    lr = 2 * (loglik(a, a.mean()) + loglik(b, b.mean()) - loglik(pooled, pooled.mean()))
    assert hypothesis.negative_binomial(a, b).p_value == pytest.approx(stats.chi2.sf(lr, 1), rel=1e-9)
    assert hypothesis.negative_binomial(np.zeros(4), np.zeros(4)).p_value == 1.0
    none = hypothesis.negative_binomial(np.zeros(6), np.array([1, 0, 3, 2, 1, 0]))
    assert none.p_value < 0.05 and none.effect == 0.0 and none.ci95 is None    # no events in A: no interval


def _null_rejections(sample, replicates: int = 2000) -> float:
    rng = np.random.default_rng(1)
    return float(np.mean([sample(rng).p_value < 0.05 for _ in range(replicates)]))


@pytest.mark.parametrize("kind", ["continuous", "binary", "rate", "time_to_event", "ordinal"])
def test_each_test_keeps_its_level_under_the_null(kind):
    """Two arms from one distribution (overdispersed counts for rates): rejections ~ alpha (Fisher: at most)."""
    n = 40
    samplers = {
        "continuous": lambda g: hypothesis.welch(g.lognormal(0, 1, n), g.lognormal(0, 1, n)),
        "binary": lambda g: hypothesis.fisher(g.random(n) < 0.3, g.random(n) < 0.3),
        "rate": lambda g: hypothesis.negative_binomial(g.negative_binomial(1.0, 1 / 3, n),
                                                       g.negative_binomial(1.0, 1 / 3, n)),
        "time_to_event": lambda g: hypothesis.logrank(*_censored(g, n), *_censored(g, n)),
        "ordinal": lambda g: hypothesis.mann_whitney(g.choice(5, n, p=[.5, .2, .15, .1, .05]),
                                                     g.choice(5, n, p=[.5, .2, .15, .1, .05])),
    }
    rate = _null_rejections(samplers[kind])
    assert rate <= 0.05 + 0.015 and (kind == "binary" or rate >= 0.05 - 0.015)


def _censored(g: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.round(g.exponential(100.0, n))
    return np.minimum(t, 120.0), t < 120.0


def test_poisson_test_would_overstate_power_for_overdispersed_counts():
    """Why rates use a negative binomial test: a Poisson test rejects far too often for relapse-like counts."""
    def poisson(g):
        a, b = g.negative_binomial(1.0, 1 / 3, 40), g.negative_binomial(1.0, 1 / 3, 40)
        p = stats.binomtest(int(a.sum()), int(a.sum() + b.sum()), 0.5).pvalue if a.sum() + b.sum() else 1.0
        return hypothesis.TestResult(p, np.nan)
    assert _null_rejections(poisson, 500) > 0.15


def test_rate_endpoint_counts_and_exposure():
    """A rate endpoint is tested on per-patient counts (rate x exposure) and reported as a rate ratio."""
    text = config(endpoint="annualized_relapse_rate", horizon=730,
                  **{"primary_endpoint": "mri_interval_weeks = 12\nprimary_endpoint"})
    cfg = parse_config(text)
    years = rate_exposure(cfg, "annualized_relapse_rate")
    assert years == pytest.approx(730 / 365.25) and rate_exposure(cfg, "gd_lesions_per_scan") == 8
    a = np.array([0, 1, 2, 5, 0, 3, 7, 0, 1, 4, 0, 2] * 2)
    b = np.array([1, 0, 0, 0, 2, 0, 1, 3, 0, 0, 0, 1] * 2)
    frame = lambda counts: pd.DataFrame({"patient": np.arange(counts.size), "status": "ok",  # noqa: E731
                                         "value": counts / years})
    plan = PowerPlan(cfg.with_n(12), 2, (0, 1), "annualized_relapse_rate", "rate", 100)
    doc = analyse(plan, {0: frame(a), 1: frame(b)})
    expected = hypothesis.negative_binomial(a[:12], b[:12])
    assert [r["p_value"] for r in doc["per_replicate"]] == pytest.approx([expected.p_value] * 2)
    assert doc["effect"]["median"] == pytest.approx(2.5 / 0.8) and doc["power"] == 1.0
    assert doc["exposure_per_patient"] == {"value": pytest.approx(years), "unit": "patient-years"}
    assert doc["test"].startswith("negative binomial")


# ---- replicates ---------------------------------------------------------------------------------

def test_replicate_cohorts_are_drawn_from_their_own_seed():
    cfg = parse_config(config(n=4, **{"[population]": "[population]\nage = [30, 40]"}))
    seeds = {replicate_seed(7, r) for r in range(100)}
    assert len(seeds) == 100 and replicate_seed(7, 3) == replicate_seed(7, 3) != replicate_seed(8, 3)
    model = build_model()
    flat = draw_replicates(cfg, model, 1, 2, 7)           # patients 2..3 of replicate 0, 0..3 of 1, 0 of 2
    parts = [cohort.draw(cfg.with_seed(replicate_seed(7, r)), model, 1, k, m) for r, k, m in ((0, 2, 2), (1, 0, 4),
                                                                                             (2, 0, 1))]
    assert np.array_equal(flat.params, np.vstack([p.params for p in parts]))
    assert flat.covariates["age"].between(30, 40).all()
    assert list(flat.covariates["patient"]) == [2, 3, 0, 1, 2, 3, 0]
    # the clinical events too: each row keeps its replicate's seed and its arm (a regression: they once fell
    # back to seed 0 and arm 0, so every replicate and both arms drew the same relapses and progression)
    trial_rows = [(p, k) for p in parts for k in range(len(p))]
    for i, (p, k) in enumerate(trial_rows):
        assert flat.event_rng(i).random() == p.event_rng(k).random()
    assert flat.event_rng(2).random() != flat.event_rng(6).random()      # patient 0 of replicates 1 and 2
    assert draw_replicates(cfg, model, 0, 2, 1).event_rng(0).random() != flat.event_rng(0).random()   # arm 0


def test_identical_arms_with_clinical_events_reject_at_about_alpha(tmp_path):
    """Relapses are drawn per patient: identical arms must not share their draws (regression, see above)."""
    replicates = 300
    text = config("annualized_relapse_rate", n=15, horizon=365).replace('disease = "ms"',
                                                                          'disease = "ms"\nms_course = "rrms"')
    doc = power_json(tmp_path, "events", text, "--replicates", str(replicates))
    assert doc["test"].startswith("negative binomial") and doc["untestable_replicates"] < 10
    assert stats.binomtest(doc["rejections"], replicates - doc["untestable_replicates"], 0.05).pvalue > 0.001
    assert len({r["effect"] for r in doc["per_replicate"]}) > 20    # the arms do not draw the same events


def power_json(tmp_path, name: str, text: str, *args: str) -> dict:
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(text)
    out = tmp_path / name
    r = runner.invoke(app, ["power", str(cfg), "--out", str(out), *args])
    assert r.exit_code == 0, r.output
    assert re.search(r"power\s+\d", r.output) and "wrote" in r.output
    return json.loads((out / "power.json").read_text())


def test_same_seed_identical_for_any_workers_and_chunking(tmp_path):
    text = config(n=6)
    one = power_json(tmp_path, "one", text, "--replicates", "12", "--workers", "1")
    two = power_json(tmp_path, "two", text, "--replicates", "12", "--workers", "2")
    chunked = power_json(tmp_path, "chunked", text, "--replicates", "12", "--chunk-size", "5")
    assert one == two == chunked
    assert len({r["p_value"] for r in one["per_replicate"]}) == 12          # fresh cohorts in each replicate
    other = power_json(tmp_path, "other", text, "--replicates", "12", "--seed", "8")
    assert other["seed"] == 8 and other["per_replicate"] != one["per_replicate"]


def test_clear_difference_has_power_near_one(tmp_path):
    """CD19 CAR-T against no treatment: CRS in most CAR-T patients and none without it."""
    doc = power_json(tmp_path, "clear", config("crs_max_grade", "kyv-101", "untreated", n=10), "--replicates", "20")
    assert doc["kind"] == "ordinal" and doc["test"].startswith("Mann-Whitney")
    assert doc["power"] >= 0.95 and doc["power_ci95"][0] > 0.75 and doc["effect"]["median"] > 0.7
    assert doc["n_per_arm"] == {"first": 10, "second": 10} and doc["replicates"] == 20


@pytest.mark.parametrize("endpoint, therapy, horizon, n, test", [
    ("bcell_nadir_per_uL", "untreated", 30, 15, "Welch"),
    ("bcell_reappearance_day", "kyv-101", 150, 20, "log-rank"),
])
def test_identical_arms_reject_at_about_alpha(tmp_path, endpoint, therapy, horizon, n, test):
    """The same therapy in both arms: the rejection rate is within binomial error of alpha."""
    replicates = 300
    doc = power_json(tmp_path, "null", config(endpoint, therapy, therapy, n=n, horizon=horizon),
                     "--replicates", str(replicates))
    assert test in doc["test"] and doc["untestable_replicates"] == 0
    assert stats.binomtest(doc["rejections"], replicates, 0.05).pvalue > 0.001


def test_endpoint_the_model_does_not_compute_is_refused(tmp_path):
    """An endpoint the model does not compute for the disease (MS disability outside MS) is refused after
    simulating one patient per arm."""
    cfg = tmp_path / "t.toml"
    cfg.write_text(config(endpoint="edss_change", **{'disease = "ms"': 'disease = "sle"'}))
    r = runner.invoke(app, ["power", str(cfg), "--replicates", "3", "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "trial.primary_endpoint: 'edss_change'" in r.output and "does not compute" in r.output
    assert not (tmp_path / "out").exists()


def test_endpoint_that_does_not_apply_to_an_arm_is_refused():
    plan = prepare_power(parse_config(config(endpoint="bcell_repletion_after_last_dose_week", n=3)), 2)
    with pytest.raises(CartsimInputError, match="has no value in arm 'first'"):
        run_power(plan)


# ---- unequal arms in trials ---------------------------------------------------------------------

def test_per_arm_n_in_a_trial_and_n_override(tmp_path):
    text = config(n=4, **{'name = "second"\n': 'name = "second"\nn = 2\n'})
    cfg = parse_config(text)
    assert [cfg.arm_n(0), cfg.arm_n(1)] == [4, 2] and [cfg.with_n(3).arm_n(a) for a in (0, 1)] == [3, 3]
    out = tmp_path / "trial"
    result = execute(prepare(cfg, out, chunk_size=3))
    assert [a["n"] for a in result.summary["arms"]] == [4, 2]
    assert pd.read_parquet(out / "patients.parquet").groupby("arm").size().tolist() == [4, 2]


def test_hazard_ratio_not_estimable_is_counted_and_said():
    """Replicates whose arm A has no events give no hazard ratio: power.json counts them and the CLI says so."""
    from cartsim.cli import _power_rows

    cfg = parse_config(config(endpoint="bcell_reappearance_day"))
    t = np.array([30.0, 60.0, 90.0, 120.0] * 2)
    a = pd.DataFrame({"patient": np.arange(8), "status": "ok", "value": t, "censored": True})
    b = pd.DataFrame({"patient": np.arange(8), "status": "ok", "value": t, "censored": [False, True] * 4})
    doc = analyse(PowerPlan(cfg.with_n(4), 2, (0, 1), "bcell_reappearance_day", "time_to_event", 100),
                  {0: a, 1: b})
    assert doc["effect"]["not_estimable_replicates"] == 2 and doc["effect"]["median"] is None
    assert all(r["effect"] is None and r["effect_ci95"] is None for r in doc["per_replicate"])
    assert "not estimable in 2 replicates" in dict(_power_rows(doc))["effect"]
    assert doc["effect"]["measure"].startswith("hazard ratio (A / B) of a Cox")
