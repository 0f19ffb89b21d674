"""``cartsim export``: the model, a patient and a therapy in other tools' formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from cartsim.errors import CartsimInputError, fail
from cartsim.exporters import ExportError
from cartsim.outputs.files import check_output_dir, check_output_file, write_text_atomic

export_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Export the model with a patient and a therapy's doses to other tools' formats.")


@export_app.command("sbml")
def sbml(
    therapy: str = typer.Option(..., "--therapy", help="CAR-T product (mb-cart19, kyv-101, tisa-cel) or 'untreated'"),
    output: Path = typer.Option(..., "-o", "--output", help="SBML file to write"),
    disease: str = typer.Option("sle", "--disease", help="healthy | sle | ms | b-all | lbcl"),
    dose: str | None = typer.Option(None, "--dose", help="e.g. '1e6 cells/kg' or '1e8 cells'"),
    lymphodepletion: str | None = typer.Option(None, "--lymphodepletion", help="regimen name"),
) -> None:
    """SBML Level 3 Version 2: the typical patient, the therapy's doses and the tocilizumab rescue as events."""
    from cartsim.exporters.sbml import TIME_OFFSET, to_sbml
    from cartsim.model import build_model
    from cartsim.scenario import Scenario

    try:
        scenario = Scenario.make(therapy, disease, dose=dose, lymphodepletion=lymphodepletion)
        check_output_file(output)
        text = to_sbml(build_model(), scenario)
    except (CartsimInputError, ExportError) as err:
        fail(err)
    try:
        write_text_atomic(output, text)
    except OSError as err:
        fail(CartsimInputError("--output", f"cannot write {str(output)!r} ({err.strerror})"))
    typer.echo(f"wrote {output} ({therapy} in {disease}, typical patient; SBML time 0 is day "
               f"{scenario.start:g}, parameter {TIME_OFFSET})")


def _whole(field: str, text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CartsimInputError(field, f"must be a whole number, got {text!r}", f"an integer >= {least}") from None
    if value < least:
        raise CartsimInputError(field, f"must be at least {least}, got {value}", f"an integer >= {least}")
    return value


@export_app.command("petab")
def petab(
    therapy: str = typer.Option(..., "--therapy", help="CAR-T product (mb-cart19, kyv-101, tisa-cel) or 'untreated'"),
    output: Path = typer.Option(..., "-o", "--output", help="directory for the PEtab files"),
    disease: str = typer.Option("sle", "--disease", help="healthy | sle | ms | b-all | lbcl"),
    data: Path | None = typer.Option(None, "--data", help="NONMEM-style CSV of observations "
                                                          "(default: a simulated typical patient)"),
    dose: str | None = typer.Option(None, "--dose", help="e.g. '1e6 cells/kg' or '1e8 cells'"),
    lymphodepletion: str | None = typer.Option(None, "--lymphodepletion", help="regimen name"),
    regimen: str | None = typer.Option(None, "--regimen", help="antibody regimen (antibody therapies)"),
) -> None:
    """PEtab v1 problem for calibrating the model to a NONMEM-style dataset: SBML, tables and problem.yaml."""
    from cartsim.exporters.nonmem import read_nonmem, simulate_dataset
    from cartsim.exporters.petab import FILES, petab_files
    from cartsim.model import build_model
    from cartsim.population import typical
    from cartsim.scenario import Scenario

    try:
        scenario = Scenario.make(therapy, disease, dose=dose, lymphodepletion=lymphodepletion, regimen=regimen)
        check_output_dir(output)
        model = build_model()
        if data is not None:
            dataset = read_nonmem(data, "--data")
            dataset_id, label = "data", f"{data.name}"
        else:
            dataset = simulate_dataset(model, scenario, typical(model, scenario.disease, scenario.course))
            dataset_id = "simulated_typical_patient"
            label = f"SIMULATED typical patient ({therapy} in {disease}; model prediction, not observed data)"
        files = petab_files(model, scenario, dataset, dataset_id, label)
    except (CartsimInputError, ExportError) as err:
        fail(err)
    try:
        output.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            write_text_atomic(output / name, text)
    except OSError as err:
        fail(CartsimInputError("--output", f"cannot write {str(output)!r} ({err.strerror})"))
    n_obs = int(((dataset.EVID == 0) & (dataset.MDV == 0)).sum())
    source = str(data) if data is not None else "simulated typical patient"
    typer.echo(f"wrote {output}/{FILES['problem']} and its tables: {therapy} in {disease}, {n_obs} observations "
               f"of {dataset.ID.nunique()} ID(s) from {source}; check with: petablint {output}/{FILES['problem']}")


@export_app.command("nonmem")
def nonmem(
    therapy: str = typer.Option(..., "--therapy", help="CAR-T product (mb-cart19, kyv-101, tisa-cel) or 'untreated'"),
    output: Path = typer.Option(..., "-o", "--output", help="CSV file to write"),
    disease: str = typer.Option("sle", "--disease", help="healthy | sle | ms | b-all | lbcl"),
    n: str = typer.Option("20", "--n", help="virtual patients"),
    seed: str = typer.Option("1", "--seed", help="random seed of the cohort"),
    days: str = typer.Option("365", "--days", help="days after infusion to observe"),
    dose: str | None = typer.Option(None, "--dose", help="e.g. '1e6 cells/kg' or '1e8 cells'"),
    lymphodepletion: str | None = typer.Option(None, "--lymphodepletion", help="regimen name"),
    regimen: str | None = typer.Option(None, "--regimen", help="antibody regimen (antibody therapies)"),
    vary: str | None = typer.Option(None, "--vary", help="only these parameters differ between patients "
                                    "(comma-separated; default: all with variability in the parameter table)"),
    residual_sd: str | None = typer.Option(None, "--residual-sd", help="log-normal residual error SD added to "
                                           "every observation (default: none, the model's values)"),
    blq: bool = typer.Option(False, "--blq", help="flag observations below each assay's limit as BLQ "
                             "(needs --residual-sd)"),
) -> None:
    """Simulated virtual cohort as a NONMEM-style CSV (and FILE.define.txt describing its columns and codes)."""
    from cartsim.exporters.nonmem import OBSERVATION_TYPES, add_residual_error, define_text, simulate_dataset, to_csv
    from cartsim.fit.cohort import varying_only
    from cartsim.model import build_model
    from cartsim.population import sample
    from cartsim.scenario import Scenario

    try:
        scenario = Scenario.make(therapy, disease, days, dose, lymphodepletion, regimen)
        size, rng = _whole("--n", n, 1), _whole("--seed", seed, 0)
        check_output_file(output)
        model = build_model()
        population = sample(model, scenario.disease, size, rng, course=scenario.course)
        if vary is not None:
            names = [v.strip() for v in vary.split(",") if v.strip()]
            if not names:
                raise CartsimInputError("--vary", "is empty", "comma-separated parameter names")
            population = varying_only(model, population, scenario, names)
        if blq and residual_sd is None:
            raise CartsimInputError("--blq", "needs --residual-sd (values below a limit come from noise)")
        sd = None
        if residual_sd is not None:
            try:
                sd = float(residual_sd)
            except ValueError:
                raise CartsimInputError("--residual-sd", f"must be a number, got {residual_sd!r}",
                                        "a number >= 0") from None
            if not (np.isfinite(sd) and sd >= 0):
                raise CartsimInputError("--residual-sd", f"must be a number >= 0, got {residual_sd!r}",
                                        "a number >= 0")
        dataset = simulate_dataset(model, scenario, population)       # checked everything first: now the work
        if sd is not None:
            dataset = add_residual_error(dataset, sd, {t.dvid: t.additive_sd for t in OBSERVATION_TYPES}
                                         if blq else None, seed=rng)
        title = (f"SIMULATED virtual cohort (not observed data): {therapy} in {disease}, n={size}, seed={rng}, "
                 f"{scenario.days:g} days")
        define = define_text(model, scenario, dataset, title)
    except (CartsimInputError, ExportError) as err:
        fail(err)
    define_path = output.with_suffix(".define.txt")
    try:
        write_text_atomic(define_path, define)
        write_text_atomic(output, to_csv(dataset))
    except OSError as err:
        fail(CartsimInputError("--output", f"cannot write {str(output)!r} ({err.strerror})"))
    typer.echo(f"wrote {output} ({len(dataset)} records of {size} simulated patients: {therapy} in {disease}) "
               f"and {define_path}")
