"""Model and data exchange: PEtab problems, NONMEM-style datasets, and observed data on the figure."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import roadrunner
from typer.testing import CliRunner

from cartsim.cli import app
from cartsim.exporters.nonmem import (OBSERVATION_TYPES, compartments, observation_types, read_nonmem,
                                      simulate_dataset, to_csv)
from cartsim.model import build_model
from cartsim.outputs.plots import OBSERVED_QUANTITIES
from cartsim.population import sample
from cartsim.scenario import Scenario

runner = CliRunner()


def _petablint() -> str:
    exe = Path(sys.executable).parent / "petablint"
    return str(exe) if exe.exists() else (shutil.which("petablint") or "petablint")


def _lint(problem: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_petablint(), str(problem)], capture_output=True, text=True)


def _one_error_line(r, field: str) -> str:
    lines = [ln for ln in r.output.strip().splitlines() if ln]
    assert r.exit_code == 2, r.output
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), r.output
    return lines[0]


@pytest.fixture(scope="module")
def model():
    return build_model()


@pytest.fixture(scope="module")
def cohort(model, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """A NONMEM-style file of 3 simulated lupus patients after MB-CART19 (120 days)."""
    scenario = Scenario.make("mb-cart19", "sle", 120)
    data = simulate_dataset(model, scenario, sample(model, scenario.disease, 3, 11))
    path = tmp_path_factory.mktemp("cohort") / "cohort.csv"
    path.write_text(to_csv(data))
    return path, data


@pytest.fixture(scope="module")
def typical_problem(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("petab") / "problem"
    r = runner.invoke(app, ["export", "petab", "--therapy", "mb-cart19", "--disease", "sle", "-o", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_petab_problem_passes_petablint(typical_problem, model):
    assert sorted(p.name for p in typical_problem.iterdir()) == [
        "conditions.tsv", "measurements.tsv", "model.xml", "observables.tsv", "parameters.tsv", "problem.yaml"]
    lint = _lint(typical_problem / "problem.yaml")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    params = pd.read_csv(typical_problem / "parameters.tsv", sep="\t").set_index("parameterId")
    calibrated = {p for p in model.parameters if model.table[p].kind == "calibrated"}
    estimated = set(params.index[params.estimate == 1])
    assert {p for p in estimated if not p.startswith("sigma_")} == calibrated
    # log10 scale a decade either side; one fitted onto its physical bound 0 (il6_per_kill) on linear scale from 0
    # (test_petab_value_on_its_bound_0)
    zero = {p for p in calibrated if model.table.value(p) == 0}
    assert zero == {"il6_per_kill"}
    est = params.loc[sorted(calibrated - zero)]
    assert (est.parameterScale == "log10").all() and (est.lowerBound < est.nominalValue).all()
    assert (est.nominalValue < est.upperBound).all()
    assert params.at["il6_per_kill", "parameterScale"] == "lin" and params.at["il6_per_kill", "lowerBound"] == 0
    assert params.at["car_costim_cd28", "estimate"] == 0           # set by the product, fixed
    m = pd.read_csv(typical_problem / "measurements.tsv", sep="\t")
    assert set(m.datasetId) == {"simulated_typical_patient"}
    conditions = pd.read_csv(typical_problem / "conditions.tsv", sep="\t")
    assert "SIMULATED" in conditions.conditionName.iloc[0]
    # every observation type of a CAR-T therapy; an antibody's serum level only where the therapy gives one
    assert set(m.observableId) == {f"obs_{t.quantity}" for t in OBSERVATION_TYPES if t.quantity != "mab_conc"}


def test_petab_value_on_its_bound_0_is_estimated_on_linear_scale_from_0(model):
    """A calibrated value fitted onto its physical bound 0 cannot be estimated on log10 scale: it is exported on
    linear scale from 0 to a decade above its uncertainty range."""
    from dataclasses import replace

    from cartsim.exporters.petab import _parameters
    from cartsim.exporters.sbml import export_inputs
    from cartsim.model.parameters import ParameterTable

    table = ParameterTable([replace(r, value=0.0) if r.name == "il6_per_kill" else r for r in model.table])
    zeroed = replace(model, table=table)
    sc = Scenario.make("kyv-101", "ms", 60.0)
    inputs = export_inputs(zeroed, sc)
    params = _parameters(zeroed, inputs, pd.DataFrame({"observableId": []}), set()).set_index("parameterId")
    row = params.loc["il6_per_kill"]
    assert (row.parameterScale, row.lowerBound, row.estimate) == ("lin", 0.0, 1)
    assert row.upperBound == pytest.approx(table["il6_per_kill"].uncertainty.high * 10)
    assert params.loc["car_k_kill", "parameterScale"] == "log10"


def test_petab_measurements_match_the_sbml_model(typical_problem):
    """The simulated typical-patient data are what a simulator of model.xml gives at PEtab times."""
    m = pd.read_csv(typical_problem / "measurements.tsv", sep="\t")
    formula = pd.read_csv(typical_problem / "observables.tsv", sep="\t").set_index("observableId").observableFormula
    rr = roadrunner.RoadRunner(str(typical_problem / "model.xml"))
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-14
    times = np.unique(m.time.to_numpy())
    columns = list(formula)
    rr.timeCourseSelections = ["time", *columns]
    sim = pd.DataFrame(np.asarray(rr.simulate(times=[0.0, *times]))[1:, 1:], columns=columns, index=times)
    predicted = np.array([sim.at[t, formula[o]] for o, t in zip(m.observableId, m.time)])
    rel = np.abs(predicted - m.measurement) / np.maximum(np.abs(m.measurement), 1e-3)
    assert rel.max() < 5e-3


def test_petab_from_nonmem_dataset(cohort, tmp_path):
    path, data = cohort
    out = tmp_path / "fit"
    r = runner.invoke(app, ["export", "petab", "--therapy", "mb-cart19", "--data", str(path), "-o", str(out)])
    assert r.exit_code == 0, r.output
    lint = _lint(out / "problem.yaml")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    conditions = pd.read_csv(out / "conditions.tsv", sep="\t").set_index("conditionId")
    weights = data.groupby("ID").WT.first()
    assert np.allclose(conditions.weight_kg.to_numpy(), weights.to_numpy())
    # round_trip: pandas' default float parser may differ from the written text in the last bit
    m = pd.read_csv(out / "measurements.tsv", sep="\t", float_precision="round_trip")
    obs = data[(data.EVID == 0) & (data.MDV == 0)]
    assert len(m) == len(obs)
    assert np.allclose(m.time, obs.TIME + 5.0)        # PEtab time 0 is the first lymphodepletion day (-5)
    assert np.array_equal(m.measurement.to_numpy(), obs.DV.to_numpy())


def test_nonmem_round_trip_is_identical(model, tmp_path):
    out = tmp_path / "cohort.csv"
    r = runner.invoke(app, ["export", "nonmem", "--therapy", "kyv-101", "--disease", "ms", "--n", "4",
                            "--seed", "7", "--days", "60", "-o", str(out)])
    assert r.exit_code == 0, r.output
    scenario = Scenario.make("kyv-101", "ms", 60)
    expected = simulate_dataset(model, scenario, sample(model, scenario.disease, 4, 7))
    back = read_nonmem(out)
    pd.testing.assert_frame_equal(back, expected)
    assert to_csv(back) == out.read_text()
    assert list(back.columns) == ["ID", "TIME", "AMT", "RATE", "EVID", "CMT", "DVID", "DV", "MDV",
                                  "AGE", "WT", "SEX"]
    doses = back[back.EVID == 1]
    assert set(doses.CMT) == {model.state_index(s) + 1 for s in ("flu", "cy", "car_eff", "car_mem", "t_endo")}
    assert (doses.MDV == 1).all() and (back[back.EVID == 0].MDV == 0).all()
    assert back.ID.nunique() == 4 and back.TIME.max() == 60
    define = out.with_suffix(".define.txt").read_text()
    assert "SIMULATED" in define
    for row in compartments(model).itertuples():
        assert f"{row.CMT:>2}  {row.state}  " in define


def test_infusions_get_a_rate(model):
    """Antibody infusions (duration > 0) carry RATE = AMT / duration."""
    scenario = Scenario.make("ocrelizumab", "ms", 30)
    data = simulate_dataset(model, scenario, sample(model, scenario.disease, 1, 3))
    infusions = data[(data.EVID == 1) & (data.RATE > 0)]
    assert infusions.TIME.tolist() == [0.0, 14.0]             # the two 300 mg infusions within 30 days
    _, doses = scenario.patient_inputs(model, sample(model, scenario.disease, 1, 3))
    duration = doses.duration[0][doses.duration[0] > 0][0]
    assert np.isclose(infusions.AMT.iloc[0] / infusions.RATE.iloc[0], duration)


def test_reader_accepts_nonmem_dots(tmp_path):
    path = tmp_path / "dots.csv"
    path.write_text("ID,TIME,AMT,EVID,CMT,DVID,DV,MDV\n"
                    "# a comment line\n"
                    "1,0,10,1,4,.,.,1\n"
                    "1,1,.,0,.,2,3.5,0\n")
    data = read_nonmem(path)
    assert data.AMT.tolist() == [10.0, 0.0] and data.DV.tolist() == [0.0, 3.5] and data.RATE.tolist() == [0, 0]


def test_every_observation_type_has_a_panel(model):
    assert tuple(t.quantity for t in observation_types(model)) == OBSERVED_QUANTITIES


def test_simulate_overlays_observed_data(cohort, tmp_path):
    path, _ = cohort
    out = tmp_path / "sim"
    r = runner.invoke(app, ["simulate", "--therapy", "mb-cart19", "--days", "60", "--observed", str(path),
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "figure.png").stat().st_size > 10_000


# ---- bad input: one clear line, exit code 2, nothing written ----------------------------------------------


def _edit(cohort, tmp_path, change) -> Path:
    path, data = cohort
    bad = tmp_path / "bad.csv"
    bad.write_text(to_csv(change(data.copy())))
    return bad


def test_missing_column(cohort, tmp_path):
    bad = _edit(cohort, tmp_path, lambda d: d.drop(columns="DVID"))
    out = tmp_path / "never"
    line = _one_error_line(runner.invoke(app, ["export", "petab", "--therapy", "mb-cart19", "--data", str(bad),
                                               "-o", str(out)]), "--data")
    assert "DVID" in line and "required" in line
    assert not out.exists()


def test_unknown_observation_type(cohort, tmp_path):
    def change(d):
        d.loc[d.index[(d.EVID == 0).to_numpy()][0], "DVID"] = 9
        return d
    bad = _edit(cohort, tmp_path, change)
    out = tmp_path / "never"
    line = _one_error_line(runner.invoke(app, ["simulate", "--therapy", "mb-cart19", "--observed", str(bad),
                                               "--out", str(out)]), "--observed")
    assert "DVID" in line and "9" in line and "1 (b_blood_per_uL)" in line and "4 (igg)" in line
    assert not out.exists()


@pytest.mark.parametrize("command", [
    ["export", "nonmem", "--therapy", "foo", "-o", "{out}/cohort.csv"],
    ["export", "petab", "--therapy", "foo", "-o", "{out}/problem"],
    ["export", "nonmem", "--therapy", "mb-cart19", "--n", "0", "-o", "{out}/cohort.csv"],
])
def test_bad_options(tmp_path, command):
    args = [a.format(out=tmp_path) for a in command]
    line = _one_error_line(runner.invoke(app, args), "--n" if "--n" in args else "--therapy")
    assert "mb-cart19" in line or "integer" in line
    assert list(tmp_path.iterdir()) == []


def test_dose_schedule_petab_cannot_express(cohort, tmp_path):
    path, _ = cohort
    out = tmp_path / "never"
    line = _one_error_line(runner.invoke(app, ["export", "petab", "--therapy", "mb-cart19", "--lymphodepletion",
                                               "oncology-flu30-cy500", "--data", str(path), "-o", str(out)]),
                           "--data")
    assert "dose" in line and "schedule" in line
    assert not out.exists()


def test_observation_on_a_dose_day_is_refused(cohort, tmp_path):
    def change(d):
        d.loc[(d.ID == 1) & (d.EVID == 0) & (d.TIME == -1), "TIME"] = -3.0   # a lymphodepletion day
        return d.sort_values(["ID", "TIME"], kind="stable")
    bad = _edit(cohort, tmp_path, change)
    out = tmp_path / "never"
    line = _one_error_line(runner.invoke(app, ["export", "petab", "--therapy", "mb-cart19", "--data", str(bad),
                                               "-o", str(out)]), "--data")
    assert "dose day -3" in line
    assert not out.exists()
