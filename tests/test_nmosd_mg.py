"""NMOSD and myasthenia gravis (model/nmosd.py, model/mg.py; MuSK myasthenia gravis, disease ``mg-musk``), the
anti-CD19 antibody and the mRNA CAR-T."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from cartsim import endpoints, mg_outcomes, nmosd_outcomes
from cartsim.disease import _with_base, diseases
from cartsim.errors import CartsimInputError
from cartsim.exporters.sbml import to_sbml
from cartsim.model import build_model
from cartsim.model.ir import substitute_derived
from cartsim.population import sample, typical
from cartsim.scenario import Scenario
from cartsim.therapy import products
from cartsim.validate import MUSK_RITUXIMAB

YEAR = 365.25


@pytest.fixture(scope="module")
def model():
    return build_model()


def _run(model, therapy, disease, days, columns, **kw):
    sc = Scenario.make(therapy, disease, days, **kw)
    times = np.arange(0.0, days + 1e-9, 1.0)
    return times, sc.run(typical(model, sc.disease, sc.course), columns=columns, times=times)


@pytest.mark.parametrize("disease", ["nmosd", "mg"])
def test_untreated_autoantibody_and_disease_activity_stay_at_baseline(model, disease):
    """Without therapy every new state is at its steady state: the autoantibody equals its baseline, the
    junction damage is 1, MG-ADL stays at the disease's baseline and the attack intensity is constant."""
    t, sol = _run(model, "untreated", disease, 2 * YEAR,
                  ("autoantibody", "autoantibody_level", "mg_junction", "mg_adl", "attack_rate"))
    for col in ("autoantibody", "mg_junction", "mg_adl", "attack_rate"):
        v = sol.column(col)[0]
        assert v == pytest.approx(np.full(v.size, v[0]), rel=1e-9, abs=1e-15), col
    aab, floor = sol.column("autoantibody")[0], model.table.value("autoantibody_floor")
    assert sol.column("autoantibody_level")[0] == pytest.approx(aab / (aab + floor), rel=1e-12)
    if disease == "mg":
        assert sol.column("mg_adl")[0, 0] == pytest.approx(9.0)


def test_untreated_nmosd_attacks_follow_the_analytic_count(model):
    """Expected attacks grow linearly: rate * (1 - imax + imax * activity0) * t / 365.25 (antibody at baseline)."""
    t, sol = _run(model, "untreated", "nmosd", 400.0, ("attack_cum", "ms_b_activity"))
    tab = model.table
    imax, act0 = tab.value("nmosd_attack_imax"), sol.column("ms_b_activity")[0, 0]
    rate = 0.9082 * (1 - imax + imax * act0) / YEAR
    assert sol.column("attack_cum")[0] == pytest.approx(rate * t, rel=1e-7, abs=1e-12)


def test_anti_cd19_antibody_removes_plasmablasts_that_anti_cd20_spares(model):
    """Plasmablasts and CD19+ plasma cells carry CD19, not CD20: inebilizumab kills them directly, while with
    ocrelizumab plasmablasts fall only as fast as their supply from memory B cells goes (their own death rate)
    and the longer-lived CD19+ plasma cells barely move in a week; neither touches CD19- plasma cells."""
    cols = ("pb", "pc_cd19", "pc")
    _, ineb = _run(model, "inebilizumab", "nmosd", 14.0, cols)
    _, ocr = _run(model, "ocrelizumab", "nmosd", 14.0, cols)
    week = {name: {c: s.column(c)[0, 7] / s.column(c)[0, 0] for c in cols} for name, s in (("ineb", ineb),
                                                                                           ("ocr", ocr))}
    assert week["ineb"]["pb"] < 0.01 and week["ineb"]["pc_cd19"] < 0.01
    assert 0.1 < week["ocr"]["pb"] < 0.5
    assert week["ocr"]["pc_cd19"] > 0.99
    assert week["ineb"]["pc"] > 0.99 and week["ocr"]["pc"] > 0.99


def test_a_zero_dose_of_an_mrna_car_t_changes_nothing(model):
    """Descartes-08 at 0 cells/kg (no lymphodepletion) gives the untreated course (to solver round-off: the
    empty infusions still restart the integrator)."""
    cols = ("b_blood_per_uL", "igg", "autoantibody", "mg_adl", "car_blood_per_uL")
    _, none = _run(model, "untreated", "mg", 120.0, cols)
    _, zero = _run(model, "descartes-08", "mg", 120.0, cols, dose="0 cells/kg")
    assert zero.values == pytest.approx(none.values, rel=1e-9, abs=1e-12)


def test_an_mrna_car_does_not_expand_and_is_lost_at_its_expression_halflife(model):
    """Descartes-08: six weekly infusions, each peak within 10% of the first (no expansion: activated cells do not
    contract, and the homeostatic boost adds a few percent; a viral-vector CAR expands many-fold), and after the
    last infusion CAR-T cells fall at least as fast as CAR expression decays (half-life 2.5 days)."""
    p = products()["descartes-08"]
    assert p.infusion_days == (0.0, 7.0, 14.0, 21.0, 28.0, 35.0)
    sc = Scenario.make("descartes-08", "mg", 70.0)
    assert [d for d, _ in sc.dosing()] == list(p.infusion_days)
    times = np.arange(0.0, 70.0 + 1e-9, 0.25)
    car = sc.run(typical(model, sc.disease), columns=("car_blood_per_uL",), times=times).column("car_blood_per_uL")[0]
    peaks = [car[(times >= d) & (times < d + 7)].max() for d in p.infusion_days]
    assert max(peaks) <= peaks[0] * 1.1
    i, j = np.searchsorted(times, [40.0, 45.0])
    assert car[j] <= car[i] * 2 ** (-5.0 / 2.5) * (1 + 1e-9)     # halved at least every 2.5 days (or gone)


def test_an_mrna_car_kills_and_is_activated_at_its_signal_share(model):
    """The same cells kill and are activated at ``mrna_car_signal`` of the rate when their CAR is from mRNA."""
    table = model.table
    values = {sp.Symbol(n): table.value(n) for n in model.parameters if table.value(n) is not None}
    potency = substitute_derived(model, sp.Symbol("car_potency"))
    viral, mrna = (float(potency.subs(values | {sp.Symbol("car_mrna"): v})) for v in (0, 1))
    assert mrna / viral == pytest.approx(table.value("mrna_car_signal"), rel=1e-12)
    assert 0 < table.value("mrna_car_signal") < 1
    activation = [f for f in model.flows if f.target == "car_act" and f.source is None]
    assert len(activation) == 1 and sp.Symbol("car_signal") in activation[0].rate.free_symbols


def test_efgartigimod_improves_mg_adl_after_the_antibody_falls(model):
    """The junction lags the antibody: MG-ADL is lowest after the anti-AChR antibody's lowest point, and the
    improvement is mg_antibody_share of the recovery of the failing share of junctions (safety factor)."""
    t, sol = _run(model, "efgartigimod", "mg", 84.0, ("autoantibody_level", "mg_junction", "mg_adl"))
    aab, junction, adl = (sol.column(c)[0] for c in ("autoantibody_level", "mg_junction", "mg_adl"))
    assert t[np.argmin(adl)] > t[np.argmin(aab)]
    value = model.table.value
    share, k50, h = value("mg_antibody_share"), value("mg_junction_k50"), value("mg_junction_hill")
    failing = junction ** h * (1 + k50 ** h) / (junction ** h + k50 ** h)
    assert adl == pytest.approx(9.0 * (1 - share * (1 - failing)), rel=1e-12)


def test_safety_factor_spares_a_partial_fall_and_lifts_a_deep_one(model):
    """The failing share of junctions is 1 untreated, 0 without damage and a Hill function with the table's
    threshold: a partial fall of the damage (to 0.6 or more of untreated, as in an efgartigimod cycle) lifts
    less of the weakness than in proportion, a deep one (to 0.3 or less) more."""
    value = model.table.value
    k50, h = value("mg_junction_k50"), value("mg_junction_hill")
    failing = lambda j: j ** h * (1 + k50 ** h) / (j ** h + k50 ** h)  # noqa: E731
    assert failing(1.0) == pytest.approx(1.0, rel=1e-12) and failing(0.0) == 0.0
    assert failing(k50) == pytest.approx((1 + k50 ** h) / 2, rel=1e-12)
    partial, deep = np.linspace(0.6, 0.99, 40), np.linspace(0.01, 0.3, 30)
    assert np.all(failing(partial) > partial) and np.all(failing(deep) < deep)
    t, sol = _run(model, "kyv-101", "mg", 168.0, ("mg_junction", "mg_adl"))
    j, adl = sol.column("mg_junction")[0], sol.column("mg_adl")[0]
    assert adl == pytest.approx(9.0 * (1 - value("mg_antibody_share") * (1 - failing(j))), rel=1e-9)
    assert j[-1] < 0.3 and failing(j[-1]) < 0.1      # a deep lasting antibody fall lifts nearly all the weakness


def test_responder_needs_four_consecutive_improved_visits_starting_by_week_12():
    ok = np.array([0, -1, -2, -2, -3, -2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    gap = np.array([0, -2, -2, -2, 0, -2, -2, -2, 0, 0, 0, 0, 0, 0, 0, 0])
    late = np.zeros(20)
    late[13:18] = -3
    assert mg_outcomes.responder(ok, 2)
    assert not mg_outcomes.responder(gap, 2)
    assert not mg_outcomes.responder(late, 2)
    assert not mg_outcomes.responder(ok, 3)


def test_every_nmosd_attack_leaves_a_step_when_its_probability_is_one():
    times = np.arange(0.0, 366.0)
    cum = np.tile(times * 5.0 / 365.0, (3, 1))            # 5 expected attacks a year
    rngs = [np.random.default_rng(k) for k in range(3)]
    out = nmosd_outcomes.draw(times, cum, np.array([2.0, 5.5, 9.5]), rngs, 1.0, 365.0)
    counts = out["annualized_attack_rate"] * 365.0 / YEAR
    steps = [1.0 * min(c, 4) + 0.5 * max(c - 4, 0) for c in counts]     # 1.0 up to EDSS 5.5, then 0.5
    assert out["edss_change"][0] == pytest.approx(min(steps[0], 9.5 - 2.0))
    assert out["edss_change"][2] == 0.0                                    # already at the top of the scale
    assert not out["first_attack_censored"][counts > 0].any()


def test_nmosd_and_mg_endpoints_apply_only_to_their_disease(model):
    for disease, present, absent in (("nmosd", "annualized_attack_rate", "mg_adl_responder"),
                                     ("mg", "mg_adl_responder", "annualized_attack_rate")):
        sc = Scenario.make("placebo", disease, 120.0)
        pop = sample(model, sc.disease, 20, 7)
        ep = endpoints.compute(sc.run(pop, columns=endpoints.COLUMNS), model.table, None, pop)
        assert present in ep and absent not in ep
        assert not ep.igg_below_4_g_per_L.astype(bool).any()        # placebo: IgG stays normal


def test_product_schedule_errors_name_the_field():
    p = products()["descartes-08"]
    from dataclasses import replace
    with pytest.raises(CartsimInputError, match="infusions"):
        replace(p, infusions=0)
    with pytest.raises(CartsimInputError, match="mrna_expression_halflife_days"):
        replace(p, mrna_expression_halflife_days=-1.0)


def test_sbml_export_has_the_new_components(model):
    text = to_sbml(model)
    for sid in ("attack_cum", "mg_junction", "nmosd_attack_imax", "mg_antibody_share", "car_expression_loss",
                "mab_target_cd19"):
        assert f'id="{sid}"' in text, sid


def test_the_simulate_figure_names_inebilizumab_and_the_disease_antibody(tmp_path, monkeypatch):
    """Regression: `cartsim simulate --therapy inebilizumab --disease nmosd` labelled the drug 'anti-CD20 antibody'
    and the autoantibody 'autoantibody' instead of AQP4-IgG."""
    from typer.testing import CliRunner

    import cartsim.outputs.plots as plots
    from cartsim.cli import app

    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **kw: drawn.append(fig))
    r = CliRunner().invoke(app, ["simulate", "--therapy", "inebilizumab", "--disease", "nmosd", "--days", "60",
                                 "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    labels = [ax.get_ylabel() for ax in drawn[0].axes]
    assert "anti-CD19 antibody\n(ug/mL)" in labels and "AQP4-IgG\n(% of baseline)" in labels
    assert not any("anti-CD20" in label for label in labels)


def test_visit_swings_have_the_fitted_spread_and_no_bias():
    """Week-to-week swings: with no lasting improvement, a steady score's change from baseline has the swing's
    SD (plus the rounding's 1/12) and mean 0 over patients and visits."""
    n, weeks = 400, 52
    times = np.arange(0.0, 7.0 * weeks + 1e-9)
    adl = np.full((n, times.size), 12.0)
    rngs = [np.random.default_rng(k) for k in range(n)]
    out = mg_outcomes.draw(times, adl, 2 * adl, rngs, 0.0, 0.0, float(times[-1]), 0.5, 2.0)
    change = out["mg_adl_change_week_24"]
    assert abs(change.mean()) < 0.25
    assert change.std() == pytest.approx(np.sqrt(4.0 + 1 / 12), rel=0.1)


def test_large_improvement_and_minimal_symptoms_count_only_within_the_first_cycle():
    """Without placebo effect or swings: a fall from 9 to 1 point by week 3 is 6 points better and minimal
    symptom expression (MG-ADL 0 or 1); the same fall from week 9 is neither (after weeks 1-8), though both
    are responders (4 better visits in a row starting by week 12)."""
    times = np.arange(0.0, 84.0 + 1e-9)
    early = np.where(times >= 21.0, 1.0, 9.0)
    late = np.where(times >= 63.0, 1.0, 9.0)
    adl = np.vstack([early, late])
    rngs = [np.random.default_rng(k) for k in range(2)]
    out = mg_outcomes.draw(times, adl, 2 * adl, rngs, 0.0, 0.0, 84.0, 0.5, 0.0)
    assert out["mg_adl_improved_6"].tolist() == [True, False]
    assert out["mg_adl_mse"].tolist() == [True, False]
    assert out["mg_adl_responder"].tolist() == [True, True]


# ---- MuSK myasthenia gravis (disease mg-musk): a form of MG with its own antibody biology ----

def test_musk_mg_is_mg_with_its_own_values_on_top():
    """Every value of MG that MuSK MG does not set is MG's, with MG's provenance; its own replace MG's."""
    mg, musk = diseases()["mg"], diseases()["mg-musk"]
    own = {"mg_complement_odds", "pc_auto_death"}
    assert {k: v for k, v in musk.overrides.items() if k not in own} == \
        {k: v for k, v in mg.overrides.items() if k not in own}
    assert musk.overrides["mg_complement_odds"] == 0.0
    assert musk.overrides["pc_auto_death"] > mg.overrides["pc_auto_death"]
    assert musk.provenance["mg_adl0"] == mg.provenance["mg_adl0"]
    assert musk.female_share == 0.9 and musk.autoantibody == "anti-MuSK antibody"


def test_a_base_that_is_not_a_disease_is_refused_with_the_allowed_names():
    raw = {"mg": {"overrides": {}}, "x": {"base": "myasthenia", "overrides": {}}}
    with pytest.raises(ValueError, match=r"disease 'x': base 'myasthenia' .*\(mg\)"):
        _with_base("x", raw["x"], raw)


def test_untreated_anti_musk_stays_at_its_baseline(model):
    """Without therapy the antibody, the junction and the scores stay at their steady state."""
    _, sol = _run(model, "placebo", "mg-musk", 365.0, ("autoantibody", "mg_junction", "mg_adl"))
    for c in ("autoantibody", "mg_junction", "mg_adl"):
        x = sol.column(c)[0]
        assert x == pytest.approx(x[0], rel=1e-6)


def test_a_complement_inhibitor_does_nothing_in_musk_mg(model):
    """IgG4 does not fix complement: ravulizumab leaves every MuSK MG score as on placebo."""
    _, placebo = _run(model, "placebo", "mg-musk", 182.0, ("mg_adl", "qmg"))
    _, drug = _run(model, "ravulizumab", "mg-musk", 182.0, ("mg_adl", "qmg", "c5_block"))
    assert drug.column("c5_block")[0][-1] > 0.99
    for c in ("mg_adl", "qmg"):
        assert drug.column(c)[0] == pytest.approx(placebo.column(c)[0], rel=1e-12)


def test_anti_musk_falls_faster_than_anti_achr_after_rituximab(model):
    """Short-lived antibody-secreting cells: once rituximab removes the B cells that renew them, anti-MuSK falls
    at about the antibody's own catabolism, well ahead of anti-AChR (made by cells living for weeks)."""
    level = {}
    for disease in ("mg-musk", "mg"):
        t, sol = _run(model, "rituximab", disease, 120.0, ("autoantibody",), regimen=MUSK_RITUXIMAB)
        a = sol.column("autoantibody")[0]
        level[disease] = a / a[0]
    day = np.searchsorted(t, 90.0)
    assert level["mg-musk"][day] < 0.2 < level["mg"][day]
    assert np.all(level["mg-musk"][1:] <= level["mg"][1:] + 1e-9)
