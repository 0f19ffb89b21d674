"""Global sensitivity analysis: which uncertain parameters move a trial's endpoints (``cartsim sensitivity``).

Every assumed and calibrated parameter of the model (or the ones named) is given an uncertainty range
(:func:`ranges`): the parameter table's ``uncertainty`` entry where it has one, else a default of 2-fold
either side of the value (:data:`DEFAULT_FOLD`). A design is drawn on the unit hypercube by SALib (Sobol'
sequence with Saltelli's scheme for Sobol indices, or Morris trajectories for a screen) and mapped through each
range's quantile function. Each row of the design is one set of parameter values; it multiplies the values the
arm uses (disease, course, therapy), so a range is a range of the biology whoever sets the value.

All rows of a design are solved as one population through the arm's scenario, exactly as a trial's patients
(:func:`cartsim.trial.chunks.simulate_chunk` with a ``draw`` of the design's rows), chunked for memory and
spread over ``--workers`` processes by :func:`cartsim.trial.executors.executor`. With ``outcome = "typical"`` each
row is the typical patient of the trial's disease (its main course); with ``"mean"`` each row is a fixed
virtual cohort of :data:`COHORT` patients (the first patients of the arm) and the endpoint is their mean. The
same patients and the same random streams of clinical events are used for every row, so the rows differ only
in their parameter values. CAR-T arms are also run over the durability horizon (``[durability]
horizon_years``): how long the reset lasts (the day autoreactive B cells come back) and relapses over it.

Endpoint values per row: continuous, count and rate endpoints as they are; binary as a fraction (0 or 1 for
the typical patient); ordinal as the fraction with any grade and with grade 2 or higher; a time to event as
the event day, or the horizon when it did not happen (censored), and for a cohort the mean of those days (a
restricted mean over the horizon). A positive output that spans more than :data:`LOG_SPAN`-fold over the
rows (CAR-T peaks) is analysed on a log10 scale, so that a few rows do not decide its indices.
:func:`analyze` turns a design and its outputs into indices (SALib): first- and total-order Sobol indices
with bootstrap 95% intervals, or Morris mu*, mu and sigma with a bootstrap 95% interval for mu*.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sympy as sp
from scipy.stats import norm

from cartsim import endpoints as ep_names
from cartsim.errors import CartsimInputError
from cartsim.model import Model, build_model
from cartsim.model.ir import substitute_derived
from cartsim.model.parameters import ParameterTable
from cartsim.outputs.files import atomic_path
from cartsim.disease import single_course
from cartsim.population import Population, typical
from cartsim.trial import cohort as trial_cohort
from cartsim.trial.chunks import Chunk, simulate_chunk
from cartsim.trial.config import TrialConfig
from cartsim.trial.durability import YEAR, car_t_arms
from cartsim.endpoint_dictionary import CENSORING_COLUMNS
from cartsim.endpoint_dictionary import KINDS as ENDPOINT_KINDS
from cartsim.trial.summary import kind_of

METHODS = ("sobol", "morris")
OUTCOMES = ("typical", "mean")
DISTRIBUTIONS = ("lognormal", "loguniform", "uniform", "normal")
KINDS = ("assumed", "calibrated")            # the parameters analysed by default
DEFAULT_FOLD = 2.0                           # default range: value / 2 to value * 2 (2.5-97.5%, lognormal)
DEFAULT_SAMPLES = {"sobol": 64, "morris": 10}   # Sobol base samples N (a power of two); Morris trajectories r
MORRIS_LEVELS = 4
COHORT = 20                                  # patients per row with outcome "mean"
CHUNK_ROWS = 256                             # patients per compiled call
LOG_SPAN = 100.0                             # an output spanning more than this factor is analysed as log10
UNRELIABLE = 1.2                             # a Sobol index estimated above this says the samples are too few
MAX_MISSING = 0.1                            # an output with no value in more rows than this is not analysed
RESAMPLES = 200                              # bootstrap resamples of the intervals
EXPECTED_RATE = "expected_relapse_rate"      # relapses per patient-year from the model's intensity
RELAPSE_CUM = "relapse_cum"
DURABILITY_ENDPOINTS = ("autoreactive_return_day", "annualized_relapse_rate", EXPECTED_RATE)
JSON_FILE, TABLE_FILE, FIGURE_FILE = "sensitivity.json", "sensitivity.parquet", "sensitivity.png"
Z = float(norm.ppf(0.975))


# ---- ranges -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Range:
    """A parameter's uncertainty: ``low``/``high`` are the 2.5/97.5 percentiles (lognormal, normal) or the
    bounds (uniform, loguniform), in the parameter's unit, around ``reference`` (the value a factor of 1
    stands for). ``default``: the range is :func:`ranges`' default, not the parameter table's."""

    distribution: str
    low: float
    high: float
    reason: str = ""
    default: bool = False
    reference: float = 1.0

    @property
    def bounded(self) -> bool:
        return self.distribution in ("uniform", "loguniform")

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """The value at quantile ``u`` (in (0, 1); 0 and 1 only for a bounded distribution)."""
        u = np.asarray(u, dtype=float)
        lo, hi = self.low, self.high
        if self.distribution == "uniform":
            return lo + u * (hi - lo)
        if self.distribution == "loguniform":
            return np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
        if self.distribution == "normal":
            return (lo + hi) / 2 + (hi - lo) / (2 * Z) * norm.ppf(u)
        mu, sigma = (np.log(lo) + np.log(hi)) / 2, (np.log(hi) - np.log(lo)) / (2 * Z)
        return np.exp(mu + sigma * norm.ppf(u))

    def span(self, u: np.ndarray) -> np.ndarray:
        """``u`` in [0, 1] across low..high on the distribution's quantile scale (a Morris screen's levels):
        the bounds of a bounded distribution, the 2.5-97.5% range of the others."""
        u = np.asarray(u, dtype=float)
        return self.ppf(u if self.bounded else 0.025 + 0.95 * u)

    def describe(self) -> dict:
        return {"distribution": self.distribution, "low": self.low, "high": self.high, "reason": self.reason,
                "default": self.default}


def _is_fraction(unit: str, value: float) -> bool:
    return unit.strip() == "1" and 0.0 < value < 1.0


def default_range(value: float, unit: str) -> Range:
    """The default range: lognormal, 2-fold either side of ``value`` (low = value/2, high = value*2 as the
    2.5/97.5 percentiles); a fraction (unit 1, value in (0, 1)) uniform from value/2 to the lesser of 2*value
    and halfway to 1, so that it stays inside (0, 1)."""
    if _is_fraction(unit, value):
        return Range("uniform", value / DEFAULT_FOLD, min(value * DEFAULT_FOLD, (1 + value) / 2),
                     "default: a fraction from half its value to the lesser of twice it and halfway to 1",
                     True, value)
    lo, hi = sorted((value / DEFAULT_FOLD, value * DEFAULT_FOLD))
    return Range("lognormal", lo, hi, "default: 2-fold either side of the value (2.5-97.5%)", True, value)


def _field(entry: object, name: str) -> object:
    return entry.get(name) if isinstance(entry, Mapping) else getattr(entry, name, None)


def _table_range(name: str, entry: object, value: float) -> Range:
    """The parameter table's ``uncertainty`` entry (a dataclass or a table) as a :class:`Range`."""
    dist = str(_field(entry, "distribution") or "")
    try:
        lo, hi = float(_field(entry, "low")), float(_field(entry, "high"))   # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"parameter {name!r}: uncertainty needs numbers low and high") from None
    if dist not in DISTRIBUTIONS or not lo < hi or (dist in ("lognormal", "loguniform") and lo <= 0):
        raise ValueError(f"parameter {name!r}: uncertainty must be one of {DISTRIBUTIONS} with low < high "
                         f"(low > 0 on a log scale), got {dist!r} {lo:g}..{hi:g}")
    return Range(dist, lo, hi, str(_field(entry, "reason") or ""), False, value)


def ranges(table: ParameterTable, names: list[str] | tuple[str, ...],
           values: Mapping[str, float] | None = None,
           overrides: Mapping[str, Mapping] | None = None) -> dict[str, Range]:
    """The uncertainty range of each parameter of ``names``: the range of the value a disease, course or
    therapy of the trial sets (``overrides``: its provenance's ``uncertainty``) where it states one, else the
    table's ``uncertainty`` entry (``record.uncertainty``), else :func:`default_range` around the value the
    trial uses (``values``, e.g. the disease's; default the table value)."""
    out = {}
    for n in names:
        record = table[n]
        entry = getattr(record, "uncertainty", None)
        value = float(record.value) if record.value is not None else float("nan")
        if n in (overrides or {}) and (values or {}).get(n):
            out[n] = _table_range(n, overrides[n], float(values[n]))       # type: ignore[index]
        elif entry is not None and value != 0:
            out[n] = _table_range(n, entry, value)
        else:
            out[n] = default_range(float((values or {}).get(n, value)), record.unit)
    return out


# ---- designs and their analysis -------------------------------------------------------------------

@dataclass(frozen=True)
class Design:
    """Rows of parameter values: ``unit`` on the unit hypercube (what SALib samples and analyses), ``values``
    the parameters' values, ``factors`` their ratio to each range's reference."""

    method: str
    names: tuple[str, ...]
    ranges: dict[str, Range]
    samples: int             # Sobol base samples N, or Morris trajectories r
    seed: int
    unit: np.ndarray

    @property
    def problem(self) -> dict:
        return {"num_vars": len(self.names), "names": list(self.names), "bounds": [[0.0, 1.0]] * len(self.names)}

    @property
    def values(self) -> np.ndarray:
        cols = [(self.ranges[n].ppf if self.method == "sobol" else self.ranges[n].span)(self.unit[:, i])
                for i, n in enumerate(self.names)]
        return np.column_stack(cols) if cols else np.empty((len(self.unit), 0))

    @property
    def factors(self) -> np.ndarray:
        return self.values / np.array([self.ranges[n].reference for n in self.names])

    def __len__(self) -> int:
        return self.unit.shape[0]


def check_samples(method: str, samples: int) -> None:
    if method not in METHODS:
        raise CartsimInputError("--method", f"unknown method {method!r}", ", ".join(METHODS))
    if samples < 2:
        raise CartsimInputError("--samples", f"must be at least 2, got {samples}",
                                "a power of two >= 2 for sobol" if method == "sobol" else "an integer >= 2")
    if method == "sobol" and samples & (samples - 1):
        raise CartsimInputError("--samples", f"Sobol sampling needs a power of two, got {samples}",
                                "2, 4, 8, ..., e.g. 64 or 128")


def design(method: str, parameter_ranges: dict[str, Range], samples: int, seed: int) -> Design:
    """The design of ``method``: ``samples * (d + 2)`` rows for Sobol (first and total order, Saltelli's
    scheme on a scrambled Sobol' sequence) or ``samples * (d + 1)`` for a Morris screen (``samples``
    trajectories on :data:`MORRIS_LEVELS` levels), the same for the same seed."""
    from SALib.sample import morris as morris_sample
    from SALib.sample import sobol as sobol_sample

    check_samples(method, samples)
    names = tuple(parameter_ranges)
    d = Design(method, names, dict(parameter_ranges), samples, seed, np.empty((0, len(names))))
    if method == "sobol":
        unit = sobol_sample.sample(d.problem, samples, calc_second_order=False, scramble=True, seed=seed)
    else:
        unit = morris_sample.sample(d.problem, samples, num_levels=MORRIS_LEVELS, seed=seed)
    return Design(method, names, d.ranges, samples, seed, np.asarray(unit, dtype=float))


INDEX_COLUMNS = ["endpoint", "parameter", "index", "value", "ci_low", "ci_high"]


def analyze(d: Design, outputs: Mapping[str, np.ndarray], seed: int | None = None) -> pd.DataFrame:
    """Indices of every output (one value per design row) as a long table ``endpoint, parameter, index,
    value, ci_low, ci_high``: Sobol ``S1`` and ``ST``, or Morris ``mu_star`` (with its interval), ``mu`` and
    ``sigma``. Intervals are SALib's bootstrap 95% intervals (value +- half-width)."""
    from SALib.analyze import morris as morris_analyze
    from SALib.analyze import sobol as sobol_analyze

    seed = d.seed if seed is None else seed
    rows = []
    for name, y in outputs.items():
        y = np.asarray(y, dtype=float)
        if d.method == "sobol":
            r = sobol_analyze.analyze(d.problem, y, calc_second_order=False, num_resamples=RESAMPLES,
                                      conf_level=0.95, seed=seed)
            stats = {"S1": (r["S1"], r["S1_conf"]), "ST": (r["ST"], r["ST_conf"])}
        else:
            r = morris_analyze.analyze(d.problem, d.unit, y, num_resamples=RESAMPLES, conf_level=0.95,
                                       num_levels=MORRIS_LEVELS, seed=seed)
            nan = np.full(len(d.names), np.nan)
            stats = {"mu_star": (r["mu_star"], r["mu_star_conf"]), "mu": (r["mu"], nan),
                     "sigma": (r["sigma"], nan)}
        for index, (value, half) in stats.items():
            value, half = np.asarray(value, dtype=float), np.asarray(half, dtype=float)
            for i, p in enumerate(d.names):
                rows.append((name, p, index, value[i], value[i] - half[i], value[i] + half[i]))
    return pd.DataFrame(rows, columns=INDEX_COLUMNS)


def ranking_index(method: str) -> str:
    """The index that ranks parameters: total order (Sobol) or mu* (Morris)."""
    return "ST" if method == "sobol" else "mu_star"


# ---- the trial's endpoints for each design row ----------------------------------------------------

@dataclass(frozen=True)
class DesignChunk(Chunk):
    """Consecutive rows of a design for one arm: ``factors`` (design rows x parameters) multiply the arm's
    values of ``names``; each row is the typical patient (``cohort`` 0) or ``cohort`` patients."""

    names: tuple[str, ...] = ()
    factors: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    cohort: int = 0
    long: bool = False       # over the durability horizon


def _long(cfg: TrialConfig) -> TrialConfig:
    """``cfg`` running over its durability horizon."""
    days = cfg.durability.horizon_years * YEAR
    return cfg.model_copy(update={"trial": cfg.trial.model_copy(update={"horizon_days": days})})


def _base(cfg: TrialConfig, model: Model, arm: int, cohort: int) -> Population:
    """The patients of one design row: the typical patient of the trial's disease (its main course) with
    the trial's seed and this arm's event streams, or the first ``cohort`` patients of the arm."""
    if cohort:
        return trial_cohort.draw(cfg, model, arm, 0, cohort)
    scenario = cfg.scenario(arm)
    pop = typical(model, scenario.disease, scenario.course)
    return Population(pop.covariates, pop.params, pop.parameter_names, cfg.trial.seed, arm)


def draw_rows(cfg: TrialConfig, model: Model, arm: int, first: int, n: int, *, names: tuple[str, ...],
              factors: np.ndarray, cohort: int) -> Population:
    """The patients of ``factors``' design rows laid end to end (``max(cohort, 1)`` per row), every row the
    same patients with the same random streams, their values of ``names`` multiplied by the row's factors."""
    base = _base(cfg, model, arm, cohort)
    m = len(base)
    rows = factors.shape[0]
    assert rows * m == n, (rows, m, n)
    cov = pd.concat([base.covariates] * rows, ignore_index=True)
    pop = Population(cov, np.tile(base.params, (rows, 1)), base.parameter_names, base.seed, base.arm)
    per_patient = {name: np.repeat(factors[:, i], m) for i, name in enumerate(names)}
    if hasattr(pop, "with_factors"):     # applied after the therapy sets its values (Scenario.patient_inputs)
        return pop.with_factors(per_patient)
    return pop.with_parameters({name: pop.column(name) * f for name, f in per_patient.items()})


def simulate_rows(cfg: TrialConfig, chunk: DesignChunk, solver: dict | None = None) -> pd.DataFrame:
    """The endpoints and status of every patient of a chunk of design rows (a picklable worker job)."""
    c = _long(cfg) if chunk.long else cfg
    draw = partial(draw_rows, names=chunk.names, factors=chunk.factors, cohort=chunk.cohort)
    horizon = c.trial.horizon_days
    res = simulate_chunk(c, chunk, traj_times=(0.0, horizon), traj_columns=(RELAPSE_CUM,), solver=solver,
                         draw=draw)
    out = res.patients[["status", *res.roles["endpoints"]]].copy()
    if "ms_course" in res.patients.columns:          # the model's relapse intensity, not one draw of its events
        assert res.trajectories is not None
        cum = res.trajectories[RELAPSE_CUM].to_numpy(float).reshape(chunk.n, 2)
        out[EXPECTED_RATE] = (cum[:, 1] - cum[:, 0]) / (horizon / YEAR)
    return out


def _outputs(df: pd.DataFrame, rows: int, m: int, long: bool) -> dict[str, np.ndarray]:
    """Each endpoint's value per design row (see the module's docstring) from the patients of all rows."""
    names = [c for c in df.columns if c != "status" and c not in CENSORING_COLUMNS]
    out: dict[str, np.ndarray] = {}
    for name in names:
        if long and name not in DURABILITY_ENDPOINTS:
            continue
        kind = kind_of(name)
        v = df[name].to_numpy(float, na_value=np.nan)
        parts = {"any": v >= 1, "grade2plus": v >= 2} if kind == "ordinal" else {"": v}
        for suffix, x in parts.items():
            x = np.where(np.isnan(v), np.nan, x.astype(float))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)     # a row without values: NaN
                per_row = np.nanmean(x.reshape(rows, m), axis=1)
            key = name + (f":{suffix}" if suffix else "") + (":durability" if long else "")
            out[key] = per_row
    return out


def statistic(kind: str, outcome: str) -> str:
    """What one design row's value of an endpoint of ``kind`` is."""
    who = "the typical patient's" if outcome == "typical" else f"the mean over {COHORT} patients of the"
    return {"time_to_event": f"{who} event day, or the horizon when it did not happen (censored)"
                             + ("" if outcome == "typical" else ": a restricted mean"),
            "binary": "0 or 1 (the typical patient)" if outcome == "typical" else f"fraction of {COHORT} patients",
            "ordinal": "grade reached (0 or 1)" if outcome == "typical" else f"fraction of {COHORT} patients",
            }.get(kind, f"{who} value")


def output_label(key: str, horizon_years: float) -> str:
    """The human name of an output key (``endpoint[:any|:grade2plus][:durability]``)."""
    parts = key.split(":")
    text = (ep_names.label(parts[0]) if parts[0] != EXPECTED_RATE else
            "Expected relapses per patient-year (the model's relapse rate, not counted events)")
    if "any" in parts:
        text += ", any grade"
    if "grade2plus" in parts:
        text += ", grade 2 or higher"
    if "durability" in parts:
        text += f", over {horizon_years:g} years"
    return text


# ---- a run --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SensitivityPlan:
    """A validated analysis; creating one writes nothing and simulates nothing."""

    config: TrialConfig
    design: Design
    arms: tuple[int, ...]
    outcome: str
    workers: int = 1
    chunk_rows: int = CHUNK_ROWS
    solver: dict = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)    # parameters left out by default, and why

    @property
    def cohort(self) -> int:
        return COHORT if self.outcome == "mean" else 0

    @property
    def durability_arms(self) -> tuple[int, ...]:
        return tuple(a for a in self.arms if a in car_t_arms(self.config))

    @property
    def patients(self) -> int:
        """Patients solved: every design row in every arm (and CAR-T arm over the durability horizon)."""
        return len(self.design) * max(self.cohort, 1) * (len(self.arms) + len(self.durability_arms))


def _values_used(cfg: TrialConfig, table: ParameterTable) -> dict[str, float]:
    """The typical values the trial's arms use (disease and course values, therapies'), first arm first."""
    out: dict[str, float] = {}
    for a in reversed(range(len(cfg.arm))):
        out |= cfg.scenario(a).parameter_values(table)
    return out


def _override_ranges(cfg: TrialConfig) -> dict[str, Mapping]:
    """The uncertainty entries of the values the trial's diseases, courses and antibodies set (first arm first,
    main course of a mix), by parameter."""
    out: dict[str, Mapping] = {}
    for a in reversed(range(len(cfg.arm))):
        sc = cfg.scenario(a)
        prov = dict(sc.disease.value_provenance(single_course(sc.course)))
        if sc.antibody is not None:
            prov |= sc.antibody.provenance
        out |= {k: v["uncertainty"] for k, v in prov.items() if isinstance(v, Mapping) and v.get("uncertainty")}
        for k in dict(sc.parameters):          # a value the arm sets itself has no stated range
            out.pop(k, None)
    return out


def _idle_parameters(model: Model, cfg: TrialConfig) -> frozenset[str]:
    """Parameters no arm's equations feel: those acting only through states no arm doses, such as a drug's own
    values when no arm gives the drug, or only through a parameter that is 0 in every arm, such as a disease's
    rates outside it (:meth:`Model.idle_parameters`); a state-triggered dose counts as a dose."""
    dosed: set[str] = set()
    felt: set[str] = set()
    nonzero: set[str] = set()
    for a in range(len(cfg.arm)):
        sc = cfg.scenario(a)
        values = sc.parameter_values(model.table)
        nonzero |= {n for n in model.parameters if values.get(n, model.table[n].value or 0.0) != 0}
        _, doses = sc.patient_inputs(model, typical(model, sc.disease, sc.course))
        dosed |= {model.state_names[i] for i in np.unique(doses.state)}
        for t in sc.triggers():
            dosed.add(t.state)
            felt |= {t.threshold} | {x.name for x in substitute_derived(model, sp.Symbol(t.amount)).free_symbols}
    return model.idle_parameters(dosed, set(model.parameters) - nonzero) - felt


def choose_parameters(model: Model, cfg: TrialConfig, names: list[str] | None) -> tuple[tuple[str, ...], dict]:
    """``names`` (checked: model parameters with a value), or every assumed and calibrated parameter the model
    uses, except covariates, those no arm's equations feel (a drug no arm gives), those at 0 in the trial (a range
    of factors cannot move them) and those the table
    says have no uncertainty (switches, reference levels, numerical guards, placeholders a disease sets, rules of
    a regimen: ``no_uncertainty``) unless the trial's disease or therapy sets them with a stated range."""
    table = model.table
    used = _values_used(cfg, table)
    if names is not None:
        unknown = [n for n in names if n not in model.parameters]
        if unknown:
            raise CartsimInputError("--parameters", f"unknown parameter(s) {', '.join(unknown)}",
                                    "names of the model's parameters listed by `cartsim parameters`")
        zero = [n for n in names if used.get(n, table[n].value or 0.0) == 0]
        if zero:
            raise CartsimInputError("--parameters", f"{', '.join(zero)} is 0 in this trial: a range of "
                                    "multiples cannot move it", "parameters with a non-zero value")
        if not names:
            raise CartsimInputError("--parameters", "no parameter named", "comma-separated parameter names")
        return tuple(dict.fromkeys(names)), {}
    chosen, skipped = [], {}
    stated = _override_ranges(cfg)
    idle = _idle_parameters(model, cfg)
    for n in model.parameters:
        r = table[n]
        if r.kind not in KINDS:
            continue
        if r.component == "covariates":
            skipped[n] = "a patient covariate (varies between patients, not an uncertain constant)"
        elif used.get(n, r.value or 0.0) == 0:
            skipped[n] = "0 in this trial: a range of multiples cannot move it"
        elif r.no_uncertainty.strip() and n not in stated:
            skipped[n] = f"no uncertainty range in the parameter table: {r.no_uncertainty.strip()}"
        elif n in idle:
            skipped[n] = "no arm's equations feel it (it acts only through a drug or dose no arm gives)"
        else:
            chosen.append(n)
    return tuple(chosen), skipped


def prepare_sensitivity(cfg: TrialConfig, method: str = "morris", samples: int | None = None,
                        parameters: list[str] | None = None, arm: str | None = None, outcome: str = "typical",
                        workers: int = 1, chunk_rows: int = CHUNK_ROWS, solver: dict | None = None) -> SensitivityPlan:
    """Check every input and draw the design (simulates and writes nothing)."""
    if method not in METHODS:
        raise CartsimInputError("--method", f"unknown method {method!r}", ", ".join(METHODS))
    if outcome not in OUTCOMES:
        raise CartsimInputError("--outcome", f"unknown outcome {outcome!r}", ", ".join(OUTCOMES))
    if workers < 1:
        raise CartsimInputError("--workers", f"must be at least 1, got {workers}", "an integer >= 1")
    names = [a.name for a in cfg.arm]
    if arm is not None and arm not in names:
        raise CartsimInputError("--arm", f"unknown arm {arm!r}", ", ".join(repr(n) for n in names))
    samples = DEFAULT_SAMPLES[method] if samples is None else samples
    check_samples(method, samples)
    model = build_model()
    chosen, skipped = choose_parameters(model, cfg, parameters)
    try:
        rs = ranges(model.table, chosen, _values_used(cfg, model.table), _override_ranges(cfg))
    except ValueError as err:
        raise CartsimInputError("parameters.toml", str(err)) from None
    d = design(method, rs, samples, cfg.trial.seed)
    arms = tuple(range(len(cfg.arm))) if arm is None else (names.index(arm),)
    return SensitivityPlan(cfg, d, arms, outcome, workers, chunk_rows, dict(solver or {}), skipped)


@dataclass(frozen=True)
class SensitivityResult:
    document: dict
    indices: pd.DataFrame        # arm, endpoint, parameter, index, value, ci_low, ci_high
    seconds: float


def _chunks(p: SensitivityPlan) -> list[DesignChunk]:
    m = max(p.cohort, 1)
    rows = len(p.design)
    factors = p.design.factors
    passes = [(a, False) for a in p.arms] + [(a, True) for a in p.durability_arms]
    per = max(1, p.chunk_rows // m)
    if p.workers > 1:                               # enough chunks to keep every worker busy
        per = max(1, min(per, math.ceil(rows * len(passes) / (4 * p.workers))))
    out = []
    for a, long in passes:
        for index, first in enumerate(range(0, rows, per)):
            k = min(per, rows - first)
            out.append(DesignChunk(a, index, first * m, k * m, p.design.names, factors[first:first + k],
                                   p.cohort, long))
    return out


def evaluate(p: SensitivityPlan, progress: Callable[[int], None] | None = None) -> dict[tuple[int, str], np.ndarray]:
    """Each (arm, output)'s value per design row, from the design solved chunk by chunk."""
    from cartsim.trial.executors import executor

    chunks = _chunks(p)
    results: dict[tuple[int, bool, int], pd.DataFrame] = {}
    with executor(partial(simulate_rows, p.config, solver=p.solver), p.workers) as run:
        for chunk, df in run(chunks):
            results[(chunk.arm, chunk.long, chunk.first)] = df
            if progress is not None:
                progress(chunk.n)
    out: dict[tuple[int, str], np.ndarray] = {}
    m = max(p.cohort, 1)
    for a, long in [(a, False) for a in p.arms] + [(a, True) for a in p.durability_arms]:
        parts = [df for (arm, lg, _), df in sorted(results.items()) if arm == a and lg == long]
        df = pd.concat(parts, ignore_index=True)
        for key, v in _outputs(df, len(p.design), m, long).items():
            out[(a, key)] = v
    return out


def _screen(values: np.ndarray) -> str | None:
    """Why an output is not analysed (None when it is)."""
    missing = ~np.isfinite(values)
    if missing.all():
        return "not applicable in this arm"
    if missing.mean() > MAX_MISSING:
        return f"no value in {int(missing.sum())} of {values.size} rows (failed or not applicable)"
    ok = values[~missing]
    if np.ptp(ok) <= 1e-12 * max(1.0, float(np.abs(ok).max())):
        return "does not vary over the ranges"
    return None


def run_sensitivity(p: SensitivityPlan, out: Path | None = None,
                    evaluate_outputs: Callable[[SensitivityPlan, Callable[[int], None] | None],
                                               dict[tuple[int, str], np.ndarray]] = evaluate) -> SensitivityResult:
    """Solve the design (``evaluate_outputs``), analyse every output and, with ``out``, write
    ``sensitivity.json``, ``sensitivity.parquet`` and ``sensitivity.png`` there (atomically)."""
    from cartsim.trial.executors import progress

    started = time.perf_counter()
    with progress() as bar:
        task = bar.add_task(f"sensitivity ({p.design.method})", total=p.patients)
        outputs = evaluate_outputs(p, lambda n: bar.advance(task, n))
    cfg = p.config
    horizon_years = cfg.durability.horizon_years
    described, tables = [], []
    for (a, key), values in outputs.items():
        why = _screen(values)
        base = key.split(":")[0]
        long = key.endswith(":durability")
        entry = {"arm": cfg.arm[a].name, "output": key, "endpoint": base, "label": output_label(key, horizon_years),
                 "kind": ENDPOINT_KINDS.get(base, "rate" if base == EXPECTED_RATE else "continuous"),
                 "horizon_days": horizon_years * YEAR if long else cfg.trial.horizon_days,
                 "n_rows": int(values.size), "n_missing": int((~np.isfinite(values)).sum()),
                 "analysed": why is None}
        entry["statistic"] = statistic(entry["kind"], p.outcome)
        if why is not None:
            described.append(entry | {"reason": why})
            continue
        y = np.where(np.isfinite(values), values, np.nanmean(values))   # the few rows without a value: the mean
        finite = values[np.isfinite(values)]
        entry |= {"mean": float(finite.mean()), "sd": float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
                  "min": float(finite.min()), "max": float(finite.max()), "scale": "linear"}
        if y.min() > 0 and y.max() / y.min() > LOG_SPAN:     # spans orders of magnitude: a few rows would decide
            y = np.log10(y)
            entry |= {"scale": "log10", "label": entry["label"] + " (log10)"}
        if entry["kind"] == "time_to_event":       # no event by the horizon: the value is the horizon
            entry["n_censored_rows"] = int(np.isclose(finite, entry["horizon_days"]).sum())
        t = analyze(p.design, {key: y}).assign(arm=cfg.arm[a].name)
        tables.append(t)
        entry["indices"] = _nested(t, ranking_index(p.design.method))
        if p.design.method == "sobol" and (t["value"] > UNRELIABLE).any():
            entry["warning"] = ("indices beyond 1: too few samples for this output; raise --samples")
        described.append(entry)
    indices = (pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["arm", *INDEX_COLUMNS]))
    indices = indices[["arm", *INDEX_COLUMNS]]
    seconds = time.perf_counter() - started
    doc = document(p, described, seconds)
    if out is not None:
        write_outputs(out, doc, indices)
    return SensitivityResult(doc, indices, seconds)


def _nested(t: pd.DataFrame, rank: str) -> dict:
    """``{parameter: {index: {value, ci95}}}``, parameters by decreasing ``rank`` index."""
    order = t[t["index"] == rank].sort_values("value", ascending=False)["parameter"]
    out = {}
    for par in order:
        rows = t[t["parameter"] == par]
        out[par] = {r.index: {"value": _num(r.value), "ci95": None if not np.isfinite(r.ci_low)
                              else [_num(r.ci_low), _num(r.ci_high)]} for r in rows.itertuples()}
    return out


def _num(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def document(p: SensitivityPlan, endpoints: list[dict], seconds: float) -> dict:
    """Everything ``sensitivity.json`` holds."""
    d = p.design
    table = build_model().table
    used = _values_used(p.config, table)
    params = [{"name": n, "kind": table[n].kind, "unit": table[n].unit, "component": table[n].component,
               "table_value": table[n].value, "trial_value": used.get(n, table[n].value),
               "range": d.ranges[n].describe(), "default_range": d.ranges[n].default} for n in d.names]
    method = ({"name": "sobol", "sampling": "SALib.sample.sobol (scrambled Sobol' sequence, Saltelli's scheme, "
               "first and total order)", "analysis": "SALib.analyze.sobol, bootstrap 95% intervals",
               "indices": {"S1": "first order: the share of the endpoint's variance due to the parameter alone",
                           "ST": "total order: the share due to the parameter with all its interactions"},
               "base_samples": d.samples}
              if d.method == "sobol" else
              {"name": "morris", "sampling": f"SALib.sample.morris ({d.samples} trajectories, {MORRIS_LEVELS} "
               "levels across each range: its bounds, or its 2.5-97.5% range)",
               "analysis": "SALib.analyze.morris, bootstrap 95% interval of mu*",
               "indices": {"mu_star": "mean absolute elementary effect: the endpoint's change, in its own unit, "
                                      "per move across the parameter's whole range (low to high)",
                           "mu": "mean elementary effect (its sign: the direction)",
                           "sigma": "spread of the elementary effects (interactions or non-linearity)"},
               "trajectories": d.samples})
    return {"config": p.config.trial.name, "method": method, "outcome": p.outcome,
            "outcome_meaning": ("each row: the typical patient of the trial's disease (its main course)"
                                if p.outcome == "typical" else
                                f"each row: the mean over the same {COHORT} patients of the arm"),
            "seed": d.seed, "n_rows": len(d), "patients_solved": p.patients, "wall_seconds": round(seconds, 2),
            "arms": [p.config.arm[a].name for a in p.arms],
            "durability_horizon_years": p.config.durability.horizon_years,
            "ranges_note": (f"a parameter without an uncertainty entry in the parameter table gets the default: "
                            f"lognormal, {DEFAULT_FOLD:g}-fold either side of its value as 2.5-97.5%, a fraction "
                            "uniform from half its value to the lesser of twice it and halfway to 1 "
                            "(default_range: true). Each row multiplies the value the arm uses (disease, course, "
                            "therapy) by the row's value over the range's reference."),
            "parameters": params, "default_ranges": [n for n in d.names if d.ranges[n].default],
            "skipped_parameters": p.skipped, "endpoints": endpoints}


def write_outputs(out: Path, doc: dict, indices: pd.DataFrame) -> None:
    """``sensitivity.json``, ``sensitivity.parquet`` and ``sensitivity.png`` in ``out``, each atomically."""
    from cartsim.outputs.sensitivity import plot_sensitivity

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / TABLE_FILE) as tmp:
        pq.write_table(pa.Table.from_pandas(indices.reset_index(drop=True), preserve_index=False), tmp)
    plot_sensitivity(doc, out / FIGURE_FILE)
    with atomic_path(out / JSON_FILE) as tmp:
        tmp.write_text(json.dumps(doc, indent=2, allow_nan=False))


def top(doc: dict, output: str, arm: str | None = None, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` parameters that move ``output`` most (by total order or mu*), with that index."""
    rank = ranking_index(doc["method"]["name"])
    for e in doc["endpoints"]:
        if e["output"] == output and (arm is None or e["arm"] == arm) and e["analysed"]:
            return [(par, v[rank]["value"]) for par, v in list(e["indices"].items())[:k]]
    return []


def report_lines(doc: dict) -> list[str]:
    """What ``cartsim sensitivity`` prints: the run, then the top parameters of the headline endpoints."""
    rank = ranking_index(doc["method"]["name"])
    n_default = len(doc["default_ranges"])
    lines = [f"[bold]{doc['config']}[/]: {doc['method']['name']}, {len(doc['parameters'])} parameters "
             f"({n_default} with the default 2-fold range), {doc['n_rows']} parameter sets, "
             f"{doc['patients_solved']} patients solved in {doc['wall_seconds']:.1f} s"]
    wanted = ("autoreactive_return_day:durability", EXPECTED_RATE + ":durability", "bcell_reappearance_day",
              "cart_peak_per_uL", "edss_change")
    for e in doc["endpoints"]:
        if e["analysed"] and e["output"] in wanted:
            best = ", ".join(f"{p} {v[rank]['value']:.2g}" for p, v in list(e["indices"].items())[:5])
            lines.append(f"  {e['arm']}: {e['label']}: {best}" + (f" [{e['warning']}]" if "warning" in e else ""))
    return lines
