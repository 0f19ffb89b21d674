"""Parameter uncertainty in a trial (`cartsim trial --uncertainty K`): Latin hypercube sets, the same patients in
every set, statistics per set, resume, and bad input."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from cartsim.cli import app
from cartsim.errors import CartsimInputError
from cartsim.model import build_model
from cartsim.outputs import report
from cartsim.population import Population
from cartsim.trial import uncertainty
from cartsim.trial.config import parse_config
from cartsim.trial.run import execute, prepare

CONFIG = """
[trial]
name = "uncertainty"
seed = 7
horizon_days = 200

[population]
n = 6
disease = "ms"

[[arm]]
name = "CAR-T"
therapy = "kyv-101"

[[arm]]
name = "Antibody"
therapy = "ocrelizumab"
"""

VARIED = ("car_k_kill", "pc_cd19_share")


def _cdf(r, x):
    """The cumulative distribution of a range (low/high: 2.5/97.5% for lognormal, bounds for (log)uniform)."""
    if r["distribution"] == "uniform":
        return (x - r["low"]) / (r["high"] - r["low"])
    if r["distribution"] == "loguniform":
        return (np.log(x) - np.log(r["low"])) / (np.log(r["high"]) - np.log(r["low"]))
    assert r["distribution"] == "lognormal"
    mu = (np.log(r["low"]) + np.log(r["high"])) / 2
    sd = (np.log(r["high"]) - np.log(r["low"])) / (2 * stats.norm.ppf(0.975))
    return stats.norm.cdf((np.log(x) - mu) / sd)


def test_latin_hypercube_sets_are_stratified_and_seeded():
    model = build_model()
    cfg = parse_config(CONFIG)
    sets = uncertainty.draw_sets(cfg, model, 10, names=list(VARIED))
    assert sets.values.shape == (10, 2) and sets.names == VARIED
    for i, n in enumerate(VARIED):
        u = _cdf(sets.ranges[i], sets.values[:, i])
        assert sorted(np.floor(u * 10).astype(int)) == list(range(10))    # one set in each tenth of the range
    again = uncertainty.draw_sets(cfg, model, 10, names=list(VARIED))
    assert np.array_equal(sets.values, again.values)
    other = uncertainty.draw_sets(cfg.with_seed(4), model, 10, names=list(VARIED))
    assert not np.array_equal(sets.values, other.values)
    np.testing.assert_allclose(sets.factors * sets.table_values, sets.values)
    default = uncertainty.uncertain_parameters(cfg, model)
    assert set(VARIED) <= set(default) and all(model.table[n].kind in ("assumed", "calibrated") for n in default)
    assert "weight_kg" not in default


def test_factors_apply_after_the_therapy_sets_its_values():
    """A set moves every value, those a product sets too, and keeps each patient's random effect."""
    model = build_model()
    cfg = parse_config(CONFIG)
    from cartsim.trial import cohort

    pop = cohort.draw(cfg, model, 0, 0, 4)
    scenario = cfg.scenario(0)
    base, _ = scenario.patient_inputs(model, pop)
    factors = {"car_cd4_cd8_ratio": np.array([1.0, 2.0, 0.5, 1.0]), "pc_cd19_share": np.full(4, 3.0)}
    moved, _ = scenario.patient_inputs(model, pop.with_factors(factors))
    for n, f in factors.items():
        np.testing.assert_allclose(moved.column(n), base.column(n) * f)
    others = [i for i, n in enumerate(pop.parameter_names) if n not in factors]
    assert np.array_equal(moved.params[:, others], base.params[:, others])
    assert isinstance(pop, Population) and pop.factors is None


def _run(tmp_path, name, sets, **kw):
    cfg = parse_config(CONFIG)
    plan = prepare(cfg, tmp_path / name, validation=False, **kw)
    if sets is not None:
        plan = replace(plan, sets=sets)
    return plan, execute(plan)


def test_sets_at_the_table_values_reproduce_the_trial(tmp_path):
    """Every patient of every set is the trial's patient: sets at the table's values give the trial's statistics."""
    model = build_model()
    table_values = np.array([model.table.value(n) for n in VARIED])
    sets = uncertainty.ParameterSets(VARIED, np.tile(table_values, (3, 1)), table_values, 7)
    plan, result = _run(tmp_path, "same", sets)
    u = pd.read_parquet(plan.out / uncertainty.TABLE_FILE)
    for arm in result.summary["arms"]:
        for name, e in arm["endpoints"].items():
            for stat, pu in e.get("parameter_uncertainty", {}).items():
                base = uncertainty._headline(e)[stat]
                values = u[(u.arm == arm["name"]) & (u.endpoint == name) & (u.statistic == stat)]["value"]
                assert len(values) == 3
                if np.isnan(base):
                    assert values.isna().all()
                else:
                    assert np.allclose(values, base, rtol=1e-12, atol=0) and pu["p025"] == pu["p975"]


def test_a_parameter_moves_only_the_answers_that_depend_on_it(tmp_path):
    """CAR-T killing and the CD19+ plasma-cell share move the CAR-T arm's IgG fall, not the antibody arm's
    CAR-T endpoints; each set is stored, and resume recomputes only what is missing."""
    plan, result = _run(tmp_path, "moved", None, uncertainty_sets=6, uncertainty_parameters=list(VARIED))
    arms = {a["name"]: a["endpoints"] for a in result.summary["arms"]}
    igg = arms["CAR-T"]["igg_nadir_fraction"]["parameter_uncertainty"]["mean"]
    assert igg["p975"] - igg["p025"] > 0.02 and igg["n_sets"] == 6
    peak = arms["Antibody"]["cart_peak_per_uL"]["parameter_uncertainty"]["mean"]
    assert peak["p025"] == peak["p975"] == 0.0
    doc = json.loads((plan.out / "summary.json").read_text())
    assert doc["parameter_uncertainty"]["sets"] == 6
    assert [p["name"] for p in doc["parameter_uncertainty"]["parameters"]] == list(VARIED)
    sets = pd.read_parquet(plan.out / uncertainty.SETS_FILE)
    assert list(sets.columns) == ["set", *VARIED] and len(sets) == 6
    before = pd.read_parquet(plan.out / uncertainty.TABLE_FILE)
    folder = next((plan.out / "chunks").glob("uncertainty-*"))
    (folder / "arm1_chunk0.parquet").unlink()        # an interrupted run: one chunk missing
    again = execute(prepare(parse_config(CONFIG), plan.out, validation=False, resume=True, uncertainty_sets=6,
                            uncertainty_parameters=list(VARIED)))
    assert again.simulated == 6 * 6          # the missing chunk only: the antibody arm's six patients x six sets
    pd.testing.assert_frame_equal(pd.read_parquet(plan.out / uncertainty.TABLE_FILE), before)
    body = str(report.parameter_uncertainty(report.ReportData(again.summary, pd.DataFrame(), {}, 1)).body)
    assert "we do not know the biology yet" in body and "between patients" in body
    assert "the same in every set" in body and "stated default" not in body
    assert "All of these ranges come from the parameter table" in body      # both have a range in the table
    assert doc["parameter_uncertainty"]["default_ranges"] == 0


def test_report_says_what_the_ranges_are_without_an_uncertainty_run():
    body = str(report.parameter_uncertainty(report.ReportData({"arms": []}, pd.DataFrame(), {}, 1)).body)
    assert "differences between patients" in body and "--uncertainty K" in body


@pytest.mark.parametrize("args, field", [
    (["--uncertainty", "0"], "--uncertainty"),
    (["--uncertainty", "2", "--uncertainty-parameters", "car_k_kil"], "--uncertainty-parameters"),
    (["--uncertainty", "2", "--uncertainty-parameters", "target_bcma"], "--uncertainty-parameters"),
    (["--uncertainty", "two"], "--uncertainty"),
])
def test_bad_uncertainty_options_are_refused_before_anything_is_written(tmp_path, args, field):
    cfg = tmp_path / "t.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["trial", str(cfg), "--out", str(out), *args])
    assert res.exit_code == 2 and field in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_unknown_and_rangeless_parameters_are_named():
    model = build_model()
    with pytest.raises(CartsimInputError, match="car_k_kil"):
        uncertainty.uncertain_parameters(parse_config(CONFIG), model, ["car_k_kil"])
    cfg = parse_config(CONFIG)
    with pytest.raises(CartsimInputError, match="--uncertainty-parameters: target_bcma is 0"):
        uncertainty.uncertain_parameters(cfg, model, ["target_bcma"])
    assert uncertainty.uncertain_parameters(cfg, model, ["k_el_flu"]) == ("k_el_flu",)   # a literature value too


def test_assurance_spreads_the_replicates_over_the_sets():
    """power --uncertainty K: replicate r runs under set r % K; the power is their average (the assurance), and
    sets at the table's values give the plain power's p-values exactly."""
    from cartsim.trial.power import draw_replicates, prepare_power, run_power

    cfg = parse_config(CONFIG.replace('horizon_days = 200', 'horizon_days = 200\nprimary_endpoint = '
                                      '"igg_nadir_fraction"'))
    plan = prepare_power(cfg, 4, uncertainty_sets=2, uncertainty_parameters=list(VARIED))
    pop = draw_replicates(cfg, build_model(), 0, 0, 4 * 6, sets=plan.sets)
    expected = plan.sets.factors[(np.arange(24) // 6) % 2, 1]
    np.testing.assert_array_equal(pop.factors["pc_cd19_share"], expected)
    doc = run_power(plan).document
    u = doc["parameter_uncertainty"]
    assert u["sets"] == 2 and len(u["per_set"]) == 2 and doc["power"] == pytest.approx(np.mean(u["per_set"]))
    plain = run_power(prepare_power(cfg, 4)).document
    model = build_model()
    table_values = np.array([model.table.value(n) for n in VARIED])
    same = replace(plan, sets=uncertainty.ParameterSets(VARIED, np.tile(table_values, (2, 1)), table_values, 7))
    assert [r["p_value"] for r in run_power(same).document["per_replicate"]] == \
        [r["p_value"] for r in plain["per_replicate"]]
    assert [r["p_value"] for r in doc["per_replicate"]] != [r["p_value"] for r in plain["per_replicate"]]
    with pytest.raises(CartsimInputError, match="at least as many replicates"):
        prepare_power(cfg, 1, uncertainty_sets=2, uncertainty_parameters=list(VARIED))


def test_report_says_how_many_ranges_are_the_default():
    """A range the table does not state is the 2-fold default: the report counts them apart from the table's."""
    meta = {"sets": 4, "default_ranges": 1,
            "parameters": [{"name": "car_k_kill", "range": {}}, {"name": "auto_floor", "range": {"default": True}}]}
    summary = {"arms": [{"name": "A", "endpoints": {}}], "parameter_uncertainty": meta}
    body = str(report.parameter_uncertainty(report.ReportData(summary, pd.DataFrame(), {}, 1)).body)
    assert "1 of these 2 ranges is cartsim&#39;s stated default" in body
    assert "1 of these ranges comes from the parameter table" in body
