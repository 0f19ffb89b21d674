"""One chunk of one arm: a block of consecutive patients solved in one compiled call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from cartsim import endpoints
from cartsim.engine import Solution
from cartsim.model import Model, build_model
from cartsim.population import Population, iiv_parameters
from cartsim.simulate import TRAJECTORY_COLUMNS
from cartsim.trial import cohort
from cartsim.trial.config import TrialConfig

IIV_PREFIX = "iiv_"


@dataclass(frozen=True)
class Chunk:
    arm: int
    index: int
    first: int      # first patient number
    n: int

    @property
    def name(self) -> str:
        return f"arm{self.arm}_chunk{self.index}"

    @property
    def ids(self) -> np.ndarray:
        return np.arange(self.first, self.first + self.n)


@dataclass(frozen=True)
class ChunkResult:
    patients: pd.DataFrame              # one row per patient
    trajectories: pd.DataFrame | None   # long format: arm, patient, day, columns
    roles: dict[str, list[str]]         # column names of patients by role: covariates, parameters, endpoints
    bands: pd.DataFrame | None = None   # the report's trajectories (long format) of the arm's first patients


@dataclass(frozen=True)
class BandRequest:
    """Trajectories the report draws its bands from: ``columns`` at ``times`` for each arm's first ``n``
    patients (computed with the trial's own simulation of them, not a second one)."""

    times: dict[int, tuple[float, ...]]   # arm -> days
    columns: tuple[str, ...]
    n: int


def plan(cfg: TrialConfig, chunk_size: int) -> list[Chunk]:
    """All chunks of the trial, arm by arm."""
    return [Chunk(a, c, first, min(chunk_size, cfg.arm_n(a) - first))
            for a in range(len(cfg.arm)) for c, first in enumerate(range(0, cfg.arm_n(a), chunk_size))]


def _at(sol: Solution, times: np.ndarray, columns: tuple[str, ...]) -> Solution:
    """``sol`` restricted to ``times`` (a subset of its times) and ``columns``.

    The solver's output is dense interpolation between its own steps, so values at
    the standard times do not depend on which extra times were requested."""
    if columns == sol.columns and np.array_equal(times, sol.times):
        return sol     # nothing to select (no extra times or columns were asked for): no copy
    ti = np.searchsorted(sol.times, times)
    ci = [sol.columns.index(c) for c in columns]
    return replace(sol, times=sol.times[ti], columns=columns, values=sol.values[:, ti][:, :, ci])


Draw = Callable[[TrialConfig, Model, int, int, int], Population]   # (cfg, model, arm, first, n) -> patients


def _long(sol: Solution, chunk: Chunk, days: np.ndarray, columns: tuple[str, ...], n: int | None = None
          ) -> pd.DataFrame:
    """``columns`` at ``days`` of the chunk's patients (those numbered below ``n``), one row per patient and day."""
    keep = chunk.ids < n if n is not None else np.ones(chunk.n, dtype=bool)
    t = _at(sol, days, columns)
    ids = chunk.ids[keep]
    return pd.DataFrame({"arm": np.full(ids.size * days.size, chunk.arm), "patient": np.repeat(ids, days.size),
                         "day": np.tile(days, ids.size)}
                        | {c: t.values[keep][:, :, k].ravel() for k, c in enumerate(columns)})


def simulate_chunk(cfg: TrialConfig, chunk: Chunk, traj_times: tuple[float, ...] | None = None,
                   traj_columns: tuple[str, ...] = TRAJECTORY_COLUMNS, solver: dict | None = None,
                   draw: Draw | None = None, band: BandRequest | None = None) -> ChunkResult:
    """Patients, endpoints and (optionally) trajectories at ``traj_times`` of one chunk, and the report's band
    trajectories where the chunk holds some of the arm's first ``band.n`` patients.

    ``draw`` makes the chunk's patients (default: patients ``chunk.first..`` of the trial's cohort). Extra output
    times change no number: the solver's outputs are dense interpolation between its own steps."""
    model = build_model()
    scenario = cfg.scenario(chunk.arm)
    pop = (draw or cohort.draw)(cfg, model, chunk.arm, chunk.first, chunk.n)
    grid = scenario.output_times()
    extra = np.asarray(traj_times if traj_times is not None else (), dtype=float)
    banded = band is not None and chunk.first < band.n
    band_days = np.unique(np.asarray(band.times[chunk.arm], dtype=float)) + 0.0 if banded else np.empty(0)
    columns = tuple(dict.fromkeys(endpoints.COLUMNS + (traj_columns if extra.size else ())
                                  + (band.columns if banded else ())))
    sol = scenario.run(pop, columns=columns, times=np.union1d(np.union1d(grid, extra), band_days), model=model,
                       **(solver or {}))
    ep = endpoints.compute(_at(sol, grid, endpoints.COLUMNS), model.table, scenario.last_dose_day(), pop,
                           cfg.trial_mri_interval_days, scenario.infusion_reaction_risks())
    if "infusions_count" not in ep:
        retreated = np.isfinite(ep["retreatment_day"].to_numpy(float, na_value=np.nan)) & \
            ~ep["retreatment_censored"].to_numpy(bool, na_value=True)
        ep["infusions_count"] = pd.array(np.full(chunk.n, len(scenario.dosing())) + retreated, dtype="Int64")
        ep.loc[sol.status != 0, "infusions_count"] = pd.NA   # like every endpoint of a failed patient
    if not scenario.disease.cns:       # no CNS compartment to report outside a disease of the CNS
        ep = ep.drop(columns=list(endpoints.CNS_ENDPOINTS))
    iiv = iiv_parameters(model)
    keys = pd.DataFrame({"arm": np.full(chunk.n, chunk.arm), "arm_name": cfg.arm[chunk.arm].name,
                         "patient": chunk.ids})
    covariates = pop.covariates.drop(columns="patient").reset_index(drop=True)
    params = pd.DataFrame(pop.params[:, [pop.parameter_names.index(p) for p in iiv]],
                          columns=[IIV_PREFIX + p for p in iiv])
    status = pd.Series([sol.failures.get(i, "ok") for i in range(chunk.n)], name="status", dtype="str")
    patients = pd.concat([keys, covariates, params, ep.reset_index(drop=True), status], axis=1)
    # + 0.0: no "-0.0" days
    trajectories = _long(sol, chunk, np.unique(extra) + 0.0, traj_columns) if extra.size else None
    bands_long = _long(sol, chunk, band_days, band.columns, band.n) if banded and band is not None else None
    roles = {"covariates": list(covariates.columns), "parameters": list(params.columns),
             "endpoints": list(ep.columns)}
    return ChunkResult(patients, trajectories, roles, bands_long)


def bands(res: ChunkResult, columns: tuple[str, ...]) -> pd.DataFrame:
    """Median and 5th/95th percentiles of ``columns`` per day over the patients of ``res`` that did not fail."""
    assert res.trajectories is not None
    return quantile_bands(res.trajectories, res.patients.loc[res.patients["status"] == "ok", "patient"], columns)


def quantile_bands(trajectories: pd.DataFrame, ok: pd.Series, columns: tuple[str, ...]) -> pd.DataFrame:
    """Median and 5th/95th percentiles of ``columns`` per day over the patients in ``ok`` (long trajectories)."""
    g = trajectories[trajectories["patient"].isin(ok)].groupby("day")[list(columns)]
    qs = [g.quantile(q).add_suffix(f"_{label}") for q, label in ((0.05, "p05"), (0.5, "median"), (0.95, "p95"))]
    return pd.concat(qs, axis=1).reset_index()
