"""One therapy in one disease, simulated for the web page: bands over time, dose events and endpoints.

An arm is a one-arm trial run through the same code as ``cartsim trial`` (configuration, cohort, chunk,
summary), so the page reports exactly what a trial would. Every arm uses arm index 0, so two arms with
the same disease, size and seed are the same virtual patients under two therapies.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import get_args

import numpy as np
import pandas as pd

from cartsim.model import Model, State, build_model
from cartsim.scenario import THERAPIES_UNTREATED
from cartsim.therapy import products
from cartsim.trial import cohort
from cartsim.trial.chunks import Chunk, bands, simulate_chunk
from cartsim.trial.config import MsCourse, TrialConfig
from cartsim.trial.run import coarse_times
from cartsim.trial.summary import summarize

CANCER_BY_TARGET = {"CD19": "lbcl"}     # the cancer a CAR-T product's target is compared in
SAFETY_DAYS = 90.0       # horizon of the lymphoma reference: CRS and ICANS occur in the first weeks
SAFETY_PATIENTS = 100    # at most this many patients in the lymphoma reference
STATS = ("p05", "median", "p95")
DOSE_KINDS = {"lymphodepletion": "lymphodepletion", "car_t": "car-t", "t_cells": "car-t"}   # by model component
DRUGS = {"flu": "fludarabine", "cy": "cyclophosphamide"}    # dosed states named for the page

_SOLVER_LOCK = threading.Lock()    # one simulation at a time: the compiled solver already uses every core


@dataclass(frozen=True)
class Panel:
    column: str
    title: str
    unit: str
    log: bool


# Known panels, in page order; a panel shows only when the model has its column.
PANEL_TITLES: dict[str, tuple[str, bool]] = {
    "b_blood_per_uL": ("B cells in blood", True),
    "car_blood_per_uL": ("CAR-T cells in blood", True),
    "igg": ("Total IgG in serum", False),
    "mab_conc": ("Anti-CD20 antibody in serum", False),
    "cns_plasma_cells": ("Plasma cells in the CNS (relative to baseline)", False),
}
CNS_WORDS, PLASMA_WORDS = {"cns", "csf", "intrathecal"}, {"plasma", "pc"}   # a CNS plasma-cell column has one of each


@dataclass(frozen=True)
class DoseEvent:
    day: float
    kind: str              # lymphodepletion | car-t | dose
    label: str
    duration_days: float
    amount_mg: float | None


@dataclass(frozen=True)
class Arm:
    disease: str
    therapy: str
    kind: str              # car-t | drug | untreated
    description: str
    n: int
    n_failed: int
    days: tuple[float, ...]
    bands: dict[str, dict[str, list[float | None]]]    # column -> p05 / median / p95 -> values at days
    doses: tuple[DoseEvent, ...]
    endpoints: dict[str, dict]                          # name -> summary.json's entry
    patients: pd.DataFrame                              # endpoints of the patients that did not fail


def panels(model: Model | None = None) -> list[Panel]:
    """The trajectory panels the model can fill: the known ones, then any CNS plasma-cell column."""
    model = model or build_model()
    meta = {s.name: (s.unit, s.description) for s in model.states}
    meta |= {o.name: (o.unit, o.description) for o in model.observables}
    out = [Panel(c, title, meta[c][0], log) for c, (title, log) in PANEL_TITLES.items() if c in meta]
    out += [Panel(c, desc[:1].upper() + desc[1:], unit, True) for c, (unit, desc) in meta.items()
            if c not in PANEL_TITLES and c not in model.state_names
            and CNS_WORDS & set(c.split("_")) and PLASMA_WORDS & set(c.split("_"))]
    return out


def kind_of(therapy: str) -> str:
    if therapy in products():
        return "car-t"
    return "untreated" if therapy == THERAPIES_UNTREATED else "drug"


def describe(therapy: str) -> str:
    """One line on a therapy, from the data files that define it."""
    if therapy in products():
        return products()[therapy].description
    if therapy == THERAPIES_UNTREATED:
        return "no treatment: the disease's untreated course"
    try:
        from cartsim.therapy.antibodies import antibodies
        return antibodies()[therapy].description
    except (ImportError, KeyError, AttributeError):
        return therapy


def config(disease: str, therapy: str, n: int, days: float, seed: int, ms_course: str | None = None) -> TrialConfig:
    return TrialConfig.model_validate({
        "trial": {"name": f"{therapy} in {disease}", "seed": seed, "horizon_days": days},
        "population": {"n": n, "disease": disease} | ({"ms_course": ms_course} if ms_course else {}),
        "arm": [{"name": therapy, "therapy": therapy}]})


@lru_cache(maxsize=1)
def ms_course_matters() -> bool:
    """Whether the MS course changes any model parameter of a virtual patient (else it is only recorded)."""
    model = build_model()
    courses = get_args(MsCourse)
    params = [cohort.draw(config("ms", THERAPIES_UNTREATED, 1, 30, 0, c), model, 0, 0, 1).params for c in courses]
    return any(not np.array_equal(params[0], p) for p in params[1:])


def dose_events(cfg: TrialConfig, model: Model) -> tuple[DoseEvent, ...]:
    """The first patient's dose events, one per day and kind (the other patients differ only in amounts)."""
    _, doses = cfg.scenario(0).patient_inputs(model, cohort.draw(cfg, model, 0, 0, 1))
    t, state, amount, duration = doses.time[0], doses.state[0], doses.amount[0], doses.duration[0]
    used = (amount > 0) & np.isfinite(t) & (t <= cfg.trial.horizon_days)
    groups: dict[tuple[float, str], list[int]] = {}
    for k in np.flatnonzero(used):
        kind = DOSE_KINDS.get(model.states[int(state[k])].component, "dose")
        groups.setdefault((float(t[k]), kind), []).append(int(k))
    return tuple(_event(cfg.arm[0].therapy, day, kind,
                        [(model.states[int(state[k])], float(amount[k]), float(duration[k])) for k in ks])
                 for (day, kind), ks in sorted(groups.items()))


def _event(therapy: str, day: float, kind: str, parts: list[tuple[State, float, float]]) -> DoseEvent:
    mg = sum(a for s, a, _ in parts if s.unit == "mg") if any(s.unit == "mg" for s, _, _ in parts) else None
    if kind == "car-t":
        dose = products()[therapy].dose if therapy in products() else None
        label = f"{therapy} infusion" + (f", {dose}" if dose else "")
    elif kind == "lymphodepletion":
        label = " + ".join(f"{DRUGS.get(s.name, s.name)} {a:g} {s.unit}" for s, a, _ in parts)
    else:
        label = f"{therapy} {mg:g} mg" if mg is not None else therapy
    return DoseEvent(day, kind, label, max(d for _, _, d in parts), mg)


def _values(x: pd.Series) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in x.to_numpy(float)]


@lru_cache(maxsize=64)
def simulate_arm(disease: str, therapy: str, n: int, days: float, seed: int, ms_course: str | None = None) -> Arm:
    """``n`` virtual patients of ``disease`` given ``therapy`` for ``days`` (cached: arms are immutable)."""
    model = build_model()
    cfg = config(disease, therapy, n, days, seed, ms_course)
    columns = tuple(p.column for p in panels(model))
    times = coarse_times(cfg.scenario(0).start, days)
    with _SOLVER_LOCK:
        res = simulate_chunk(cfg, Chunk(0, 0, 0, n), times, columns)
    b = bands(res, columns).set_index("day").reindex(times)
    ep_names = res.roles["endpoints"]
    summary = summarize(cfg, res.patients, ep_names)["arms"][0]
    ok = res.patients[res.patients["status"] == "ok"]
    return Arm(disease, therapy, kind_of(therapy), describe(therapy), n, summary["n_failed"], times,
               {c: {s: _values(b[f"{c}_{s}"]) for s in STATS} for c in columns}, dose_events(cfg, model),
               summary["endpoints"], ok[ep_names].reset_index(drop=True))


def lymphoma_reference(therapy: str, n: int, seed: int) -> Arm | None:
    """The same CD19 CAR-T product, dose and lymphodepletion in large B-cell lymphoma (at most
    :data:`SAFETY_PATIENTS` patients); None for other therapies."""
    cancer = CANCER_BY_TARGET.get(products()[therapy].target) if kind_of(therapy) == "car-t" else None
    return simulate_arm(cancer, therapy, min(n, SAFETY_PATIENTS), SAFETY_DAYS, seed) if cancer else None
