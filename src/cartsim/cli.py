"""The ``cartsim`` command."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from enum import Enum
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from cartsim.data import DRUG_FILES, entry_names
from cartsim.errors import CartsimInputError, fail
from cartsim.exporters.cli import export_app
from cartsim.outputs.files import check_output_dir

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="cartsim: in-silico trials of CAR T-cell therapy for autoimmune disease. "
                       "Research software, not medical advice.")
console = Console()
app.add_typer(export_app, name="export")

# option help read from the data files, so that it names every product, drug and disease the package has
THERAPY_HELP = (f"CAR-T product ({', '.join(entry_names('products.toml'))}), drug given by a regimen "
                f"({', '.join(entry_names(*DRUG_FILES))}), 'placebo' or 'untreated'")
DISEASE_HELP = " | ".join(entry_names("diseases.toml"))
LYMPHODEPLETION_HELP = "regimen name (the product's own by default): " + " | ".join(entry_names("lymphodepletion.toml"))


class Format(str, Enum):
    parquet = "parquet"
    csv = "csv"


@app.command()
def simulate(
    therapy: str = typer.Option(..., "--therapy", help=THERAPY_HELP),
    out: Path = typer.Option(..., "--out", help="output directory"),
    disease: str = typer.Option("sle", "--disease", help=DISEASE_HELP),
    days: str = typer.Option("365", "--days", help="days to simulate after infusion"),
    dose: Optional[str] = typer.Option(None, "--dose", help="e.g. '1e6 cells/kg' or '1e8 cells'"),
    lymphodepletion: Optional[str] = typer.Option(None, "--lymphodepletion", help=LYMPHODEPLETION_HELP),
    regimen: Optional[str] = typer.Option(None, "--regimen", help="antibody regimen, e.g. '300 mg IV on days 0 "
                                          "and 14, then 600 mg IV every 24 weeks'"),
    fmt: Format = typer.Option(Format.parquet, "--format", help="trajectory file format"),
    observed: Optional[Path] = typer.Option(None, "--observed", help="NONMEM-style CSV of observations to "
                                            "overlay on figure.png (matched by DVID)"),
    fitted: Optional[Path] = typer.Option(None, "--parameters", help="fitted.toml from `cartsim fit`: its "
                                          "typical values replace the table's"),
) -> None:
    """Simulate the typical patient: trajectories, endpoints and a figure."""
    from cartsim.compare import facts
    from cartsim.exporters.nonmem import read_observed
    from cartsim.model import build_model
    from cartsim.outputs.plots import plot_trajectories
    from cartsim.scenario import Scenario
    from cartsim.simulate import simulate as run

    try:
        scenario = Scenario.make(therapy, disease, days, dose, lymphodepletion, regimen)  # validate before any work
        values = None
        if fitted is not None:
            from cartsim.fit.fitted import arm_values, load_fitted
            model = build_model()
            values = arm_values(load_fitted(fitted, model.parameters), scenario, model.table)
        check_output_dir(out, "--out")
        points = read_observed(observed) if observed is not None else None
        result = run(therapy, disease, float(days), dose, lymphodepletion, regimen, values)
    except CartsimInputError as err:
        fail(err)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".cartsim-", dir=out))
    except OSError as err:
        fail(CartsimInputError("--out", f"cannot create {str(out)!r} ({err.strerror})"))
    try:  # write everything into a temporary folder, then move files into place
        traj = tmp / f"trajectories.{fmt.value}"
        if fmt is Format.csv:
            result.trajectories.to_csv(traj, index=False)
        else:
            result.trajectories.to_parquet(traj, index=False)
        summary = {"therapy": therapy, "disease": disease, "days": float(days),
                   "dose": str(result.scenario.product.dose) if result.scenario.product else None,
                   "lymphodepletion": result.scenario.product.lymphodepletion if result.scenario.product else None,
                   "regimen": str(result.scenario.antibody.regimen) if result.scenario.antibody else None,
                   "dosing": [{"day": d, "what": w} for d, w in result.dosing],
                   "tocilizumab_days": result.tocilizumab_days,
                   "endpoints": {k: (None if v != v else (float(v) if not isinstance(v, bool) else v))
                                 for k, v in result.endpoints.items()}}
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
        table = build_model().table
        thresholds = {f"crs_il6_grade{g}": table.value(f"crs_il6_grade{g}") for g in range(1, 5)}
        ab = result.scenario.antibody
        plot_trajectories(result.trajectories, tmp / "figure.png",
                          f"{therapy} in {disease}: typical patient", thresholds, observed=points,
                          drug_names={ab.level: ab.kind} if ab is not None and ab.level else None,
                          autoantibody=result.scenario.disease.autoantibody)
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ep = result.endpoints
    console.print(f"[bold]{therapy}[/] in [bold]{disease}[/], typical patient, {float(days):g} days")
    gone = facts(result)["bcells_below_1_per_uL_day"]
    if gone is None:
        console.print("  B cells did not fall below 1/uL")
    else:
        back = (f"not back by day {ep['bcell_reappearance_day']:g}, the end of the simulation"
                if ep["bcell_reappearance_censored"] else f"back (1/uL or more) on day {ep['bcell_reappearance_day']:g}")
        console.print(f"  B cells < 1/uL from day {gone:g}; {back}")
    cart = ("no CAR-T cells in blood" if math.isnan(ep["cart_tmax_day"]) else
            f"CAR-T peak {ep['cart_peak_per_uL']:.3g}/uL on day {ep['cart_tmax_day']:g}")
    console.print(f"  {cart}; CRS grade {ep['crs_max_grade']}, ICANS grade {ep['icans_max_grade']}")
    console.print(f"  wrote {out}/trajectories.{fmt.value}, summary.json, figure.png")


@app.command()
def compare(
    therapy_a: str = typer.Argument(..., metavar="THERAPY_A", help="first therapy, e.g. kyv-101"),
    therapy_b: str = typer.Argument(..., metavar="THERAPY_B", help="second therapy, e.g. ocrelizumab"),
    out: Path = typer.Option(..., "--out", help="output directory"),
    disease: str = typer.Option("ms", "--disease", help=DISEASE_HELP),
    days: str = typer.Option("1095", "--days", help="days to simulate"),
    fmt: Format = typer.Option(Format.parquet, "--format", help="trajectory file format"),
) -> None:
    """Two therapies side by side for the typical patient: compare.png/.svg, trajectories, summary.json."""
    from cartsim.compare import check_inputs
    from cartsim.compare import compare as run

    try:
        check_inputs(therapy_a, therapy_b, disease, days)  # validate before any work
        check_output_dir(out, "--out")
        result = run(therapy_a, therapy_b, disease, days)
    except CartsimInputError as err:
        fail(err)
    try:
        result.write(out, fmt.value)
    except OSError as err:
        fail(CartsimInputError("--out", f"cannot write to {str(out)!r} ({err.strerror})"))
    for line in result.lines():
        typer.echo(f"  {line}")
    typer.echo(f"  wrote {out}/trajectories.{fmt.value}, summary.json, compare.png, compare.svg")


@app.command()
def validate(as_json: bool = typer.Option(False, "--json", help="print a JSON list of checks")) -> None:
    """Check the model against published targets; exit 1 if any check fails."""
    from cartsim.validate import run_checks

    checks = run_checks()
    if as_json:
        typer.echo(json.dumps([c.as_json() for c in checks], indent=2))
    else:
        t = Table(title="cartsim validate: predicted vs observed acceptance window")
        for col in ("target", "metric", "predicted", "accept", "result"):
            t.add_column(col)
        for c in checks:
            t.add_row(c.id, c.metric + (" (calibrated)" if c.calibrated else ""), f"{c.predicted:.4g}",
                      f"[{c.accept[0]:g}, {c.accept[1]:g}]", "[green]pass[/]" if c.passed else "[red]MISS[/]")
        console.print(t)
        n_fail = sum(not c.passed for c in checks)
        console.print(f"{len(checks) - n_fail} passed, {n_fail} failed; '(calibrated)': a parameter was fitted "
                      "to that number, so the check confirms the fit rather than predicts")
    if not all(c.passed for c in checks):
        raise typer.Exit(1)


@app.command()
def parameters(as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table")) -> None:
    """Print the parameter table with provenance (and disease-specific values)."""
    from dataclasses import asdict

    from cartsim.disease import diseases
    from cartsim.model import load_table

    table = load_table()
    rows = [{"name": r.name, "value": r.value, "unit": r.unit, "component": r.component, "kind": r.kind,
             "source": r.source, "reference": list(r.reference), "iiv_omega": r.iiv_omega,
             "iiv_kind": r.omega_kind if r.iiv_omega else None, "iiv_source": r.iiv_source or None,
             "uncertainty": None if r.uncertainty is None else asdict(r.uncertainty),
             "bounds": None if r.bounds is None else list(r.bounds),
             "no_uncertainty": r.no_uncertainty or None} for r in table]
    for d in diseases().values():
        for label, course in ((d.name, None), *((f"{d.name} {c}", c) for c in d.courses)):
            prov = d.value_provenance(course)
            for k, v in (d.values(course).items() if course is None else d.courses[course].overrides.items()):
                r = table[k]
                rows.append({"name": f"{k} [{label}]", "value": v, "unit": r.unit, "component": r.component,
                             "kind": prov[k]["kind"], "source": prov[k]["source"],
                             "reference": _citations(prov[k].get("reference")), "iiv_omega": r.iiv_omega,
                             "iiv_kind": r.omega_kind if r.iiv_omega else None, "iiv_source": r.iiv_source or None,
                             "uncertainty": prov[k].get("uncertainty"),
                             "bounds": None if r.bounds is None else list(r.bounds),
                             "no_uncertainty": None})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    counts = ", ".join(f"{sum(r.kind == k for r in table)} {k}" for k in ("literature", "derived", "calibrated",
                                                                            "assumed"))
    ranged = sum(r.uncertainty is not None for r in table)
    t = Table(title="cartsim parameters", show_lines=False,
              caption=f"{len(table)} parameters: {counts}; {ranged} with an uncertainty range")
    for col in ("name", "value", "unit", "component", "kind", "source"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(r["name"], "derived" if r["value"] is None else f"{r['value']:g}", r["unit"],
                  r["component"], r["kind"], r["source"])
    Console(width=max(console.width, 200)).print(t)



def _citations(ref: object) -> list[str]:
    """A provenance ``reference`` (absent, one citation or a list) as a list of citations."""
    return [] if ref is None else [ref] if isinstance(ref, str) else [str(c) for c in ref]  # type: ignore[union-attr]


def _count(field: str, text: str | None) -> int | None:
    """A whole number given on the command line, or None when the option was not given."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise CartsimInputError(field, f"must be a whole number, got {text!r}", "an integer >= 1") from None


@app.command()
def trial(
    config: Path = typer.Argument(..., help="trial configuration (TOML), e.g. examples/quick.toml"),
    out: Path = typer.Option(..., "--out", help="output directory"),
    n: Optional[str] = typer.Option(None, "--n", help="patients per arm (overrides the configuration)"),
    workers: str = typer.Option("1", "--workers", help="local worker processes"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address, e.g. tcp://host:8786"),
    resume: bool = typer.Option(False, "--resume", help="keep the finished chunks of an interrupted run"),
    save_trajectories: bool = typer.Option(False, "--save-trajectories", help="also write trajectories.parquet"),
    times: Optional[str] = typer.Option(None, "--times", help="days for --save-trajectories, e.g. '0,7,14,28'"),
    chunk_size: Optional[str] = typer.Option(None, "--chunk-size", help="patients per chunk (default 256)"),
    no_validation: bool = typer.Option(False, "--no-validation",
                                       help="leave the validation table out of report.html (a quicker first run)"),
    solver: Optional[str] = typer.Option(None, "--solver",
                                         help="ODE solver: rodas5p (the default), rodas4 or dp5 (explicit)"),
    uncertainty_sets: Optional[str] = typer.Option(
        None, "--uncertainty", help="also re-run the trial over K parameter sets drawn from the parameter "
        "table's uncertainty ranges (Latin hypercube): each endpoint with its interval over sets"),
    uncertainty_parameters: Optional[str] = typer.Option(
        None, "--uncertainty-parameters", help="comma-separated parameters to vary with --uncertainty "
        "(default: every assumed and calibrated one with a range)"),
    fitted: Optional[Path] = typer.Option(None, "--parameters", help="fitted.toml from `cartsim fit`: its typical "
                                          "values in every arm (an arm's own values win; another therapy keeps "
                                          "the values it sets itself)"),
) -> None:
    """Run an in-silico trial: patients, failures, summary.json and report.html in OUT."""
    from cartsim.engine.solve import SOLVERS
    from cartsim.trial.config import load_config
    from cartsim.trial.run import execute, prepare

    try:
        if solver is not None and solver not in SOLVERS:
            raise CartsimInputError("--solver", f"unknown solver {solver!r}", ", ".join(SOLVERS))
        cfg = load_config(config).with_n(_count("--n", n))
        if fitted is not None:
            from cartsim.fit.fitted import load_fitted
            from cartsim.model import build_model
            cfg = cfg.with_fitted(load_fitted(fitted, build_model().parameters))
        check_output_dir(out, "--out")
        plan = prepare(cfg, out, chunk_size=_count("--chunk-size", chunk_size), resume=resume,
                       save_trajectories=save_trajectories, times=times, workers=_count("--workers", workers),
                       scheduler=scheduler, validation=not no_validation,
                       solver={"solver": solver} if solver else None,
                       uncertainty_sets=_count("--uncertainty", uncertainty_sets),
                       uncertainty_parameters=_names(uncertainty_parameters))
        result = execute(plan)
    except CartsimInputError as err:
        fail(err)
    rate = f" ({result.simulated / result.seconds:,.0f} patients/s)" if result.simulated else ""
    console.print(f"[bold]{cfg.trial.name}[/]: simulated {result.simulated} patients in {result.seconds:.1f} s{rate}")
    for arm in result.summary["arms"]:
        console.print(f"  {arm['name']} ({arm['therapy']}): n={arm['n']}, failed {arm['n_failed']}")
    written = "patients.parquet, failures.parquet, summary.json, report.html"
    if plan.sets is not None:
        written += ", parameter_sets.parquet, uncertainty.parquet"
    console.print(f"  wrote {out}/{written}" + (", trajectories.parquet" if save_trajectories else ""))


@app.command()
def fit(
    data: Path = typer.Argument(..., metavar="DATA", help="NONMEM-style CSV (the columns `cartsim export nonmem` "
                                "writes; BLQ/LLOQ optional)"),
    therapy: str = typer.Option(..., "--therapy", help="the therapy the patients received, whose model values and "
                                "rescue rules apply (the dataset's own dose records are used): " + THERAPY_HELP),
    estimate: str = typer.Option(..., "--estimate", help="comma-separated parameters to estimate (typical value "
                                 "and log-normal between-patient SD of each)"),
    out: Path = typer.Option(..., "--out", help="output directory"),
    disease: str = typer.Option("sle", "--disease", help=DISEASE_HELP),
    dvid: Optional[str] = typer.Option(None, "--dvid", help="observation types to fit, e.g. '1,2' (default: all "
                                       "in the dataset)"),
    method: str = typer.Option("foce-i", "--method", help="foce-i (maximum likelihood) or bayes (emcee, priors "
                               "from the parameter table)"),
    steps: str = typer.Option("200", "--steps", help="bayes: ensemble steps (a third is burn-in)"),
    walkers: str = typer.Option("16", "--walkers", help="bayes: walkers (at least 2 x dimensions + 2)"),
    seed: str = typer.Option("0", "--seed", help="bayes: random seed"),
) -> None:
    """Population fit (nonlinear mixed effects) of a dataset: fit.json, fitted.toml, GOF plots and a VPC."""
    from rich.progress import Progress

    from cartsim.exporters.nonmem import read_nonmem
    from cartsim.fit.run import METHODS
    from cartsim.fit.run import fit as run
    from cartsim.outputs.fit import FILES, write_fit

    try:
        if method not in METHODS:
            raise CartsimInputError("--method", f"unknown method {method!r}", ", ".join(METHODS))
        names = _names(estimate, "--estimate")
        dvids = None if dvid is None else [_count("--dvid", t.strip()) for t in dvid.split(",") if t.strip()]
        if dvids is not None and not dvids:
            raise CartsimInputError("--dvid", "is empty", "comma-separated DVIDs, e.g. 1,2")
        n_steps, n_walkers, n_seed = _count("--steps", steps), _count("--walkers", walkers), _whole("--seed", seed)
        check_output_dir(out, "--out")
        dataset = read_nonmem(data, "DATA")
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("FOCE-I", total=None)

            def progress(stage, i, value):
                if stage == "foce":
                    bar.update(task, description=f"FOCE-I: {i} objective evaluations, OFV {value:.2f}")
                else:
                    bar.update(task, description="MCMC", completed=i, total=value)
            result = run(dataset, therapy, names, disease, dvids, method, n_walkers, n_steps, n_seed, progress)
    except CartsimInputError as err:
        fail(err)
    try:
        write_fit(result, out, data.name)
    except OSError as err:
        fail(CartsimInputError("--out", f"cannot write to {str(out)!r} ({err.strerror})"))
    est = result.estimate
    console.print(f"[bold]{therapy}[/]: {result.problem.data.n} patients, {result.problem.data.dv.size} "
                  f"observations, {result.method}, OFV {est.ofv:.2f} in {result.seconds:.0f} s "
                  f"({'converged' if est.success else 'not converged: ' + est.message})")
    table = Table(show_header=True, header_style="bold")
    for col in ("", "parameter", "estimate", "RSE %", "95% interval"):
        table.add_column(col)
    for r in result.parameters.itertuples():
        ci = f"{r.ci_low:.3g}-{r.ci_high:.3g}" if np.isfinite(r.ci_low) else "-"
        table.add_row(r.role, r.parameter, f"{r.estimate:.3g}" + (" (at bound)" if r.at_bound else ""),
                      f"{r.rse_percent:.0f}" if np.isfinite(r.rse_percent) else "-", ci)
    console.print(table)
    if est.cov is None and result.posterior is None:
        console.print(f"  no standard errors: {est.covariance_message}")
    console.print(f"  wrote {out}/{', '.join(FILES)}")


@app.command()
def power(
    config: Path = typer.Argument(..., help="trial configuration (TOML) with trial.primary_endpoint"),
    replicates: str = typer.Option(..., "--replicates", help="trials to simulate, each with fresh cohorts"),
    n: Optional[str] = typer.Option(None, "--n", help="patients per arm (overrides the configuration)"),
    workers: str = typer.Option("1", "--workers", help="local worker processes"),
    out: Optional[Path] = typer.Option(None, "--out", help="output directory for power.json"),
    seed: Optional[str] = typer.Option(None, "--seed", help="random seed (overrides trial.seed)"),
    chunk_size: Optional[str] = typer.Option(None, "--chunk-size", help="patients per compiled call "
                                             "(default: all replicates of an arm, as memory allows)"),
    uncertainty_sets: Optional[str] = typer.Option(
        None, "--uncertainty", help="spread the replicates over K parameter sets from the uncertainty ranges: "
        "the power averaged over them (assurance)"),
    uncertainty_parameters: Optional[str] = typer.Option(
        None, "--uncertainty-parameters", help="comma-separated parameters to vary with --uncertainty"),
) -> None:
    """Power of the primary comparison: the fraction of simulated trials with p < alpha."""
    from cartsim.trial.config import load_config
    from cartsim.trial.power import POWER_FILE, prepare_power, run_power

    try:
        count, n_workers = _count("--replicates", replicates), _count("--workers", workers)
        assert count is not None and n_workers is not None    # options with a value
        cfg = load_config(config).with_n(_count("--n", n)).with_seed(_whole("--seed", seed))
        plan = prepare_power(cfg, count, workers=n_workers, chunk_size=_count("--chunk-size", chunk_size),
                             uncertainty_sets=_count("--uncertainty", uncertainty_sets),
                             uncertainty_parameters=_names(uncertainty_parameters))
        if out is not None:
            check_output_dir(out, "--out")
        result = run_power(plan, out)
    except CartsimInputError as err:
        fail(err)
    doc = result.document
    rate = f" ({plan.patients / result.seconds:,.0f} patients/s)" if result.seconds > 0 else ""
    console.print(f"[bold]{cfg.trial.name}[/]: {doc['replicates']} replicates, {plan.patients} patients "
                  f"in {result.seconds:.1f} s{rate}")
    t = Table(show_header=False, box=None)
    for label, value in _power_rows(doc):
        t.add_row(label, value)
    console.print(t)
    if out is not None:
        console.print(f"  wrote {out}/{POWER_FILE}")


@app.command()
def sensitivity(
    config: Path = typer.Argument(..., help="trial configuration (TOML), e.g. examples/kysa7.toml"),
    method: str = typer.Option("morris", "--method", help="sobol (first- and total-order indices) or morris "
                               "(a screen for many parameters)"),
    samples: Optional[str] = typer.Option(None, "--samples", help="Sobol base samples N, a power of two (default "
                                          "64; N x (parameters + 2) sets), or Morris trajectories r (default 10)"),
    names: Optional[str] = typer.Option(None, "--parameters", help="comma-separated parameters (default: every "
                                        "assumed and calibrated parameter of `cartsim parameters` the model uses)"),
    arm: Optional[str] = typer.Option(None, "--arm", help="one arm by name (default: every arm)"),
    outcome: str = typer.Option("typical", "--outcome", help="typical (the typical patient) or mean (the mean of "
                                "20 virtual patients) per parameter set"),
    out: Optional[Path] = typer.Option(None, "--out", help="output directory (default out/CONFIG-sensitivity)"),
    workers: str = typer.Option("1", "--workers", help="local worker processes"),
    seed: Optional[str] = typer.Option(None, "--seed", help="random seed (overrides trial.seed)"),
) -> None:
    """Global sensitivity analysis: which uncertain parameters move each endpoint (sensitivity.json, .parquet,
    .png)."""
    from cartsim.trial.config import load_config
    from cartsim.trial.sensitivity import FIGURE_FILE, JSON_FILE, TABLE_FILE, prepare_sensitivity, report_lines
    from cartsim.trial.sensitivity import run_sensitivity

    try:
        cfg = load_config(config).with_seed(_whole("--seed", seed))
        chosen = None if names is None else [n.strip() for n in names.split(",") if n.strip()]
        plan = prepare_sensitivity(cfg, method, _count("--samples", samples), chosen, arm, outcome,
                                   _count("--workers", workers))
        out = out if out is not None else Path("out") / f"{config.stem}-sensitivity"
        check_output_dir(out, "--out")
        result = run_sensitivity(plan, out)
    except CartsimInputError as err:
        fail(err)
    for line in report_lines(result.document):
        console.print(line)
    console.print(f"  wrote {out}/{JSON_FILE}, {TABLE_FILE}, {FIGURE_FILE}")


def _whole(field: str, text: str | None) -> int | None:
    """A whole number >= 0 given on the command line, or None when the option was not given."""
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise CartsimInputError(field, f"must be a whole number, got {text!r}", "an integer >= 0") from None
    if value < 0:
        raise CartsimInputError(field, f"must be at least 0, got {value}", "an integer >= 0")
    return value


def _names(text: str | None, field: str = "--uncertainty-parameters") -> list[str] | None:
    """Comma-separated names (None when the option is not given)."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise CartsimInputError(field, "is empty", "comma-separated parameter names")
    return names


def _not_estimable(count: int) -> str:
    return f"; not estimable in {count} replicate{'s' if count != 1 else ''} (an arm without events)" if count else ""


def _power_rows(doc: dict) -> list[tuple[str, str]]:
    """The lines of the power table printed by ``cartsim power``."""
    fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
    a, b = doc["arms"]
    eff = doc["effect"]
    lo, hi = doc["power_ci95"] or (None, None)
    return [("comparison", f"A = {a['name']} (n={a['n']}) vs B = {b['name']} (n={b['n']})"),
            ("primary endpoint", f"{doc['primary_endpoint']} ({doc['kind']})"),
            ("test", f"{doc['test']}, alpha {doc['alpha']:g}"),
            ("power", (f"{fmt(doc['power'])} (95% CI {fmt(lo)} to {fmt(hi)}; {doc['rejections']} of "
                       f"{doc['replicates']} replicates with p < alpha)")),
            ("effect", (f"{eff['measure']}: median {fmt(eff['median'])} (2.5-97.5%: {fmt(eff['p025'])} to "
                        f"{fmt(eff['p975'])})" + _not_estimable(eff.get("not_estimable_replicates", 0)))),
            ("failed patients", f"{a['n_failed']} in A, {b['n_failed']} in B")] + _assurance_rows(doc)


def _assurance_rows(doc: dict) -> list[tuple[str, str]]:
    u = doc.get("parameter_uncertainty")
    if not u:
        return []
    by = u["power_by_set"]
    return [("assurance", f"the power above is averaged over {u['sets']} parameter sets ({len(u['parameters'])} "
                          f"uncertain parameters); within one set it ranged {by['min']:.2g} to {by['max']:.2g} "
                          f"(median {by['median']:.2g})")]


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: str = typer.Option("8000", "--port", help="TCP port to listen on"),
) -> None:
    """Serve the comparison web page and its JSON API (described at /openapi.json) until interrupted."""
    from cartsim.web.app import serve as run

    try:
        number = _count("--port", port)
        if number is None or not 1 <= number <= 65535:
            raise CartsimInputError("--port", f"must be from 1 to 65535, got {port!r}", "1-65535")
    except CartsimInputError as err:
        fail(err)
    console.print(f"cartsim serve: http://{host}:{number}/  (research simulation, not medical advice)")
    run(host, number)
