"""Parameter uncertainty in a trial's answers: the trial re-run over K sets of the uncertain parameters.

A trial's spread between patients (its 5-95% range) comes from inter-individual variability. What is not
known about the biology is another spread: K sets of the uncertain parameters (default: every assumed and
calibrated model parameter with an uncertainty range in the parameter table) drawn by Latin hypercube
sampling (``scipy.stats.qmc.LatinHypercube``, seeded by the trial seed) from the ranges' distributions.
A set moves each parameter's typical value; every patient keeps its random effect (its value is multiplied
by set value / table value) and its chance events, so all sets run the same virtual patients and differ
only in the biology.

The sets of an arm are laid end to end as one population (patient ``j`` is patient ``j % n`` of set
``j // n``) and solved in as few compiled calls as the chunk size allows, on the trial's workers or
cluster. Finished chunks are saved, so an interrupted run resumes. Each set's arm statistics are those of
``summary.json``; over the sets, their median and 2.5-97.5% range.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.stats import qmc

from cartsim.errors import CartsimInputError
from cartsim.model import Model, build_model
from cartsim.population import Population
from cartsim.trial import cohort
from cartsim.trial.chunks import Chunk, simulate_chunk
from cartsim.trial.config import TrialConfig
from cartsim.trial.summary import summarize_arm

SET_STREAM = 0x756E63           # "unc": keeps the sets' sampling apart from other uses of the trial seed
MAX_SETS = 1000
SETS_FILE = "parameter_sets.parquet"
TABLE_FILE = "uncertainty.parquet"
# the arm statistic of each endpoint kind that the sets are compared by (names as in summary.json)
STATISTICS: dict[str, tuple[str, ...]] = {
    "continuous": ("mean",), "count": ("mean",), "rate": ("value",), "binary": ("value",),
    "ordinal": ("fraction_any", "fraction_grade2plus"), "time_to_event": ("km_median", "event_share"),
}


@dataclass(frozen=True)
class ParameterSets:
    """K sets of the uncertain parameters: ``values[k, i]`` is parameter ``names[i]`` in set ``k``."""

    names: tuple[str, ...]
    values: np.ndarray
    table_values: np.ndarray      # each range's reference: the value the trial uses (a factor of 1)
    seed: int
    ranges: tuple[dict, ...] = ()   # each parameter's range as described to users

    @property
    def k(self) -> int:
        return self.values.shape[0]

    @property
    def factors(self) -> np.ndarray:
        """Each set's value over the table's (a patient's value is multiplied by it)."""
        return self.values / self.table_values

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.values, columns=list(self.names)).rename_axis("set").reset_index()

    def key(self) -> str:
        """A digest of the sets, naming their chunk folder (another K, seed or choice is another folder)."""
        return hashlib.sha256(self.values.tobytes() + ",".join(self.names).encode()).hexdigest()[:16]


def uncertain_parameters(cfg: TrialConfig, model: Model, names: list[str] | None = None) -> tuple[str, ...]:
    """The parameters whose uncertainty a run samples: ``names`` (checked), or every assumed and calibrated
    parameter the model uses (the global sensitivity analysis's choice: covariates and values of 0 left out)."""
    from cartsim.trial.sensitivity import choose_parameters

    try:
        return choose_parameters(model, cfg, names)[0]
    except CartsimInputError as err:     # the same check, under this option's name
        raise CartsimInputError("--uncertainty-parameters", str(err).split(": ", 1)[1].split(" (allowed: ")[0],
                                err.allowed) from None


def draw_sets(cfg: TrialConfig, model: Model, k: int, names: list[str] | None = None) -> ParameterSets:
    """``k`` Latin hypercube sets of the uncertain parameters, the same for the same trial seed. The ranges
    are the sensitivity analysis's (:func:`cartsim.trial.sensitivity.ranges`: the parameter table's
    ``uncertainty`` entry, else the stated default), around the values the trial's arms use."""
    from cartsim.trial.sensitivity import _override_ranges, _values_used, ranges

    if not 1 <= k <= MAX_SETS:
        raise CartsimInputError("--uncertainty", f"must be between 1 and {MAX_SETS} parameter sets, got {k}",
                                f"an integer from 1 to {MAX_SETS}")
    chosen = uncertain_parameters(cfg, model, names)
    if not chosen:
        raise CartsimInputError("--uncertainty", "no assumed or calibrated parameter to vary",
                                "--uncertainty-parameters with names of `cartsim parameters`")
    by_name = ranges(model.table, chosen, _values_used(cfg, model.table), _override_ranges(cfg))
    rng = np.random.default_rng([cfg.trial.seed, SET_STREAM])
    u = qmc.LatinHypercube(d=len(chosen), seed=rng).random(k)
    values = np.column_stack([by_name[n].ppf(u[:, i]) for i, n in enumerate(chosen)])
    references = np.array([by_name[n].reference for n in chosen])
    return ParameterSets(chosen, values, references, cfg.trial.seed,
                         tuple(by_name[n].describe() for n in chosen))


def draw_set_patients(cfg: TrialConfig, model: Model, arm: int, first: int, n: int, *, names: tuple[str, ...],
                      factors: np.ndarray) -> Population:
    """Patients ``first..first+n-1`` of the sets laid end to end: number ``j`` is the trial's patient
    ``j % n_arm`` under parameter set ``j // n_arm``."""
    size = cfg.arm_n(arm)
    parts: list[Population] = []
    j, end = first, first + n
    while j < end:
        k = j % size
        count = min(size - k, end - j)
        parts.append(cohort.draw(cfg, model, arm, k, count))
        j += count
    pop = Population(pd.concat([p.covariates for p in parts], ignore_index=True),
                     np.vstack([p.params for p in parts]), parts[0].parameter_names, cfg.trial.seed, arm)
    sets = np.arange(first, end) // size
    return pop.with_factors({name: factors[sets, i] for i, name in enumerate(names)})


def chunks(cfg: TrialConfig, k: int, chunk_size: int) -> list[Chunk]:
    """The chunks of all sets, arm by arm (``k * n_arm`` patients per arm)."""
    return [Chunk(a, c, first, min(chunk_size, k * cfg.arm_n(a) - first))
            for a in range(len(cfg.arm)) for c, first in enumerate(range(0, k * cfg.arm_n(a), chunk_size))]


def job(cfg: TrialConfig, sets: ParameterSets, solver: dict | None = None):
    """The picklable function of a chunk that workers run."""
    draw = partial(draw_set_patients, names=sets.names, factors=sets.factors)
    return partial(simulate_chunk, cfg, solver=solver, draw=draw)


def chunk_table(patients: pd.DataFrame, endpoints: list[str]) -> pa.Table:
    """What a chunk keeps of its patients: number, status and endpoints (covariates are the trial's)."""
    return pa.Table.from_pandas(patients[["arm", "patient", "status", *endpoints]], preserve_index=False)


def statistics(cfg: TrialConfig, sets: ParameterSets, arm_rows: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Long table (set, arm, endpoint, statistic, value): each set's arm statistics of every endpoint."""
    out = []
    for a, rows in arm_rows.items():
        size = cfg.arm_n(a)
        endpoints = [c for c in rows.columns if c not in ("arm", "patient", "status")]
        rows = rows.assign(set=rows["patient"] // size)
        for k, group in rows.groupby("set", sort=True):
            summary = summarize_arm(cfg, a, group.drop(columns="set"), endpoints)
            for name, e in summary["endpoints"].items():
                for stat, value in _headline(e).items():
                    out.append((int(k), cfg.arm[a].name, name, stat, value))
    return pd.DataFrame(out, columns=["set", "arm", "endpoint", "statistic", "value"]).astype({"value": float})


def _headline(e: dict) -> dict[str, float]:
    """The statistics of one endpoint's summary that the sets are compared by (NaN where undefined)."""
    if not e.get("applicable", True):
        return {}
    kind = e["kind"]
    out = {}
    for stat in STATISTICS[kind]:
        if stat == "event_share":
            total = e["n_events"] + e["n_censored"]
            value = e["n_events"] / total if total else None
        else:
            value = e.get(stat)
        out[stat] = np.nan if value is None else float(value)
    return out


def interval(table: pd.DataFrame) -> dict[tuple[str, str, str], dict]:
    """Per (arm, endpoint, statistic): median and 2.5-97.5% over the parameter sets, with how many sets
    have a value (a Kaplan-Meier median not reached in a set has none)."""
    out = {}
    for key, g in table.groupby(["arm", "endpoint", "statistic"], sort=False):
        v = g["value"].to_numpy(float)
        ok = v[np.isfinite(v)]
        q = np.quantile(ok, [0.5, 0.025, 0.975]) if ok.size else [np.nan] * 3
        out[key] = {"median": float(q[0]), "p025": float(q[1]), "p975": float(q[2]), "n_sets": int(ok.size),
                    "n_sets_undefined": int(v.size - ok.size)}
    return out


def add_to_summary(summary: dict, sets: ParameterSets, table: pd.DataFrame) -> dict:
    """``summary`` with each endpoint's ``parameter_uncertainty`` (its statistics over the sets) and a
    top-level ``parameter_uncertainty`` describing the sets."""
    by = interval(table)
    arms = []
    for arm in summary["arms"]:
        eps = {}
        for name, e in arm["endpoints"].items():
            stats = {s: by[(arm["name"], name, s)] for s in STATISTICS.get(e["kind"], ())
                     if (arm["name"], name, s) in by}
            eps[name] = e | ({"parameter_uncertainty": stats} if stats else {})
        arms.append(arm | {"endpoints": eps})
    model = build_model()
    described = [{"name": n, "value": float(v), "kind": model.table[n].kind, "range": r}
                 for n, v, r in zip(sets.names, sets.table_values, sets.ranges)]
    meta = {"sets": sets.k, "sampling": "Latin hypercube (scipy.stats.qmc.LatinHypercube), seeded by "
            "numpy default_rng([seed, 0x756E63])", "seed": sets.seed, "parameters": described,
            "default_ranges": sum(bool(p["range"].get("default")) for p in described),
            "meaning": "each endpoint's parameter_uncertainty: the arm statistic's median and 2.5-97.5% over the "
                       "parameter sets (the same patients in every set): what is not known about the biology, "
                       "beside the between-patient spread"}
    return summary | {"arms": arms, "parameter_uncertainty": meta}


def _describe(r) -> dict:
    fields = ("distribution", "low", "high", "reason")
    return {f: getattr(r, f, None) for f in fields}


def write_tables(out: Path, sets: ParameterSets, table: pd.DataFrame) -> None:
    """``parameter_sets.parquet`` (one row per set) and ``uncertainty.parquet`` (the long table), atomically."""
    from cartsim.outputs.files import atomic_path

    for name, df in ((SETS_FILE, sets.frame()), (TABLE_FILE, table)):
        with atomic_path(out / name) as tmp:
            pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp)


def manifest(sets: ParameterSets) -> str:
    return json.dumps({"names": list(sets.names), "sets": sets.k, "seed": sets.seed, "key": sets.key()}, indent=2)
