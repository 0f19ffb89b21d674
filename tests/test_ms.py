"""MS disease activity, the CNS compartment and the reset: exact pieces, directions and determinism."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from cartsim import endpoints, ms_outcomes
from cartsim.disease import CourseMix, diseases
from cartsim.model import build_model
from cartsim.model.ir import substitute_derived
from cartsim.population import sample, typical
from cartsim.scenario import Scenario

COLUMNS = ("relapse_rate", "gd_active", "cns_b", "cns_plasma_cells", "intrathecal_igg", "ifn_effect",
           "auto_reset", "b_auto", "mab_csf_conc", "mab_conc", "car_csf_per_uL", "b_blood_per_uL")


@pytest.fixture(scope="module")
def model():
    return build_model()


def _typical(model, therapy, days=365.0, course=None, times=None, **over):
    sc = Scenario.make(therapy, "ms", days, course=course)
    pop = typical(model, sc.disease, course)
    if over:
        pop = pop.with_parameters(over)
    return sc.run(pop, columns=COLUMNS, times=times if times is not None else np.array([0.0, 90, 180, days]))


# ---- observation model: exact expectations ---------------------------------------------------------------

def _constant(n: int, days: float, relapse_per_year: float, pira_per_year: float, gd: float):
    t = np.arange(0.0, days + 1)
    ones = np.ones((n, 1))
    return ms_outcomes.Intensities(t, ones * relapse_per_year * t / 365.25, ones * pira_per_year * t / 365.25,
                                   ones * gd + 0 * t)


def test_relapse_and_lesion_counts_are_poisson_with_the_model_means():
    n, days = 4000, 730.0
    x = _constant(n, days, 0.5, 0.0, 1.2)
    rngs = [np.random.default_rng([1, k]) for k in range(n)]
    out = ms_outcomes.draw(x, np.full(n, 2.0), rngs, 0.0, days, 168.0)
    arr = out["annualized_relapse_rate"]
    counts = arr * days / 365.25
    assert counts.mean() == pytest.approx(0.5 * days / 365.25, rel=0.05)
    assert counts.var() == pytest.approx(counts.mean(), rel=0.1)          # Poisson: variance = mean
    assert out["gd_lesions_per_scan"].mean() == pytest.approx(1.2, rel=0.05)
    assert np.all(out["edss_change"] == 0) and not out["cdp12_fraction"].any()


def test_confirmed_progression_matches_the_closed_form_probability():
    n, days = 6000, 672.0
    x = _constant(n, days, 0.3, 0.08, 0.0)
    raw = 0.2
    rngs = [np.random.default_rng([2, k]) for k in range(n)]
    out = ms_outcomes.draw(x, np.full(n, 3.0), rngs, raw, days, 168.0)
    # first worsening must be seen by the visit 12 weeks before the horizon (week 84 of 96)
    p12 = 1 - np.exp(-(0.08 + raw * 0.3) * (84 * 7) / 365.25)
    p24 = 1 - np.exp(-(0.08 + raw * 0.3) * (72 * 7) / 365.25)
    se = np.sqrt(p12 * (1 - p12) / n)
    assert out["cdp12_fraction"].mean() == pytest.approx(p12, abs=4 * se)
    assert out["cdp24_fraction"].mean() == pytest.approx(p24, abs=4 * se)
    assert ms_outcomes.expected(x, raw, days)["cdp12_probability"][0] == pytest.approx(p12, rel=1e-3)
    assert np.all(out["edss_change"] >= 0) and np.all(out["edss_change"][out["cdp12_fraction"]] >= 1.0)


@pytest.mark.parametrize("edss, after", [(0.0, 1.0), (2.5, 3.5), (5.5, 6.5), (6.0, 6.5), (9.5, 9.5)])
def test_edss_steps_follow_the_progression_definition(edss, after):
    assert ms_outcomes.edss_step(edss) == after


# ---- CNS compartment ---------------------------------------------------------------------------------------

def test_cns_niche_alone_sustains_its_share(model):
    """With no blood B cells and no killing, CNS B cells settle at cns_b_niche_share (closed form)."""
    rhs = substitute_derived(model, model.rhs()["cns_b"])
    zero = {sp.Symbol(s): 0 for s in ("b_naive_blood", "b_mem_blood", "car_cns", "flu", "cy")}
    vals = {sp.Symbol(p): model.table.value(p) for p in model.parameters} | {sp.Symbol("mab_cns_effect"): 0}
    x = sp.Symbol("cns_b")
    roots = [float(r) for r in sp.solve(rhs.xreplace(zero).xreplace(vals), x) if float(r) > 0]
    assert roots == [pytest.approx(model.table.value("cns_b_niche_share"), rel=1e-9)]


def test_cd19_cart_spares_cns_plasma_cells_bcma_cart_removes_them(model):
    def typical_endpoints(therapy):
        pop = typical(model, diseases()["ms"])
        sol = Scenario.make(therapy, "ms", 365).run(pop, columns=endpoints.COLUMNS)
        return endpoints.compute(sol, model.table, population=pop).iloc[0]
    cd19, bcma = typical_endpoints("kyv-101"), typical_endpoints("eque-cel")
    assert cd19.cns_plasma_cell_fraction_day_90 > 0.8
    assert bcma.cns_plasma_cell_fraction_day_90 < 0.1
    assert bcma.intrathecal_igg_fraction_day_180 < cd19.intrathecal_igg_fraction_day_180


def test_antibody_barely_reaches_the_cns_car_t_cells_do(model):
    ocr = _typical(model, "ocrelizumab")
    ratio = ocr.column("mab_csf_conc")[0, 1:] / ocr.column("mab_conc")[0, 1:]
    assert np.allclose(ratio, model.table.value("mab_csf_ratio"))
    # blood B cells are gone within 90 days, CNS B cells are not
    assert ocr.column("b_blood_per_uL")[0, 1] / ocr.column("b_blood_per_uL")[0, 0] < 0.01
    assert ocr.column("cns_b")[0, 1] > 0.3
    car = _typical(model, "kyv-101", times=np.array([0.0, 10.0, 30.0]))
    assert car.column("car_csf_per_uL")[0, 1] > 1.0 and car.column("cns_b")[0, 2] < 1e-3


# ---- disease activity -------------------------------------------------------------------------------------

@pytest.mark.parametrize("disease", ["healthy", "sle", "lbcl"])
def test_no_ms_activity_outside_ms(model, disease):
    sc = Scenario.make("untreated", disease, 100)
    sol = sc.run(typical(model, diseases()[disease]), columns=("relapse_cum", "pira_cum", "gd_active"))
    assert np.all(sol.values == 0)


def test_interferon_lowers_relapses_by_its_published_ratio(model):
    base = _typical(model, "untreated").column("relapse_rate")[0, -1]
    ifn = _typical(model, "interferon-beta-1a")
    e = ifn.column("ifn_effect")[0, -1]
    assert 0.95 < e < 1.0
    assert ifn.column("relapse_rate")[0, -1] / base == pytest.approx(1 - model.table.value("ifn_relapse_effect") * e,
                                                                     rel=1e-6)


def test_course_sets_progressive_values(model):
    ms = diseases()["ms"]
    pop = sample(model, ms, 3, seed=1, course="ppms")
    assert list(pop.covariates.ms_course) == ["ppms"] * 3
    assert np.all(pop.column("cns_b_niche_share") == ms.courses["ppms"].overrides["cns_b_niche_share"])
    assert typical(model, ms).covariates.ms_course.iloc[0] == "rrms"
    with pytest.raises(ValueError, match="courses: rrms, spms, ppms"):
        ms.course("cis")


def test_course_mix_draws_each_patients_course_from_its_own_stream(model):
    ms = diseases()["ms"]
    mix = CourseMix.of({"ppms": 1.0, "rrms": 3.0})
    assert mix.shares == (("ppms", 0.25), ("rrms", 0.75)) and mix.main == "rrms"
    pop = sample(model, ms, 400, seed=3, course=mix)
    courses = pop.covariates.ms_course.to_numpy()
    assert 0.19 < np.mean(courses == "ppms") < 0.31 and set(courses) == {"ppms", "rrms"}
    for name in ("ppms", "rrms"):   # each patient carries its own course's values (no IIV on the niche share)
        rows = courses == name
        niche = ms.values(name).get("cns_b_niche_share", model.table.value("cns_b_niche_share"))
        assert np.all(pop.column("cns_b_niche_share")[rows] == niche)
        assert np.all(pop.covariates.edss[rows] == ms.courses[name].edss_median)
    part = sample(model, ms, 10, seed=3, first=200, course=mix)    # the same patients, drawn in another chunk
    assert list(part.covariates.ms_course) == list(courses[200:210])
    np.testing.assert_array_equal(part.params, pop.params[200:210])
    single = sample(model, ms, 5, seed=3, course="ppms")   # a one-course population is unchanged by the mix code
    np.testing.assert_array_equal(single.params[:, 0], sample(model, ms, 5, seed=3, course=mix).params[:, 0])
    with pytest.raises(ValueError, match="number > 0"):
        CourseMix.of({"ppms": 0.0})


def test_arm_parameters_keep_random_effects_per_course(model):
    ms = diseases()["ms"]
    mix = CourseMix.of(["ppms", "rrms"])
    pop = sample(model, ms, 60, seed=4, course=mix)
    sc = Scenario.make("untreated", "ms", 30, course=mix, parameters={"ms_pira_rate": 0.1})
    set_pop, _ = sc.patient_inputs(model, pop)
    for name in ("ppms", "rrms"):
        rows = (pop.covariates.ms_course == name).to_numpy()
        ratio = pop.column("ms_pira_rate")[rows] / ms.values(name).get("ms_pira_rate",
                                                                         model.table.value("ms_pira_rate"))
        np.testing.assert_allclose(set_pop.column("ms_pira_rate")[rows], 0.1 * ratio, rtol=1e-12)


def test_shorter_reset_lets_autoreactive_clones_return_sooner(model):
    days = 1500.0
    times = np.array([0.0, 90.0, days])
    short = _typical(model, "kyv-101", days, times=times, reset_halflife=60.0)
    long = _typical(model, "kyv-101", days, times=times, reset_halflife=5000.0)
    assert short.column("auto_reset")[0, 1] > 0.8 and long.column("auto_reset")[0, 1] > 0.9
    assert short.column("b_auto")[0, -1] > 10 * long.column("b_auto")[0, -1]


def test_events_do_not_depend_on_how_patients_are_split(model):
    ms = diseases()["ms"]
    sc = Scenario.make("ocrelizumab", "ms", 400)
    whole = sample(model, ms, 6, seed=5, arm=1)
    tail = sample(model, ms, 3, seed=5, arm=1, first=3)
    a = endpoints.compute(sc.run(whole, columns=endpoints.COLUMNS), model.table, population=whole)
    b = endpoints.compute(sc.run(tail, columns=endpoints.COLUMNS), model.table, population=tail)
    cols = ["annualized_relapse_rate", "gd_lesions_per_scan", "edss_change", "cdp12_fraction"]
    assert a[cols].iloc[3:].reset_index(drop=True).equals(b[cols].reset_index(drop=True))
