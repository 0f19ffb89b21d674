"""Population fits (`cartsim fit`): parameter recovery with interval coverage, the FOCE-I objective against an
independent Laplace computation and numerical integration, the Bayesian option, the fitted-parameter file in
simulate and trial, and bad input refused with one line."""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize
from statsmodels.tools.numdiff import approx_hess3
from typer.testing import CliRunner

from cartsim.cli import app
from cartsim.errors import CartsimInputError
from cartsim.exporters.nonmem import check_dataset, to_csv
from cartsim.fit import foce
from cartsim.fit.cohort import cohort, true_values
from cartsim.fit.fitted import Fitted, arm_values, load_fitted, to_toml
from cartsim.fit.run import fit
from cartsim.model import build_model
from cartsim.scenario import Scenario

runner = CliRunner()
PK = ["mab_v1", "mab_cl_inf"]


@pytest.fixture(scope="module")
def model():
    return build_model()


@pytest.fixture(scope="module")
def ocrelizumab():
    return Scenario.make("ocrelizumab", "ms", 365)


def _data(model, scenario, n, seed, vary=PK, sd=0.15):
    return check_dataset(cohort(model, scenario, n, seed, vary, sd))


def _truth(model, scenario, names=PK, sd=0.15):
    t = true_values(model, scenario, names)
    return ([t[p][0] for p in names] + [t[p][1] for p in names] + [sd])


def test_recovers_known_parameters_and_covers_them(model, ocrelizumab):
    """Cohorts simulated with known typical values, between-patient SDs and residual error: every estimate's
    95% interval covers the truth in nearly all of 3 x 5 cases (expected 14.25 of 15), and the typical values
    land within 25% of the truth (about 3 standard errors with 12 patients)."""
    truth = np.array(_truth(model, ocrelizumab))
    covered, total = 0, 0
    for seed in (3, 4, 5):
        r = fit(_data(model, ocrelizumab, 12, seed), "ocrelizumab", PK, "ms", dvids=[5])
        assert r.estimate.success and r.estimate.covariance_message == "ok"
        p = r.parameters
        assert list(p.role) == ["theta", "theta", "omega", "omega", "sigma"]
        assert np.allclose(p.estimate[:2], truth[:2], rtol=0.25)       # about 3 standard errors
        covered += int(((p.ci_low <= truth) & (truth <= p.ci_high)).sum())
        total += len(truth)
    assert covered >= 13, f"{covered} of {total} intervals cover the truth"


@pytest.fixture(scope="module")
def one_parameter(model, ocrelizumab):
    """A fit of one parameter, whose marginal likelihood can be integrated numerically."""
    data = _data(model, ocrelizumab, 8, 7, vary=["mab_cl_inf"])
    return fit(data, "ocrelizumab", ["mab_cl_inf"], "ms", dvids=[5])


def test_objective_matches_an_independent_laplace_and_quadrature(one_parameter):
    """Each patient's -2 log L at the estimate: cartsim's FOCE-I term equals a Laplace approximation computed
    independently (SciPy's bounded minimiser for the mode, statsmodels' finite-difference Hessian of the exact
    conditional objective), and lies within 0.1 of the marginal likelihood integrated over eta by quadrature."""
    r = one_parameter
    problem, x = r.problem, r.estimate.x
    lt, lo, ls = foce.split(problem, x)
    omega2 = math.exp(2 * lo[0, 0])
    n = problem.data.n

    def g(eta, i):
        """-2 log p(y_i | eta) - 2 log p(eta) for patient i, from predictions of that patient alone."""
        active = np.zeros((1, n), bool)
        active[0, i] = True
        etas = np.zeros((1, n, 1))
        etas[0, i, 0] = eta
        f = problem.predict(lt[:, None, :] + etas, active)
        rr, c = problem.residuals(f, ls)
        mine = problem.data.patient == i
        return float(np.sum(rr[0, mine] ** 2 + c[0, mine]) + eta ** 2 / omega2 + math.log(2 * math.pi * omega2))

    grid = np.linspace(-6, 6, 601) * math.sqrt(omega2)
    ours = foce.ofv_terms(problem, foce.Objective(problem).modes_at(x)[1], lo)[0]
    for i in range(n):
        mode = optimize.minimize_scalar(lambda e: g(e, i), bounds=(-2, 2), method="bounded",
                                        options={"xatol": 1e-7}).x
        h = approx_hess3(np.array([mode]), lambda e: g(e[0], i))[0, 0]
        laplace = g(mode, i) - math.log(2 * math.pi) + math.log(h / 2)
        # quadrature: all grid points of this patient in one engine call
        etas = np.zeros((grid.size, n, 1))
        etas[:, i, 0] = grid
        active = np.zeros((grid.size, n), bool)
        active[:, i] = True
        f = problem.predict(lt[:, None, :] + etas, active)
        rr, c = problem.residuals(f, np.repeat(ls, grid.size, axis=0))
        mine = problem.data.patient == i
        gi = np.sum(rr[:, mine] ** 2 + c[:, mine], axis=1) + grid ** 2 / omega2 + math.log(2 * math.pi * omega2)
        shift = gi.min()
        exact = shift - 2 * math.log(integrate.trapezoid(np.exp(-(gi - shift) / 2), grid))
        assert ours[i] == pytest.approx(laplace, abs=0.02), i
        assert laplace == pytest.approx(exact, abs=0.1), i
    assert r.estimate.ofv == pytest.approx(float(np.sum(ours)), abs=1e-6)


def test_bayes_samples_around_the_estimate_and_repeats_with_its_seed(model, ocrelizumab):
    data = _data(model, ocrelizumab, 8, 7, vary=["mab_cl_inf"])
    a = fit(data, "ocrelizumab", ["mab_cl_inf"], "ms", dvids=[5], method="bayes", walkers=8, steps=16, seed=2)
    b = fit(data, "ocrelizumab", ["mab_cl_inf"], "ms", dvids=[5], method="bayes", walkers=8, steps=16, seed=2)
    assert np.array_equal(a.posterior.draws, b.posterior.draws)
    p = a.parameters.set_index("role").loc["theta"]
    assert p.ci_low < p.foce_estimate < p.ci_high and p.estimate == pytest.approx(p.foce_estimate, rel=0.1)
    assert 0 < a.posterior.acceptance < 1 and a.posterior.draws.shape == (8 * (16 - 16 // 3), 3)


def test_cli_writes_every_file_and_the_fit_applies_in_simulate(model, ocrelizumab, tmp_path):
    path = tmp_path / "ocr.csv"
    path.write_text(to_csv(_data(model, ocrelizumab, 8, 7, vary=["mab_cl_inf"])))
    out = tmp_path / "fit"
    r = runner.invoke(app, ["fit", str(path), "--therapy", "ocrelizumab", "--disease", "ms", "--estimate",
                            "mab_cl_inf", "--dvid", "5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["fit.json", "fitted.toml", "individual.csv", "predictions.csv", "gof.png", "individual_fits.png",
         "vpc.png"])
    doc = json.loads((out / "fit.json").read_text())
    assert doc["patients"] == 8 and doc["estimated"] == ["mab_cl_inf"] and doc["convergence"]["success"]
    cl = doc["parameters"][0]
    assert cl["role"] == "theta" and cl["ci_low"] < 0.17 < cl["ci_high"]
    pred = pd.read_csv(out / "predictions.csv")
    assert len(pred) == doc["observations"] and (pred.IPRED > 0).all()
    assert pred.IWRES.abs().mean() < pred.eval("log(DV / PRED)").abs().mean() / 0.15    # EBEs fit better
    fitted = load_fitted(out / "fitted.toml", model.parameters)
    assert fitted.therapy == "ocrelizumab" and fitted.parameters == {"mab_cl_inf": cl["estimate"]}
    # simulate with the fitted file: the fitted clearance, so a different antibody course
    sims = {}
    for name, extra in (("table", []), ("fitted", ["--parameters", str(out / "fitted.toml")])):
        r = runner.invoke(app, ["simulate", "--therapy", "ocrelizumab", "--disease", "ms", "--days", "200",
                                "--out", str(tmp_path / name), *extra])
        assert r.exit_code == 0, r.output
        sims[name] = pd.read_parquet(tmp_path / name / "trajectories.parquet")
    assert not np.allclose(sims["table"].mab_conc, sims["fitted"].mab_conc)


def test_fitted_values_reach_the_arms_they_belong_to(model):
    """An ocrelizumab fit's clearance replaces the ocrelizumab arm's, not ofatumumab's own; a value no
    therapy sets reaches every arm; an arm's own value wins."""
    from cartsim.trial.config import parse_config

    cfg = parse_config("""
[trial]
name = "t"
seed = 1
horizon_days = 100
[population]
n = 2
disease = "ms"
[[arm]]
name = "A"
therapy = "ocrelizumab"
[[arm]]
name = "B"
therapy = "ofatumumab"
[[arm]]
name = "C"
therapy = "ocrelizumab"
parameters = { reset_halflife = 3.0 }
""", "t.toml")
    fitted = Fitted({"mab_cl_inf": 0.2, "reset_halflife": 5.0}, "ocrelizumab")
    arms = cfg.with_fitted(fitted).arm
    assert arms[0].parameters == {"mab_cl_inf": 0.2, "reset_halflife": 5.0}
    assert arms[1].parameters == {"reset_halflife": 5.0}
    assert cfg.with_fitted(Fitted({"mab_cl_inf": 0.2}, "ocrelizumab")).arm[1].parameters is None   # nothing set
    assert arms[2].parameters == {"mab_cl_inf": 0.2, "reset_halflife": 3.0}
    assert arm_values(fitted, Scenario.make("ocrelizumab", "ms", 100), model.table)["mab_cl_inf"] == 0.2


@pytest.mark.parametrize("text, message", [
    ("[parameters]\nnot_a_parameter = 1.0\n", "not_a_parameter: unknown parameter"),
    ("[parameters]\nmab_v1 = -1.0\n", "must be a number > 0"),
    ("[params]\nmab_v1 = 1.0\n", "unknown section \\[params\\]"),
    ("[fit]\ntherapy = 'x'\n", "needs a \\[parameters\\] table"),
    ("[parameters\n", "not valid TOML"),
])
def test_a_bad_fitted_file_is_refused(model, tmp_path, text, message):
    path = tmp_path / "f.toml"
    path.write_text(text)
    with pytest.raises(CartsimInputError, match=f"--parameters: .*{message}"):
        load_fitted(path, model.parameters)


def test_fitted_file_round_trips(model):
    f = Fitted({"mab_v1": 2.9123456789012345}, "ocrelizumab", {"mab_v1": 0.1}, {"method": "foce-i"})
    import tomllib

    doc = tomllib.loads(to_toml(f))
    assert doc["parameters"]["mab_v1"] == 2.9123456789012345 and doc["fit"]["therapy"] == "ocrelizumab"


GOOD = ("ID,TIME,AMT,RATE,EVID,CMT,DVID,DV,MDV\n"
        "1,0,300,2880,1,{cmt},0,.,1\n"
        "1,1,.,.,0,.,5,{dv},0\n"
        "1,{t},.,.,0,.,5,40,0\n")


@pytest.mark.parametrize("args, text, field, words", [
    (["--estimate", "mab_v9"], None, "--estimate", "unknown parameter 'mab_v9'"),
    (["--method", "saem"], None, "--method", "unknown method 'saem'"),
    ([], "ID,TIME,AMT,EVID,CMT,DVID,DV\n1,0,1,0,0,5,1\n", "DATA", "required column MDV is missing"),
    ([], GOOD.format(cmt=1, dv="high", t=14), "DATA", "DV"),
    ([], GOOD.format(cmt=1, dv=60, t=-3), "DATA", "times must not decrease"),
    ([], "ID,TIME,AMT,EVID,CMT,DVID,DV,MDV\n1,-2,.,0,.,5,30,0\n1,0,600,1,1,0,.,1\n", "DATA",
     "TIME: -2 .*before the therapy's first simulated day"),
    ([], GOOD.format(cmt=".", dv=60, t=14), "DATA", "compartment"),
    (["--dvid", "1"], None, "--dvid", "DVID 1 has no observations"),
])
def test_bad_input_is_one_line_and_writes_nothing(model, tmp_path, args, text, field, words):
    path = tmp_path / "d.csv"
    central = model.state_index("mab_central") + 1
    path.write_text(text if text is not None else GOOD.format(cmt=central, dv=60, t=14))
    out = tmp_path / "out"
    options = {"--estimate": "mab_cl_inf", "--method": "foce-i"} | dict(zip(args[::2], args[1::2]))
    r = runner.invoke(app, ["fit", str(path), "--therapy", "ocrelizumab", "--disease", "ms", "--out", str(out),
                            *[v for item in options.items() for v in item]])
    lines = [ln for ln in r.output.strip().splitlines() if ln]
    assert r.exit_code == 2, r.output
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), r.output
    assert re.search(words, lines[0]), lines[0]
    assert not out.exists() or not any(out.iterdir())


def test_individual_fits_are_a_grid_and_do_not_stretch_to_the_solver_floor():
    """Regression: one observation type drew 9 patients as a 1-column strip, and the curve's zero before the
    first dose stretched the log axis down to 1e-6."""
    from cartsim.outputs.fit import display_floor, individual_layout

    assert individual_layout(9, 1) == (3, 3) and individual_layout(2, 1) == (1, 2)
    assert individual_layout(4, 2) == (4, 2)
    assert display_floor(np.array([0.0, 2.0, 50.0]), np.array([0.0, 0.5])) == pytest.approx(0.05)


def test_an_antibody_cohort_has_no_cart_observations_and_its_figure_says_first_dose(model, ocrelizumab):
    """Regression: an ocrelizumab cohort held 'CAR-T cells in blood' records (all below the limit), and the
    simulate figure's time axis said 'days since CAR-T infusion' for an antibody."""
    from cartsim.exporters.nonmem import observation_types
    from cartsim.outputs.plots import time_label

    types = {t.quantity for t in observation_types(model, ocrelizumab)}
    assert "car_blood_per_uL" not in types and "mab_conc" in types
    cart = {t.quantity for t in observation_types(model, Scenario.make("mb-cart19", "sle", 60))}
    assert "car_blood_per_uL" in cart and "mab_conc" not in cart
    assert time_label(pd.DataFrame({"car_blood_per_uL": [0.0, 0.0]})) == "days since the first dose"
    assert time_label(pd.DataFrame({"car_blood_per_uL": [0.0, 3.0]})) == "days since CAR-T infusion"


def test_agrees_with_scipy_on_the_petab_export(model, ocrelizumab, tmp_path):
    """Cross-check on one case: patients who differ only in weight (no random effects), serum levels with
    log-normal noise. cartsim's fit (its between-patient SDs estimated near 0) and SciPy's least
    squares on the PEtab export, simulated by libRoadRunner from model.xml and the condition table, find the same
    typical values."""
    import libsbml
    import roadrunner
    import yaml

    data = check_dataset(cohort(model, ocrelizumab, 6, 3, [], 0.15))
    data = data[(data.EVID == 1) | ((data.DVID == 5) & (data.BLQ == 0))].drop(columns=["BLQ", "LLOQ"])
    data = data.reset_index(drop=True)
    path = tmp_path / "d.csv"
    path.write_text(to_csv(data))
    problem_dir = tmp_path / "petab"
    r = runner.invoke(app, ["export", "petab", "--therapy", "ocrelizumab", "--disease", "ms", "--data", str(path),
                            "-o", str(problem_dir)])
    assert r.exit_code == 0, r.output
    files = yaml.safe_load((problem_dir / "problem.yaml").read_text())["problems"][0]
    text = (problem_dir / files["sbml_files"][0]).read_text()
    conditions = pd.read_csv(problem_dir / files["condition_files"][0], sep="\t").set_index("conditionId")
    meas = pd.read_csv(problem_dir / files["measurement_files"][0], sep="\t")
    assert set(meas.observableId) == {"obs_mab_conc"}
    sbml = libsbml.readSBMLFromString(text).getModel()
    restart = {p.getId(): p.getValue() for p in sbml.getListOfParameters()
               if not p.getConstant() and sbml.getRuleByVariable(p.getId()) is None}
    rr = roadrunner.RoadRunner(text)
    rr.integrator.relative_tolerance, rr.integrator.absolute_tolerance = 1e-8, 1e-12
    rr.timeCourseSelections = ["time", "mab_conc"]

    def residuals(log_p):
        out = []
        for cid, row in conditions.iterrows():
            for name, value in row.items():
                if name != "conditionName":
                    rr.setValue(name, float(value))
            rr.setValue("mab_v1", float(np.exp(log_p[0])))
            rr.setValue("mab_cl_inf", float(np.exp(log_p[1])))
            for name, value in restart.items():         # infusion rates and trigger counters start at 0
                rr.setValue(name, value)
            rr.reset()                                   # states, time, and the infusions starting at time 0
            m = meas[meas.simulationConditionId == cid]
            times = np.unique(m.time.to_numpy())
            sim = np.asarray(rr.simulate(times=[0.0, *times]))[1:]
            f = dict(zip(times, sim[:, 1]))
            out.append(np.log(m.measurement.to_numpy()) - np.log([f[t] for t in m.time]))
        return np.concatenate(out)

    # finite-difference steps well above CVODE's 1e-8 noise (SciPy's default, 1.5e-8, stopped it early)
    scipy_fit = optimize.least_squares(residuals, np.log([2.78, 0.17]) + 0.2, x_scale=1.0, xtol=1e-10, diff_step=1e-5)
    ours = fit(data, "ocrelizumab", PK, "ms", dvids=[5])
    p = ours.parameters.set_index(["role", "parameter"])
    assert p.loc[("omega", "mab_v1"), "estimate"] < 0.05 and p.loc[("omega", "mab_cl_inf"), "estimate"] < 0.05
    assert np.exp(scipy_fit.x) == pytest.approx([p.loc[("theta", "mab_v1"), "estimate"],
                                                 p.loc[("theta", "mab_cl_inf"), "estimate"]], rel=0.02)
    # (2%: the mixed-effects fit keeps SDs of up to 0.05, so its typical values sit within a third of a standard
    # error, about 3%, of the pooled least-squares values)
    sigma = math.sqrt(np.mean(scipy_fit.fun ** 2))                  # the residual SD's maximum-likelihood value
    assert p.loc[("sigma", "DVID 5 (mab_conc)"), "estimate"] == pytest.approx(sigma, rel=0.02)


def test_fitted_variability_rescales_each_patients_draw(model):
    """A fitted omega replaces the table's in a trial arm: over many patients the log-SD is the fitted one, and
    each patient keeps its own draw (the same order); a parameter without variability in the table is refused."""
    from cartsim.population import sample

    base = Scenario.make("ocrelizumab", "ms", 60)
    wide = Scenario.make("ocrelizumab", "ms", 60, iiv={"mab_cl_inf": 0.6})
    pop = sample(model, base.disease, 2000, 4)
    a = base.patient_inputs(model, pop)[0].column("mab_cl_inf")
    b = wide.patient_inputs(model, pop)[0].column("mab_cl_inf")
    assert np.std(np.log(a)) == pytest.approx(0.3, rel=0.05) and np.std(np.log(b)) == pytest.approx(0.6, rel=0.05)
    assert np.array_equal(np.argsort(a), np.argsort(b))
    assert np.exp(np.median(np.log(b))) == pytest.approx(np.exp(np.median(np.log(a))), rel=0.01)
    with pytest.raises(CartsimInputError, match="iiv: 'mab_q' has no between-patient variability"):
        Scenario.make("ocrelizumab", "ms", 60, iiv={"mab_q": 0.2})
    fitted = Fitted({"mab_cl_inf": 0.2, "mab_q": 0.3}, "ocrelizumab", {"mab_cl_inf": 0.25, "mab_q": 0.1})
    from cartsim.trial.config import parse_config

    cfg = parse_config("[trial]\nname = 't'\nseed = 1\nhorizon_days = 60\n[population]\nn = 2\ndisease = 'ms'\n"
                       "[[arm]]\nname = 'A'\ntherapy = 'ocrelizumab'\n", "t.toml").with_fitted(fitted)
    assert cfg.arm[0].iiv == {"mab_cl_inf": 0.25}       # mab_q has no variability in the table to replace
    assert dict(cfg.scenario(0).iiv) == {"mab_cl_inf": 0.25}


def test_fitted_values_are_labelled_as_fitted_in_the_arm_provenance():
    """Regression: a trial run with --parameters fitted.toml listed the fitted values as 'assumed, scenario
    value' in the report's table of values each arm sets."""
    from cartsim.trial.config import parse_config

    fitted = Fitted({"mab_cl_inf": 0.2}, "ocrelizumab", {}, {"method": "foce-i", "dataset": "ocr.csv", "patients": 15})
    cfg = parse_config("[trial]\nname = 't'\nseed = 1\nhorizon_days = 60\n[population]\nn = 2\ndisease = 'ms'\n"
                       "[[arm]]\nname = 'A'\ntherapy = 'ocrelizumab'\nparameters = { reset_halflife = 3.0 }\n",
                       "t.toml").with_fitted(fitted)
    prov = cfg.scenario(0).parameter_provenance()
    assert prov["mab_cl_inf"]["kind"] == "calibrated" and prov["mab_cl_inf"]["set_by"] == "fit"
    assert "fitted by cartsim fit (method foce-i, dataset ocr.csv, patients 15)" in prov["mab_cl_inf"]["source"]
    assert prov["reset_halflife"]["kind"] == "assumed"          # the arm's own value is not from the fit


@pytest.mark.parametrize("args, field, words", [
    (["--vary", "mab_q"], "--vary", "'mab_q' has no between-patient variability"),
    (["--vary", " , "], "--vary", "is empty"),
    (["--blq"], "--blq", "needs --residual-sd"),
    (["--residual-sd", "lots"], "--residual-sd", "must be a number"),
    (["--residual-sd", "-0.1"], "--residual-sd", "must be a number >= 0"),
])
def test_export_of_a_cohort_with_known_parameters_refuses_bad_options(tmp_path, args, field, words):
    out = tmp_path / "c.csv"
    r = runner.invoke(app, ["export", "nonmem", "--therapy", "ocrelizumab", "--disease", "ms", "--n", "2",
                            "--days", "30", "-o", str(out), *args])
    lines = [ln for ln in r.output.strip().splitlines() if ln]
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {field}:"), r.output
    assert words in lines[0] and not out.exists()


def test_individual_fits_name_the_quantity_once(one_parameter):
    """Regression: with one observation type, every row of panels carried the long quantity label, and the
    labels ran into each other down the left edge."""
    import matplotlib.pyplot as plt

    from cartsim.outputs.fit import individual_plot

    fig = individual_plot(one_parameter)
    try:
        assert [ax.get_ylabel() for ax in fig.axes if ax.get_visible() and ax.get_ylabel()] == []
        assert fig.get_supylabel() == "serum anti-CD20 antibody (total) (ug/mL)"
        assert [ax.get_title() for ax in fig.axes if ax.get_visible()][:2] == ["ID 1", "ID 2"]
    finally:
        plt.close(fig)
