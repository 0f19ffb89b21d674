"""Virtual patients: covariates and inter-individual variability.

Each patient draws from its own random stream, seeded by (seed, arm,
patient index), so a patient's numbers do not depend on how a population is
split into chunks or spread over workers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from cartsim.disease import Disease
from cartsim.model.ir import Model

EVENT_STREAM = 3   # streams of a patient: 0 (implicit) covariates and variability, 1 age, 2 EDSS, 3 events


@dataclass(frozen=True)
class Population:
    """Covariates (one row per patient) and free model parameters (same rows).

    ``seed`` and ``arm`` with a patient's number (covariate ``patient``) key the patient's random
    streams, including the one of its clinical events (:func:`event_rng`)."""

    covariates: pd.DataFrame
    params: np.ndarray
    parameter_names: tuple[str, ...]
    seed: int = 0
    arm: int = 0

    def __len__(self) -> int:
        return self.params.shape[0]

    def with_parameters(self, values: dict[str, float | np.ndarray]) -> "Population":
        params = self.params.copy()
        for name, v in values.items():
            params[:, self.parameter_names.index(name)] = v
        return replace(self, params=params)

    def with_covariates(self, covariates: pd.DataFrame) -> "Population":
        return replace(self, covariates=covariates)

    def event_rng(self, k: int) -> np.random.Generator:
        """The random stream of patient row ``k``'s clinical events (relapses, MRI counts, progression)."""
        return np.random.default_rng([self.seed, self.arm, int(self.covariates["patient"].iat[k]), EVENT_STREAM])

    def column(self, name: str) -> np.ndarray:
        return self.params[:, self.parameter_names.index(name)]


def iiv_parameters(model: Model) -> tuple[str, ...]:
    """Parameters with inter-individual variability, in a fixed order."""
    return tuple(n for n in model.parameters if model.table[n].iiv_omega > 0)


def _course_covariates(disease: Disease, course: str | None, n: int) -> dict[str, list]:
    c = disease.course(course)
    edss = c.edss_median if c is not None else disease.edss_median
    out: dict[str, list] = {}
    if c is not None:
        out["ms_course"] = [c.name] * n
    if edss is not None:
        out["edss"] = [edss] * n
    return out


def typical(model: Model, disease: Disease, course: str | None = None) -> Population:
    """The typical patient: median covariates, no random effects."""
    values = disease.values(course)
    params = np.array([[values.get(n, model.table.value(n)) for n in model.parameters]])
    cov = pd.DataFrame({"patient": [0], "sex": ["F"], "age": [disease.age_median],
                        "weight_kg": [model.table.value("weight_kg")]} | _course_covariates(disease, course, 1))
    return Population(cov, params, model.parameters)


def sample(model: Model, disease: Disease, n: int, seed: int, arm: int = 0, first: int = 0,
           course: str | None = None) -> Population:
    """``n`` virtual patients numbered ``first..first+n-1`` of arm ``arm`` (with the disease course ``course``)."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    t = model.table
    values = disease.values(course)
    base = np.array([values.get(p, t.value(p)) for p in model.parameters])
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
    cov = pd.DataFrame({"patient": np.arange(first, first + n), "sex": sex, "age": age, "weight_kg": weight}
                       | _course_covariates(disease, course, n))
    return Population(cov, params, model.parameters, seed, arm)
