"""CAR-T products and lymphodepletion regimens, loaded from package data."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources

from cartsim.errors import CartsimInputError, choose
from cartsim.model.parameters import ParameterTable
from cartsim.therapy.dose import CellDose

TARGETS = ("CD19", "BCMA")
COSTIMULATION = ("4-1BB", "CD28")


def _data(name: str) -> dict:
    return tomllib.loads(resources.files("cartsim.data").joinpath(name).read_text())


@dataclass(frozen=True)
class LymphodepletionRegimen:
    name: str
    description: str
    fludarabine: tuple[tuple[float, float], ...]       # (day, mg/m2)
    cyclophosphamide: tuple[tuple[float, float], ...]
    source: str


@dataclass(frozen=True)
class CarTProduct:
    name: str
    description: str
    target: str
    costimulation: str
    dose: CellDose
    lymphodepletion: str
    transduction_efficiency: float
    cd4_cd8_ratio: float
    memory_share: float
    vein_to_vein_days: float
    source: str
    manufacturing_source: str
    infusions: int = 1                  # infusions of ``dose`` each (Descartes-08: 6)
    infusion_interval_days: float = 7.0
    # half-life of CAR expression when the CAR is encoded by mRNA (None: a viral vector puts it in the genome);
    # an mRNA CAR is not passed on when cells divide, so the product does not expand
    mrna_expression_halflife_days: float | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise CartsimInputError("target", f"unknown target {self.target!r}", ", ".join(TARGETS))
        if self.costimulation not in COSTIMULATION:
            raise CartsimInputError("costimulation", f"unknown {self.costimulation!r}", ", ".join(COSTIMULATION))
        for name in ("transduction_efficiency", "memory_share"):
            v = getattr(self, name)
            if not 0 < v <= 1 if name == "transduction_efficiency" else not 0 <= v <= 1:
                raise CartsimInputError(name, f"must be a fraction, got {v}", "0-1")
        if self.cd4_cd8_ratio <= 0:
            raise CartsimInputError("cd4_cd8_ratio", f"must be positive, got {self.cd4_cd8_ratio}")
        if not isinstance(self.infusions, int) or self.infusions < 1:
            raise CartsimInputError("infusions", f"must be a whole number >= 1, got {self.infusions!r}", "1, 2, ...")
        if not self.infusion_interval_days > 0:
            raise CartsimInputError("infusion_interval_days", f"must be > 0, got {self.infusion_interval_days}")
        if self.mrna_expression_halflife_days is not None and not self.mrna_expression_halflife_days > 0:
            raise CartsimInputError("mrna_expression_halflife_days",
                                    f"must be > 0 days, got {self.mrna_expression_halflife_days}")

    @property
    def infusion_days(self) -> tuple[float, ...]:
        """Days of the CAR-T infusions (the first on day 0)."""
        return tuple(k * self.infusion_interval_days for k in range(self.infusions))

    @property
    def schedule(self) -> str:
        """The dose and how often it is given, as people read it ('1e6 cells/kg', or '52.5e6 cells/kg weekly x6')."""
        if self.infusions == 1:
            return str(self.dose)
        every = "weekly" if self.infusion_interval_days == 7 else f"every {self.infusion_interval_days:g} days"
        return f"{self.dose} {every} x{self.infusions}"

    def with_dose(self, dose: str | CellDose | None) -> "CarTProduct":
        return self if dose is None else replace(self, dose=CellDose.parse(dose, field="--dose"))

    def with_lymphodepletion(self, regimen: str | None) -> "CarTProduct":
        if regimen is None:
            return self
        choose("--lymphodepletion", regimen, lymphodepletion_regimens())
        return replace(self, lymphodepletion=regimen)

    def model_parameters(self, table: ParameterTable) -> dict[str, float]:
        """The model parameters the product sets: its target, its construct and make-up. What they change
        (potency, expansion, memory formation, loss of an mRNA CAR, the cells an infusion brings) is written in the
        model (``cartsim.model.cart``); ``table`` gives the default CAR-expression half-life."""
        mrna = self.mrna_expression_halflife_days
        return {
            "target_cd19": float(self.target == "CD19"),
            "target_bcma": float(self.target == "BCMA"),
            "car_cd4_cd8_ratio": float(self.cd4_cd8_ratio),
            "car_costim_cd28": float(self.costimulation == "CD28"),
            "car_mrna": float(mrna is not None),
            "car_expression_halflife": float(mrna) if mrna else table.value("car_expression_halflife"),
            "car_memory_share": float(self.memory_share),
            "car_transduction": float(self.transduction_efficiency),
        }


@lru_cache(maxsize=1)
def lymphodepletion_regimens() -> dict[str, LymphodepletionRegimen]:
    return {name: LymphodepletionRegimen(name, e["description"],
                                         tuple(map(tuple, e["fludarabine"])),
                                         tuple(map(tuple, e["cyclophosphamide"])), e["source"])
            for name, e in _data("lymphodepletion.toml").items()}


@lru_cache(maxsize=1)
def products() -> dict[str, CarTProduct]:
    out = {}
    for name, e in _data("products.toml").items():
        out[name] = CarTProduct(name=name, dose=CellDose.parse(e.pop("dose")), **e)
    return out
