"""One therapy in one disease, simulated for the web page: bands over time, dose events and endpoints.

An arm is a one-arm trial run through the same code as ``cartsim trial`` (configuration, cohort, chunk,
summary), so the page reports exactly what a trial would. Every arm uses arm index 0, so two arms with
the same disease, size and seed are the same virtual patients under two therapies.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import get_args

import numpy as np
import pandas as pd

from cartsim.disease import diseases
from cartsim.endpoint_dictionary import DETECTION, limits_of
from cartsim.engine import DoseRecord
from cartsim.model import Model, build_model
from cartsim.scenario import THERAPIES_UNTREATED
from cartsim.therapy import antibodies, products
from cartsim.therapy.antibodies import drug_class
from cartsim.trial import cohort
from cartsim.trial.chunks import Chunk, bands, simulate_chunk
from cartsim.trial.config import MsCourse, TrialConfig
from cartsim.trial.plan import coarse_times
from cartsim.trial.summary import summarize
from cartsim.validate import targets
from cartsim.web.schemas import DoseOut

CANCER_BY_TARGET = {"CD19": "lbcl"}     # the cancer a CAR-T product's target is compared in
SAFETY_DAYS = 90.0       # horizon of the lymphoma reference: CRS and ICANS occur in the first weeks
SAFETY_PATIENTS = 100    # at most this many patients in the lymphoma reference
STATS = ("p05", "median", "p95")

# Output times after the end of each dose (days): an infusion's peak is at its end, a subcutaneous dose's
# some days later; weekly sampling alone would miss both.
AFTER_DOSE_DAYS = (0.0, 1 / 24, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 10.0, 14.0)
RELAPSE_CUM = "relapse_cum"   # the model's expected cumulative relapses (MS disease activity)
YEAR = 365.25

_SOLVER_LOCK = threading.Lock()    # one simulation at a time: the compiled solver already uses every core


@dataclass(frozen=True)
class Panel:
    column: str
    title: str
    unit: str
    log: bool
    references: tuple[dict, ...] = ()      # reference lines: {value, label, detection}, from the endpoint dictionary

    @property
    def detection_limit(self) -> float | None:
        """The assay's detection limit on this panel's axis (values below it are not measured), if it has one."""
        return next((r["value"] for r in self.references if r.get("detection")), None)


# Known panels, in page order; a panel shows only when the model has its column.
PANEL_TITLES: dict[str, tuple[str, bool]] = {
    "b_blood_per_uL": ("B cells in blood", True),
    "car_blood_per_uL": ("CAR-T cells in blood", True),
    "igg": ("Total IgG in serum", False),
    "mab_conc": ("Anti-CD20 antibody in serum", False),
    "fcrnb_conc": ("FcRn blocker (efgartigimod) in serum", False),
    "c5i_conc": ("Complement C5 inhibitor (ravulizumab, eculizumab) in serum", False),
    "autoantibody_level": ("Autoantibody, share of the untreated level", False),
    "attack_cum": ("NMOSD attacks expected since day 0 (per patient)", False),
    "mg_adl": ("MG-ADL score: myasthenia symptoms in daily life, 0 none to 24 worst", False),
    "cns_plasma_cells": ("Plasma cells in the CNS (relative to baseline)", False),
}
AUTOANTIBODY = "autoantibody_level"   # drawn for diseases known by a measured autoantibody (AQP4-IgG, anti-AChR)
CNS_WORDS, PLASMA_WORDS = {"cns", "csf", "intrathecal"}, {"plasma", "pc"}   # a CNS plasma-cell column has one of each


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
    doses: tuple[DoseOut, ...]                          # what was given, one entry per day and kind
    endpoints: dict[str, dict]                          # name -> summary.json's entry
    patients: pd.DataFrame                              # endpoints of the patients that did not fail
    ms_course: str | None = None                        # MS course of every patient (None: the disease default)
    expected_relapse_rate: float | None = None          # the model's mean relapse intensity, per patient-year


@dataclass(frozen=True)
class Axis:
    """A value axis that contains its data: ``lo <= every value <= hi``, ticks within [lo, hi]."""
    lo: float
    hi: float
    ticks: tuple[float, ...]
    log: bool


def _nice_step(raw: float) -> float:
    mag = 10.0 ** math.floor(math.log10(raw))
    return next(f * mag for f in (1.0, 2.0, 2.5, 5.0, 10.0) if f * mag >= raw * (1 - 1e-12))


def axis(values: list[float | None] | np.ndarray, log: bool) -> Axis:
    """The value axis of a panel: from 0 (linear) or a power of ten (log) up to a tick at or above the largest
    value, so that nothing drawn is clipped. On a log axis values below ``hi * 1e-6`` are drawn at the floor."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    pos = v[v > 0]
    top = float(pos.max()) if pos.size else 1.0
    if not log:
        step = _nice_step(top * 1.02 / 4)
        hi = step * math.ceil(top / step - 1e-9)
        while hi < top:
            hi += step
        ticks = tuple(round(k * step, 12) for k in range(int(round(hi / step)) + 1))
        return Axis(0.0, ticks[-1], ticks, False)
    k_hi = math.ceil(math.log10(top))
    while 10.0 ** k_hi < top:
        k_hi += 1
    floor = max(float(pos.min()) if pos.size else top / 1e3, top * 1e-6)
    k_lo = min(math.floor(math.log10(floor)), k_hi - 1)
    ticks = tuple(10.0 ** k for k in range(k_lo, k_hi + 1))
    if len(ticks) > 7:
        ticks = ticks[::-1][::2][::-1]      # every other power of ten, keeping the top one
    return Axis(10.0 ** k_lo, 10.0 ** k_hi, ticks, True)


def panel_axis(arms: list[Arm], panel: Panel) -> Axis:
    """One axis for ``panel`` over all ``arms`` (medians and both percentiles). Under a detection limit nothing is
    drawn but the shaded range 'below detection limit', so an axis that reaches below the limit ends about a
    decade under it."""
    values = [v for a in arms if panel.column in a.bands for s in STATS for v in a.bands[panel.column][s]]
    limit = panel.detection_limit
    if limit is not None:
        values = [v if v is None or v >= limit else limit / 4 for v in values]
    return axis(values, panel.log)


def panels(model: Model | None = None) -> list[Panel]:
    """The trajectory panels the model can fill: the known ones, then any CNS plasma-cell column."""
    model = model or build_model()
    meta = {s.name: (s.unit, s.description) for s in model.states}
    meta |= {o.name: (o.unit, o.description) for o in model.observables}
    out = [Panel(c, title, meta[c][0], log, tuple({"value": x.value, "label": x.text,
                                                   "detection": x.meaning == DETECTION} for x in limits_of(c)))
           for c, (title, log) in PANEL_TITLES.items() if c in meta]
    out += [Panel(c, desc[:1].upper() + desc[1:], unit, True) for c, (unit, desc) in meta.items()
            if c not in PANEL_TITLES and c not in model.state_names and is_cns(c)]
    return out


def is_cns(column: str) -> bool:
    """Whether ``column`` is a CNS plasma-cell column (it names the CNS and plasma cells)."""
    words = set(column.split("_"))
    return bool(CNS_WORDS & words and PLASMA_WORDS & words)


def drawn(panel: Panel, arms: list[Arm]) -> bool:
    """Whether any arm has a value above 0 in ``panel`` (a drug level no arm has would be an empty panel); the
    autoantibody only in a disease known by one (in MS the model's autoantibody is no measured quantity), and the
    CNS plasma cells only in a disease of the CNS."""
    if panel.column == AUTOANTIBODY and not all(diseases()[a.disease].names_autoantibody for a in arms):
        return False
    if is_cns(panel.column) and not all(diseases()[a.disease].cns for a in arms):
        return False           # CNS plasma cells only in a disease of the brain and spinal cord (MS, NMOSD)
    return any(v is not None and v > 0 for a in arms if panel.column in a.bands
               for v in a.bands[panel.column]["p95"])


def drug_level(column: str) -> bool:
    """Whether ``column`` is the serum level of a drug given by a regimen (the drugs' data name it)."""
    return column in {a.level for a in antibodies().values() if a.level}


def shown_for(panel: Panel, arm: Arm, arms: list[Arm]) -> bool:
    """Whether ``arm`` draws ``panel`` on a page that shows ``arms``: a panel that one of them fills (``drawn``),
    but a drug's level only for an arm given that drug (for the others it would be a line along zero)."""
    return panel.column in arm.bands and drawn(panel, arms) and (not drug_level(panel.column) or drawn(panel, [arm]))


def panel_title(panel: Panel, arms: list[Arm]) -> str:
    """The panel's title for the ``arms`` shown together: the antibody drugs' class (anti-CD20, anti-CD19) and the
    disease's autoantibody by name."""
    if panel.column == "mab_conc":
        text = drug_class(panel.column, (antibodies().get(a.therapy) for a in arms))
        if text:
            return f"{text[:1].upper()}{text[1:]} in serum"
    if panel.column == AUTOANTIBODY:
        return f"{diseases()[arms[0].disease].autoantibody}, share of the untreated level"
    return panel.title


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
    return antibodies()[therapy].description if therapy in antibodies() else therapy


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


def dose_events(cfg: TrialConfig, model: Model) -> tuple[DoseOut, ...]:
    """The first patient's dose records (as the scenario compiles them for the engine), one entry per day and
    kind: a CAR-T infusion doses three states, lymphodepletion two drugs (the other patients differ only in
    amounts)."""
    _, doses = cfg.scenario(0).patient_inputs(model, cohort.draw(cfg, model, 0, 0, 1))
    groups: dict[tuple[float, str], list[DoseRecord]] = {}
    for r in doses.records(0, model.state_names):
        if r.time <= cfg.trial.horizon_days:
            groups.setdefault((r.time, r.kind), []).append(r)
    units = {s.name: s.unit for s in model.states}
    out = []
    for (day, kind), records in sorted(groups.items()):
        mg = [r.amount for r in records if units[r.state] == "mg"]
        out.append(DoseOut(day=day, kind=kind, label=" + ".join(dict.fromkeys(r.label for r in records)),
                           duration_days=max(r.duration for r in records), amount_mg=sum(mg) if mg else None))
    return tuple(out)


def output_times(cfg: TrialConfig, doses: tuple[DoseOut, ...], days: float) -> tuple[float, ...]:
    """Daily to day 28, weekly after (``coarse_times``), plus the end of every dose and days just after it,
    so that the peak after each dose is drawn."""
    base = np.asarray(coarse_times(cfg.scenario(0).start, days))
    ends = [d.day + d.duration_days for d in doses if d.kind != "lymphodepletion"]
    extra = np.array([e + a for e in ends for a in AFTER_DOSE_DAYS] + [d.day for d in doses], dtype=float)
    extra = extra[(extra >= base[0]) & (extra <= days)]
    return tuple(float(t) for t in np.unique(np.concatenate([base, extra])))


def _expected_relapse_rate(res, ok: pd.Series, days: float) -> float | None:
    """Mean over the patients that did not fail of the model's expected relapses from day 0, per patient-year:
    the rate without the chance of the Poisson draws."""
    if res.trajectories is None or RELAPSE_CUM not in res.trajectories or days <= 0:
        return None
    t = res.trajectories[res.trajectories["patient"].isin(ok)]
    cum = t.pivot(index="patient", columns="day", values=RELAPSE_CUM)
    day0 = cum.columns[cum.columns >= 0][0]
    rate = (cum[cum.columns[-1]] - cum[day0]) / ((cum.columns[-1] - day0) / YEAR)
    return float(rate.mean()) if rate.notna().any() else None


def _values(x: pd.Series) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in x.to_numpy(float)]


@lru_cache(maxsize=64)
def simulate_arm(disease: str, therapy: str, n: int, days: float, seed: int, ms_course: str | None = None) -> Arm:
    """``n`` virtual patients of ``disease`` given ``therapy`` for ``days`` (cached: arms are immutable)."""
    model = build_model()
    cfg = config(disease, therapy, n, days, seed, ms_course)
    columns = tuple(p.column for p in panels(model))
    extra = (RELAPSE_CUM,) if RELAPSE_CUM in {*model.state_names, *(o.name for o in model.observables)} else ()
    doses = dose_events(cfg, model)
    times = output_times(cfg, doses, days)
    with _SOLVER_LOCK:
        res = simulate_chunk(cfg, Chunk(0, 0, 0, n), times, columns + extra)
    b = bands(res, columns).set_index("day").reindex(times)
    ep_names = res.roles["endpoints"]
    summary = summarize(cfg, res.patients, ep_names)["arms"][0]
    ok = res.patients[res.patients["status"] == "ok"]
    expected = _expected_relapse_rate(res, ok["patient"], days) if extra and disease == "ms" else None
    return Arm(disease, therapy, kind_of(therapy), describe(therapy), n, summary["n_failed"], times,
               {c: {s: _values(b[f"{c}_{s}"]) for s in STATS} for c in columns}, doses,
               summary["endpoints"], ok[ep_names].reset_index(drop=True), ms_course, expected)


def lymphoma_reference(therapy: str, n: int, seed: int) -> Arm | None:
    """The same CD19 CAR-T product, dose and lymphodepletion in large B-cell lymphoma (at most
    :data:`SAFETY_PATIENTS` patients); None for other therapies."""
    cancer = CANCER_BY_TARGET.get(products()[therapy].target) if kind_of(therapy) == "car-t" else None
    return simulate_arm(cancer, therapy, min(n, SAFETY_PATIENTS), SAFETY_DAYS, seed) if cancer else None


@lru_cache(maxsize=1)
def _published() -> tuple[dict, ...]:
    """The ``safety`` entries of the published targets, each with its target's source (read once)."""
    return tuple(t["safety"] | {"source": t["source"]} for t in targets().values() if "safety" in t)


CANCERS = ("b-all", "lbcl")


def published_safety(therapy: str, disease: str) -> list[dict]:
    """What trials of ``therapy`` in ``disease`` reported about CRS and ICANS (the ``safety`` entries of the
    published targets), for the page to show beside the simulated numbers. Where none was in ``disease``, an
    autoimmune disease, the trials of the same therapy in other autoimmune diseases (each row names its patients),
    so a simulated arm is never shown without the nearest published experience of its product."""
    rows = [s for s in _published() if s["therapy"] == therapy]
    same = [s for s in rows if s["disease"] == disease]
    near = same or ([] if disease in CANCERS else [s for s in rows if s["disease"] not in CANCERS])
    return [{k: v for k, v in s.items() if k not in ("therapy", "disease")} for s in near]
