"""The fitted-parameter file (``fitted.toml``) that ``cartsim fit`` writes and ``simulate`` and ``trial`` read
with ``--parameters``.

    [fit]                      # where the values come from (read for the record, not applied)
    therapy = "ocrelizumab"
    disease = "ms"
    method = "foce-i"
    [parameters]               # typical values, applied as a scenario's parameter values
    mab_cl_inf = 0.181
    [iiv]                      # between-patient SD of log values (omega), as estimated

Patients keep their own random effects around the fitted typical values, as with any scenario value. A trial
also takes the fitted SDs of parameters that vary between patients in the parameter table (each patient keeps
its standard-normal draw, rescaled to the fitted SD); ``simulate`` shows the typical patient, whom SDs do not
change.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cartsim.errors import CartsimInputError

SECTIONS = ("fit", "parameters", "iiv")


@dataclass(frozen=True)
class Fitted:
    """Typical values from a fit, with the therapy they were fitted for."""

    parameters: dict[str, float]
    therapy: str | None = None
    iiv: dict[str, float] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def describe(self) -> str:
        """Where the values come from, for provenance tables."""
        what = ", ".join(f"{k} {v}" for k, v in self.meta.items() if k in ("method", "dataset", "patients"))
        return f"fitted by cartsim fit ({what}) for {self.therapy or 'any therapy'}"

    def for_therapy(self, therapy: str, therapy_set: set[str]) -> dict[str, float]:
        """The values an arm of ``therapy`` takes: all of them for the fitted therapy; for another therapy,
        not those it sets itself (``therapy_set``: a product's potency, an antibody's PK)."""
        if self.therapy is None or therapy == self.therapy:
            return dict(self.parameters)
        return {k: v for k, v in self.parameters.items() if k not in therapy_set}


def to_toml(fitted: Fitted) -> str:
    """The file's text (values written with full precision)."""
    def value(v):
        return repr(float(v)) if isinstance(v, float) else (f'"{v}"' if isinstance(v, str) else repr(v))

    lines = ["# cartsim fit: fitted typical values; use with `cartsim simulate/trial --parameters FILE`", "[fit]"]
    lines += [f"{k} = {value(v)}" for k, v in {"therapy": fitted.therapy, **fitted.meta}.items() if v is not None]
    lines += ["", "[parameters]"] + [f"{k} = {float(v)!r}" for k, v in fitted.parameters.items()]
    if fitted.iiv:
        lines += ["", "# between-patient SD of the log value (omega), as estimated; a trial applies it where the "
                  "parameter table gives the parameter variability",
                  "[iiv]"] + [f"{k} = {float(v)!r}" for k, v in fitted.iiv.items()]
    return "\n".join(lines) + "\n"


def load_fitted(path: Path | str, parameters: tuple[str, ...], field: str = "--parameters") -> Fitted:
    """Read and check a fitted-parameter file: known sections, known parameter names, finite numbers."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise CartsimInputError(field, f"cannot read {str(path)!r} ({err.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise CartsimInputError(field, f"{str(path)!r} is not valid TOML ({err})") from None
    unknown = [k for k in doc if k not in SECTIONS]
    if unknown:
        raise CartsimInputError(field, f"unknown section [{unknown[0]}] in {path.name}", ", ".join(SECTIONS))
    values = doc.get("parameters")
    if not isinstance(values, dict) or not values:
        raise CartsimInputError(field, f"{path.name} needs a [parameters] table with at least one value")
    for section in ("parameters", "iiv"):
        for name, v in doc.get(section, {}).items():
            if name not in parameters:
                raise CartsimInputError(field, f"[{section}] {name}: unknown parameter",
                                        "names listed by `cartsim parameters`")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise CartsimInputError(field, f"[{section}] {name} = {v!r}: must be a number > 0")
    meta = doc.get("fit", {})
    if not isinstance(meta, dict):
        raise CartsimInputError(field, "[fit] must be a table")
    therapy = meta.get("therapy")
    return Fitted({k: float(v) for k, v in values.items()}, therapy if isinstance(therapy, str) else None,
                  {k: float(v) for k, v in doc.get("iiv", {}).items()},
                  {k: v for k, v in meta.items() if k != "therapy"})


def arm_values(fitted: Fitted, scenario, table) -> dict[str, float]:
    """The fitted values a scenario takes (see :meth:`Fitted.for_therapy`)."""
    own: set[str] = set()
    if scenario.product is not None:
        own |= set(scenario.product.model_parameters(table))
    if scenario.antibody is not None:
        own |= set(scenario.antibody.model_parameters())
    return fitted.for_therapy(scenario.therapy, own)
