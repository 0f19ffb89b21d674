"""Virtual patients: covariates and inter-individual variability.

Each patient draws from its own random stream, seeded by (seed, arm,
patient index), so a patient's numbers do not depend on how a population is
split into chunks or spread over workers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from cartsim.disease import CourseMix, Courses, Disease, single_course
from cartsim.model.ir import Model

# streams of a patient: 0 (implicit) covariates and variability, 1 age, 2 EDSS, 3 events, 4 disease course
EVENT_STREAM, COURSE_STREAM, INFUSION_STREAM = 3, 4, 5


@dataclass(frozen=True)
class Population:
    """Covariates (one row per patient) and free model parameters (same rows).

    ``seed`` and ``arm`` with a patient's number (covariate ``patient``) key the patient's random
    streams, including the one of its clinical events (:func:`event_rng`). ``seeds``, when given,
    holds each row's own seed instead of ``seed`` (several trial replicates laid end to end).
    ``factors``, when given, maps parameter names to one multiplier per row: a set of the parameters'
    uncertainty, applied after the therapy has set its values (:meth:`cartsim.scenario.Scenario.patient_inputs`)."""

    covariates: pd.DataFrame
    params: np.ndarray
    parameter_names: tuple[str, ...]
    seed: int = 0
    arm: int = 0
    seeds: np.ndarray | None = None
    factors: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.params.shape[0]

    def with_parameters(self, values: dict[str, float | np.ndarray]) -> "Population":
        params = self.params.copy()
        for name, v in values.items():
            params[:, self.parameter_names.index(name)] = v
        return replace(self, params=params)

    def with_covariates(self, covariates: pd.DataFrame) -> "Population":
        return replace(self, covariates=covariates)

    def with_factors(self, factors: dict[str, np.ndarray] | None) -> "Population":
        return replace(self, factors=factors)

    def scaled(self) -> "Population":
        """The population with its ``factors`` applied to its parameter values (and none left to apply)."""
        if not self.factors:
            return self
        scaled = self.with_parameters({n: self.column(n) * np.asarray(f, dtype=float)
                                       for n, f in self.factors.items()})
        return replace(scaled, factors=None)

    def event_rng(self, k: int, stream: int = EVENT_STREAM) -> np.random.Generator:
        """The random stream of patient row ``k``'s clinical events (relapses, MRI counts, progression), or with
        ``stream = INFUSION_STREAM`` of its infusion-related reactions."""
        seed = self.seed if self.seeds is None else int(self.seeds[k])
        return np.random.default_rng([seed, self.arm, int(self.covariates["patient"].iat[k]), stream])

    def column(self, name: str) -> np.ndarray:
        return self.params[:, self.parameter_names.index(name)]


def iiv_parameters(model: Model) -> tuple[str, ...]:
    """Parameters with inter-individual variability, in a fixed order."""
    return tuple(n for n in model.parameters if model.table[n].iiv_omega > 0)


def _course_covariates(disease: Disease, courses: list[str | None]) -> dict[str, list]:
    """The course of each patient and its median EDSS (the baseline when a trial does not draw one)."""
    cs = [disease.course(c) for c in courses]
    out: dict[str, list] = {}
    if any(c is not None for c in cs):
        out["ms_course"] = [c.name if c is not None else None for c in cs]
    edss = [c.edss_median if c is not None else disease.edss_median for c in cs]
    if any(e is not None for e in edss):
        out["edss"] = edss
    return out


def patient_courses(course: Courses, n: int, seed: int, arm: int, first: int) -> list[str | None]:
    """Each patient's course: ``course`` itself, or for a mix a draw from the patient's course stream."""
    if not isinstance(course, CourseMix):
        return [course] * n
    return [course.pick(np.random.default_rng([seed, arm, first + k, COURSE_STREAM]).random()) for k in range(n)]


def typical(model: Model, disease: Disease, course: Courses = None) -> Population:
    """The typical patient: median covariates, no random effects (of a mix's main course)."""
    course = single_course(course)
    params = typical_values(model, disease, [course])
    cov = pd.DataFrame({"patient": [0], "sex": ["F"], "age": [disease.age_median],
                        "weight_kg": [model.table.value("weight_kg")]} | _course_covariates(disease, [course]))
    return Population(cov, params, model.parameters)


def typical_values(model: Model, disease: Disease, courses: list[str | None]) -> np.ndarray:
    """Typical values of the free parameters (columns) for patients with ``courses`` (rows)."""
    rows = {}
    for c in dict.fromkeys(courses):
        values = disease.values(c)
        rows[c] = np.array([values.get(p, model.table.value(p)) for p in model.parameters])
    return np.array([rows[c] for c in courses])


def sample(model: Model, disease: Disease, n: int, seed: int, arm: int = 0, first: int = 0,
           course: Courses = None) -> Population:
    """``n`` virtual patients numbered ``first..first+n-1`` of arm ``arm``, with the disease course ``course``
    (a :class:`CourseMix`: each patient's course drawn from its own stream)."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    t = model.table
    courses = patient_courses(course, n, seed, arm, first)
    iiv = iiv_parameters(model)
    omega = np.array([t[p].iiv_omega for p in iiv])
    cols = [model.parameters.index(p) for p in iiv]
    params = typical_values(model, disease, courses)
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
                       | _course_covariates(disease, courses))
    return Population(cov, params, model.parameters, seed, arm)
