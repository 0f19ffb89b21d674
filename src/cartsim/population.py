"""Virtual patients: covariates and inter-individual variability.

Each patient draws from its own random stream, seeded by (seed, arm,
patient index), so a patient's numbers do not depend on how a population is
split into chunks or spread over workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cartsim.disease import Disease
from cartsim.model.ir import Model


@dataclass(frozen=True)
class Population:
    """Covariates (one row per patient) and free model parameters (same rows)."""

    covariates: pd.DataFrame
    params: np.ndarray
    parameter_names: tuple[str, ...]

    def __len__(self) -> int:
        return self.params.shape[0]

    def with_parameters(self, values: dict[str, float | np.ndarray]) -> "Population":
        params = self.params.copy()
        for name, v in values.items():
            params[:, self.parameter_names.index(name)] = v
        return Population(self.covariates, params, self.parameter_names)

    def column(self, name: str) -> np.ndarray:
        return self.params[:, self.parameter_names.index(name)]


def iiv_parameters(model: Model) -> tuple[str, ...]:
    """Parameters with inter-individual variability, in a fixed order."""
    return tuple(n for n in model.parameters if model.table[n].iiv_omega > 0)


def typical(model: Model, disease: Disease) -> Population:
    """The typical patient: median covariates, no random effects."""
    params = np.array([[disease.overrides.get(n, model.table.value(n)) for n in model.parameters]])
    cov = pd.DataFrame({"patient": [0], "sex": ["F"], "age": [disease.age_median],
                        "weight_kg": [model.table.value("weight_kg")]})
    return Population(cov, params, model.parameters)


def sample(model: Model, disease: Disease, n: int, seed: int, arm: int = 0, first: int = 0) -> Population:
    """``n`` virtual patients numbered ``first..first+n-1`` of arm ``arm``."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    t = model.table
    base = np.array([disease.overrides.get(p, t.value(p)) for p in model.parameters])
    iiv = iiv_parameters(model)
    omega = np.array([t[p].iiv_omega for p in iiv])
    cols = [model.parameters.index(p) for p in iiv]
    params = np.tile(base, (n, 1))
    sex, age, weight = [], np.empty(n), np.empty(n)
    for k in range(n):
        rng = np.random.default_rng([seed, arm, first + k])
        female = rng.random() < disease.female_share
        sex.append("F" if female else "M")
        age[k] = max(1.0, disease.age_median + t.value("age_sd") * rng.standard_normal())
        median_w = t.value("weight_median_female" if female else "weight_median_male")
        weight[k] = median_w * np.exp(t.value("weight_omega") * rng.standard_normal())
        params[k, cols] *= np.exp(omega * rng.standard_normal(len(iiv)))
    params[:, model.parameters.index("weight_kg")] = weight
    cov = pd.DataFrame({"patient": np.arange(first, first + n), "sex": sex, "age": age, "weight_kg": weight})
    return Population(cov, params, model.parameters)
