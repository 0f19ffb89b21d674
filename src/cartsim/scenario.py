"""A scenario: a disease and a therapy, turned into the engine's inputs for a population."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cartsim.disease import Disease, diseases
from cartsim.engine import Doses, Solution, Trigger, solve
from cartsim.errors import CartsimInputError, choose
from cartsim.model import Model, build_model
from cartsim.population import Population
from cartsim.therapy import CarTProduct, lymphodepletion_regimens, products

RESCUE = (Trigger("il6_signal", "crs_il6_grade2", "toci_central", "toci_dose_mg"),)

THERAPIES_UNTREATED = "untreated"


def therapy_names() -> list[str]:
    return [*products(), THERAPIES_UNTREATED]


@dataclass(frozen=True)
class Scenario:
    disease: Disease
    product: CarTProduct | None     # None: untreated
    days: float

    @staticmethod
    def make(therapy: str, disease: str = "sle", days: float = 365, dose: str | None = None,
             lymphodepletion: str | None = None) -> "Scenario":
        dis = choose("--disease", disease, diseases())
        if therapy == THERAPIES_UNTREATED:
            if dose is not None or lymphodepletion is not None:
                raise CartsimInputError("--therapy", "'untreated' takes no --dose or --lymphodepletion")
            product = None
        else:
            product = choose("--therapy", therapy, {**products(), THERAPIES_UNTREATED: None})
            product = product.with_dose(dose).with_lymphodepletion(lymphodepletion)
        try:
            days = float(days)
        except (TypeError, ValueError):
            raise CartsimInputError("--days", f"must be a number, got {days!r}", "a whole number of days >= 1")
        if not np.isfinite(days) or days < 1:
            raise CartsimInputError("--days", f"must be at least 1, got {days:g}", "a whole number of days >= 1")
        return Scenario(dis, product, days)

    @property
    def start(self) -> float:
        """First simulated day: the first lymphodepletion dose, or day 0."""
        if self.product is None:
            return 0.0
        reg = lymphodepletion_regimens()[self.product.lymphodepletion]
        days = [d for d, _ in (*reg.fludarabine, *reg.cyclophosphamide)]
        return float(min(days, default=0.0))

    def output_times(self, fine_until: float = 60.0, fine_step: float = 0.1) -> np.ndarray:
        """Fine times around infusion (toxicity peaks are short), then daily."""
        fine = np.arange(self.start, min(fine_until, self.days), fine_step)
        daily = np.arange(np.ceil(min(fine_until, self.days)), np.floor(self.days) + 1)
        return np.unique(np.round(np.concatenate([fine, daily, [self.days]]), 10))

    def patient_inputs(self, model: Model, population: Population) -> tuple[Population, Doses]:
        """Product-set parameters and the dose events of every patient."""
        n = len(population)
        if self.product is None:
            return population, Doses.empty(n)
        population = population.with_parameters(self.product.model_parameters(model.table))
        weight = population.column("weight_kg")
        blood_ul = weight * model.table.value("blood_volume_per_kg")
        reg = lymphodepletion_regimens()[self.product.lymphodepletion]
        events: list[tuple[float, str, np.ndarray]] = []
        events += [(d, "flu", np.full(n, mg)) for d, mg in reg.fludarabine]
        events += [(d, "cy", np.full(n, mg)) for d, mg in reg.cyclophosphamide]
        cells = [self.product.infused_cells(w) for w in weight]
        for state in ("car_eff", "car_mem", "t_endo"):
            events.append((0.0, state, np.array([c[state] for c in cells]) / blood_ul))
        doses = Doses(
            time=np.tile([e[0] for e in events], (n, 1)).astype(float),
            state=np.tile([model.state_index(e[1]) for e in events], (n, 1)).astype(np.int64),
            amount=np.stack([e[2] for e in events], axis=1),
            duration=np.zeros((n, len(events))),
        )
        return population, doses

    def run(self, population: Population, columns: tuple[str, ...] | None = None,
            times: np.ndarray | None = None, model: Model | None = None, **solver) -> Solution:
        model = model or build_model()
        population, doses = self.patient_inputs(model, population)
        times = self.output_times() if times is None else times
        return solve(model, population.params, times, columns, doses, RESCUE, t0=self.start, **solver)
