"""``cartsim export``: the model, a patient and a therapy in other tools' formats."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import NoReturn

import typer

from cartsim.errors import CartsimInputError
from cartsim.exporters import ExportError
from cartsim.outputs.files import write_text_atomic

export_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Export the model with a patient and a therapy's doses to other tools' formats.")


def _fail(err: Exception) -> NoReturn:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(2)


def check_output_file(path: Path, field: str = "--output") -> None:
    """``path`` must name a file (not a folder) in an existing, writable folder."""
    if path.is_dir():
        raise CartsimInputError(field, f"{str(path)!r} is a directory")
    folder = path.parent
    if not folder.is_dir():
        raise CartsimInputError(field, f"folder {str(folder)!r} does not exist")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise CartsimInputError(field, f"cannot write to {str(folder)!r} ({err.strerror})") from None


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
        _fail(err)
    try:
        write_text_atomic(output, text)
    except OSError as err:
        _fail(CartsimInputError("--output", f"cannot write {str(output)!r} ({err.strerror})"))
    typer.echo(f"wrote {output} ({therapy} in {disease}, typical patient; SBML time 0 is day "
               f"{scenario.start:g}, parameter {TIME_OFFSET})")
