"""Global sensitivity analysis: the analysis against known indices, ranges, a real run, bad input, seeds."""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cartsim.cli import app
from cartsim.model import build_model
from cartsim.trial.config import load_config
from cartsim.trial.sensitivity import (Range, _override_ranges, _values_used, analyze, choose_parameters,
                                       default_range, design,
                                       prepare_sensitivity, ranges, run_sensitivity)

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
KYSA7 = EXAMPLES / "kysa7.toml"


def ishigami(x: np.ndarray, a: float = 7.0, b: float = 0.1) -> np.ndarray:
    return np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * np.sin(x[:, 0])


def test_sobol_indices_of_the_ishigami_function():
    """Analytic indices (a = 7, b = 0.1): S1 = 0.314, 0.442, 0; ST = 0.558, 0.442, 0.244."""
    rs = {f"x{i}": Range("uniform", -math.pi, math.pi) for i in (1, 2, 3)}
    d = design("sobol", rs, 4096, seed=11)
    assert d.values.min() >= -math.pi and d.values.max() <= math.pi
    t = analyze(d, {"ishigami": ishigami(d.values)})
    s1 = t[t["index"] == "S1"].set_index("parameter")["value"]
    st = t[t["index"] == "ST"].set_index("parameter")["value"]
    np.testing.assert_allclose(s1[["x1", "x2", "x3"]], [0.314, 0.442, 0.0], atol=0.03)
    np.testing.assert_allclose(st[["x1", "x2", "x3"]], [0.558, 0.442, 0.244], atol=0.03)
    ci = t[t["index"] == "ST"]
    assert ((ci["ci_low"] <= ci["value"]) & (ci["value"] <= ci["ci_high"])).all()


def test_morris_mu_star_is_the_change_across_the_range():
    """y = 3 x1 + 0 x2, x1 uniform on [2, 4]: mu* per whole range of x1 is 3 * 2 = 6, and 0 for x2."""
    rs = {"x1": Range("uniform", 2.0, 4.0), "x2": Range("uniform", 0.0, 1.0)}
    d = design("morris", rs, 8, seed=3)
    t = analyze(d, {"y": 3 * d.values[:, 0]})
    mu = t[t["index"] == "mu_star"].set_index("parameter")["value"]
    assert mu["x1"] == pytest.approx(6.0) and mu["x2"] == pytest.approx(0.0)


def test_default_ranges_and_table_ranges():
    lognormal = default_range(5.0, "1/day")
    assert (lognormal.distribution, lognormal.low, lognormal.high, lognormal.default) == ("lognormal", 2.5, 10.0, True)
    assert lognormal.ppf(np.array([0.025, 0.5, 0.975])) == pytest.approx([2.5, 5.0, 10.0])
    fraction = default_range(0.8, "1")                 # stays inside (0, 1)
    assert (fraction.distribution, fraction.low, fraction.high) == ("uniform", 0.4, pytest.approx(0.9))
    assert fraction.span(np.array([0.0, 1.0])) == pytest.approx([0.4, 0.9])

    @dataclass(frozen=True)
    class Uncertainty:
        distribution: str
        low: float
        high: float
        reason: str

    @dataclass(frozen=True)
    class Record:
        value: float
        unit: str
        uncertainty: object = None

    table = {"a": Record(2.0, "day", Uncertainty("loguniform", 1.0, 8.0, "measured 1-8 days")),
             "b": Record(0.3, "1", {"distribution": "normal", "low": 0.2, "high": 0.4, "reason": "trial"}),
             "c": Record(4.0, "day")}
    rs = ranges(table, ["a", "b", "c"])
    assert (rs["a"].distribution, rs["a"].low, rs["a"].high, rs["a"].default) == ("loguniform", 1.0, 8.0, False)
    assert rs["a"].ppf(np.array([0.0, 0.5, 1.0])) == pytest.approx([1.0, math.sqrt(8.0), 8.0])
    assert rs["b"].ppf(np.array([0.025, 0.975])) == pytest.approx([0.2, 0.4], abs=1e-3)
    assert (rs["c"].low, rs["c"].high, rs["c"].default) == (2.0, 8.0, True)


def test_default_parameters_are_assumed_and_calibrated_ones_the_trial_can_move():
    model = build_model()
    names, skipped = choose_parameters(model, load_config(KYSA7), None)
    kinds = {model.table[n].kind for n in names}
    assert kinds <= {"assumed", "calibrated"} and "reset_halflife" in names
    assert "weight_kg" in skipped                      # a covariate
    # the table says these have no uncertainty of their own: a switch, a numerical guard, a rule of the regimen
    for n in ("target_cd19", "car_presence_eps", "retreat_threshold"):
        assert n not in names and skipped[n].startswith("no uncertainty range in the parameter table"), n
    # placeholders in the table, but the MS courses set them with a stated range: varied by that range
    for n in ("ms_relapse_rate", "ms_gd_rate", "ms_pira_rate", "auto_share"):
        assert n in names and model.table[n].uncertainty is None, n
    rs = ranges(model.table, names, _values_used(load_config(KYSA7), model.table),
                _override_ranges(load_config(KYSA7)))
    assert not any(r.default for r in rs.values())       # so no default range is needed
    assert (rs["ms_relapse_rate"].reference, rs["ms_relapse_rate"].low) == (0.0418, 0.0209)   # the PPMS course's
    assert "tumour_burden" in skipped                  # 0 in MS: a multiple cannot move it
    # a drug no arm gives: its own values act only through its empty compartments (Model.idle_parameters)
    for n in ("ifn_k", "ifn_ec50", "fcrnb_ec50", "fcrnb_halflife"):
        assert n not in names and skipped[n].startswith("no arm's equations feel it"), n
    # acting only through a parameter that is 0 in MS: another disease's values, the tumour's (Model.idle_parameters)
    for n in ("nmosd_attack_imax", "mg_antibody_share", "tumour_growth"):
        assert n not in names and skipped[n].startswith("no arm's equations feel it"), n
    assert "mab_ec50" in names and "car_k_kill" in names and "il6_per_activated_car" in names and len(names) == 77
    assert skipped["il6_per_kill"].startswith("0 in this trial")   # fitted at 0: a multiple cannot move it
    # the product's own values reach the model now (KYV-101 has a CD28 domain); an mRNA CAR's do not here
    assert {"cd4_kill_weight", "cd28_expansion_factor", "cd28_memory_factor"} <= set(names)
    assert "car_expression_halflife" not in names
    opera, skipped = choose_parameters(model, load_config(EXAMPLES / "opera.toml"), None)
    assert "ifn_ec50" in opera and "mab_ec50" in opera
    assert "car_k_kill" not in opera and skipped["car_k_kill"].startswith("no arm's equations feel it")


def test_idle_parameters_are_those_the_solution_does_not_depend_on():
    """Model.idle_parameters against the solver: changing an idle parameter 10-fold changes nothing; changing
    one it keeps does."""
    model = build_model()
    idle = model.idle_parameters({"mab_central", "mab_started", "mab_clock"})     # IV ocrelizumab
    assert {"mab_ka", "mab_f", "fcrnb_ec50", "car_k_kill", "ifn_k"} <= idle and "mab_cl_inf" not in idle
    from cartsim.population import typical
    from cartsim.scenario import Scenario

    def run(**parameters):
        sc = Scenario.make("ocrelizumab", "ms", 200, parameters=parameters or None)
        return sc.run(typical(model, sc.disease, sc.course), columns=("b_blood_per_uL", "igg", "mab_conc")).values

    base = run()
    for n in ("mab_ka", "fcrnb_ec50", "car_k_kill"):
        assert np.array_equal(run(**{n: 10 * model.table.value(n)}), base), n
    assert not np.allclose(run(mab_cl_inf=10 * model.table.value("mab_cl_inf")), base)
    # idle through a zero parameter: NMOSD's and MG's values in MS (their rate and baseline score are 0 there)
    zero = {n for n in model.parameters if model.table[n].value == 0}
    idle = model.idle_parameters({"mab_central", "mab_started", "mab_clock"}, zero)
    assert {"nmosd_attack_imax", "mg_antibody_share"} <= idle and "mab_cl_inf" not in idle

    def attacks(**parameters):
        sc = Scenario.make("ocrelizumab", "ms", 200, parameters=parameters or None)
        return sc.run(typical(model, sc.disease, sc.course), columns=("attack_cum", "mg_adl", "igg")).values

    base = attacks()
    for n in ("nmosd_attack_imax", "mg_antibody_share"):
        assert np.array_equal(attacks(**{n: 0.1 * model.table.value(n)}), base), n


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sensitivity") / "sens"
    r = runner.invoke(app, ["sensitivity", str(KYSA7), "--method", "sobol", "--samples", "8",
                            "--parameters", "car_k_kill,mab_ec50,reset_halflife", "--arm", "KYV-101",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_cli_run_writes_json_parquet_and_figure(cli_run):
    out = cli_run
    doc = json.loads((out / "sensitivity.json").read_text())
    assert doc["n_rows"] == 8 * (3 + 2) and doc["arms"] == ["KYV-101"]
    assert doc["default_ranges"] == [p["name"] for p in doc["parameters"] if p["default_range"]]
    by = {e["output"]: e for e in doc["endpoints"]}
    # an ocrelizumab parameter does not touch the CAR-T peak in the CAR-T arm
    peak = by["cart_peak_per_uL"]["indices"]
    assert abs(peak["mab_ec50"]["ST"]["value"]) < 1e-9 and peak["car_k_kill"]["ST"]["value"] > 0.5
    durable = by["autoreactive_return_day:durability"]
    assert durable["horizon_days"] == pytest.approx(10 * 365.25)
    assert next(iter(durable["indices"])) == "reset_halflife"
    t = pd.read_parquet(out / "sensitivity.parquet")
    assert list(t.columns) == ["arm", "endpoint", "parameter", "index", "value", "ci_low", "ci_high"]
    assert set(t["index"]) == {"S1", "ST"} and set(t["parameter"]) == {"car_k_kill", "mab_ec50", "reset_halflife"}
    assert (out / "sensitivity.png").stat().st_size > 20_000


@pytest.mark.parametrize("args, field", [
    (["--method", "fast"], "--method"),
    (["--method", "sobol", "--samples", "6"], "--samples"),
    (["--samples", "1"], "--samples"),
    (["--arm", "no such arm"], "--arm"),
    (["--parameters", "car_k_kill,not_a_parameter"], "--parameters"),
    (["--outcome", "median"], "--outcome"),
    (["--workers", "0"], "--workers"),
])
def test_bad_input_is_refused_with_exit_2_and_nothing_written(tmp_path, args, field):
    out = tmp_path / "never"
    r = runner.invoke(app, ["sensitivity", str(KYSA7), *args, "--out", str(out)])
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), r.output
    assert not out.exists()


def test_unknown_parameter_names_them_and_says_where_the_list_is(tmp_path):
    r = runner.invoke(app, ["sensitivity", str(KYSA7), "--parameters", "car_k_kill,bogus_a,bogus_b",
                            "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "bogus_a, bogus_b" in r.output and "cartsim parameters" in r.output


def _run(workers: int, seed: int = 5):
    cfg = load_config(KYSA7).with_seed(seed)
    p = prepare_sensitivity(cfg, "morris", 2, ["car_k_kill", "mab_ec50"], arm="KYV-101", outcome="mean",
                            workers=workers, chunk_rows=20)
    return run_sensitivity(p)


def test_same_seed_same_numbers_serial_or_with_workers():
    serial, again, pooled = _run(1), _run(1), _run(2)
    pd.testing.assert_frame_equal(serial.indices, again.indices)
    pd.testing.assert_frame_equal(serial.indices, pooled.indices)
    assert len(serial.indices) and serial.document["patients_solved"] == 2 * 3 * 20 * 2
    other = _run(1, seed=6)
    assert not np.array_equal(other.indices["value"].to_numpy(), serial.indices["value"].to_numpy())


def test_report_section_only_with_the_trials_sensitivity_json(cli_run):
    from cartsim.outputs.report import ReportData, sensitivity

    doc = json.loads((cli_run / "sensitivity.json").read_text())
    data = ReportData({"trial": doc["config"], "config": {"trial": {}}}, pd.DataFrame(), {}, 0, sensitivity=doc)
    section = sensitivity(data)
    assert section is not None and section.title == "Which parameters matter"
    assert "Day autoreactive B cells come back (10% of baseline), over 10 years" in section.body
    assert "reset_halflife" in section.body and "40 parameter sets" in section.body
    assert sensitivity(ReportData({"trial": "another trial"}, pd.DataFrame(), {}, 0, sensitivity=doc)) is None
    assert sensitivity(ReportData({"trial": doc["config"]}, pd.DataFrame(), {}, 0)) is None
