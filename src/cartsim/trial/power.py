"""Power of a trial's primary comparison: the trial repeated with fresh virtual cohorts.

Replicate ``r`` draws the cohort of every arm from a seed derived from (trial
seed, r) (:func:`replicate_seed`), so its patients, and hence the result, do not
depend on workers or chunking. All replicates of an arm form one population,
``R x n`` patients numbered replicate by replicate, solved in as few compiled
calls as memory allows (:func:`default_chunk_size`). Each replicate's primary
endpoint is then compared between the two arms with the test for its kind
(:mod:`cartsim.trial.hypothesis`); the power is the fraction of replicates with
p < alpha, with its 95% Wilson interval.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from cartsim import __version__, endpoints
from cartsim.errors import CartsimInputError
from cartsim.model import Model, build_model
from cartsim.ms_outcomes import scan_days
from cartsim.outputs.files import atomic_path
from cartsim.population import Population
from cartsim import stats
from cartsim.trial import cohort, hypothesis, uncertainty
from cartsim.trial.chunks import Chunk, ChunkResult, simulate_chunk
from cartsim.trial.config import TrialConfig
from cartsim.trial.executors import executor, progress
from cartsim.endpoint_dictionary import KINDS, Kind
from cartsim.trial.summary import _finite, censoring

REPLICATE_STREAM = 0x706F776572     # "power": keeps replicate seeds apart from other uses of the trial seed
MEMORY_PER_CALL = 512 * 2**20       # bytes of solver output (and its copy) per compiled call
DAYS_PER_YEAR = 365.25
POWER_FILE = "power.json"
SEED_RULE = "numpy SeedSequence([seed, 0x706F776572, replicate]).generate_state(1, uint64)[0] >> 1"


def replicate_seed(seed: int, replicate: int) -> int:
    """The seed of replicate ``replicate``'s cohorts, derived from the trial seed (a 63-bit integer)."""
    state = np.random.SeedSequence([seed, REPLICATE_STREAM, replicate]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def draw_replicates(cfg: TrialConfig, model: Model, arm: int, first: int, n: int,
                    sets: uncertainty.ParameterSets | None = None) -> Population:
    """Patients ``first..first+n-1`` of arm ``arm`` with the replicates laid end to end: number ``j`` is
    patient ``j % n_arm`` of replicate ``j // n_arm``, drawn as in a trial with that replicate's seed (its
    clinical events too: each row keeps its replicate's seed and the arm). With ``sets``, replicate ``r``
    runs under parameter set ``r % K``."""
    size = cfg.arm_n(arm)
    parts: list[Population] = []
    j, end = first, first + n
    while j < end:
        r, k = divmod(j, size)
        count = min(size - k, end - j)
        parts.append(cohort.draw(cfg.with_seed(replicate_seed(cfg.trial.seed, r)), model, arm, k, count))
        j += count
    cov = pd.concat([p.covariates for p in parts], ignore_index=True)
    seeds = np.concatenate([np.full(len(p), p.seed, dtype=np.int64) for p in parts])   # each replicate's own
    pop = Population(cov, np.vstack([p.params for p in parts]), parts[0].parameter_names, cfg.trial.seed, arm,
                     seeds)
    if sets is None:
        return pop
    k = (np.arange(first, first + n) // size) % sets.k
    return pop.with_factors({name: sets.factors[k, i] for i, name in enumerate(sets.names)})


def rate_exposure(cfg: TrialConfig, endpoint: str) -> float:
    """Per-patient exposure that turns a rate endpoint into an event count.

    ``gd_lesions_per_scan``: the scheduled scans (every ``mri_interval_weeks`` up to the horizon);
    other rates (``annualized_relapse_rate``): patient-years of follow-up."""
    if endpoint == "gd_lesions_per_scan":
        return float(max(1, scan_days(cfg.trial.horizon_days, cfg.trial_mri_interval_days).size))
    return cfg.trial.horizon_days / DAYS_PER_YEAR


@dataclass(frozen=True)
class PowerPlan:
    """A validated power calculation; creating one simulates and writes nothing."""

    config: TrialConfig
    replicates: int
    arms: tuple[int, int]
    endpoint: str
    kind: Kind
    chunk_size: int
    workers: int = 1
    sets: uncertainty.ParameterSets | None = None   # replicate r runs under parameter set r % K (assurance)

    @property
    def patients(self) -> int:
        """Patients simulated: every replicate of both compared arms."""
        return self.replicates * sum(self.config.arm_n(a) for a in self.arms)

    @property
    def chunks(self) -> list[Chunk]:
        """The compared arms' replicates, laid end to end, in chunks of at most ``chunk_size`` patients."""
        out = []
        for a in self.arms:
            total = self.replicates * self.config.arm_n(a)
            out += [Chunk(a, c, first, min(self.chunk_size, total - first))
                    for c, first in enumerate(range(0, total, self.chunk_size))]
        return out


def default_chunk_size(cfg: TrialConfig, arms: tuple[int, int], replicates: int, workers: int) -> int:
    """All replicates of an arm in one call, unless the solver's output would exceed
    :data:`MEMORY_PER_CALL` per worker; with several workers, enough chunks to keep each one busy."""
    times = max(cfg.scenario(a).output_times().size for a in arms)
    per_patient = 2 * times * len(endpoints.COLUMNS) * 8
    size = max(1, MEMORY_PER_CALL // (per_patient * workers))
    size = min(size, max(replicates * cfg.arm_n(a) for a in arms))
    if workers > 1:
        size = min(size, math.ceil(replicates * sum(cfg.arm_n(a) for a in arms) / workers))
    return size


def prepare_power(cfg: TrialConfig, replicates: int, *, workers: int = 1, chunk_size: int | None = None,
                  uncertainty_sets: int | None = None, uncertainty_parameters: list[str] | None = None) -> PowerPlan:
    """Check the options and the trial's primary comparison (simulates nothing). ``uncertainty_sets=K``:
    replicate ``r`` runs under parameter-uncertainty set ``r % K``, so the power is averaged over what is
    not known about the biology (the assurance)."""
    if replicates < 1:
        raise CartsimInputError("--replicates", f"must be at least 1, got {replicates}", "an integer >= 1")
    if workers < 1:
        raise CartsimInputError("--workers", f"must be at least 1, got {workers}", "an integer >= 1")
    if chunk_size is not None and chunk_size < 1:
        raise CartsimInputError("--chunk-size", f"must be at least 1, got {chunk_size}", "an integer >= 1")
    endpoint = cfg.trial.primary_endpoint
    if endpoint is None:
        raise CartsimInputError("trial.primary_endpoint", "is not set; power is computed for the primary "
                                "endpoint: add primary_endpoint = \"NAME\" to [trial]", ", ".join(sorted(KINDS)))
    arms = cfg.comparison_arms()
    size = chunk_size or default_chunk_size(cfg, arms, replicates, workers)
    sets = None
    if uncertainty_sets is not None or uncertainty_parameters is not None:
        sets = uncertainty.draw_sets(cfg, build_model(), uncertainty_sets or 0, uncertainty_parameters)
        if sets.k > replicates:
            raise CartsimInputError("--uncertainty", f"{sets.k} parameter sets need at least as many replicates, "
                                    f"got {replicates}", f"at most {replicates} (--replicates)")
    return PowerPlan(cfg, replicates, arms, endpoint, KINDS[endpoint], size, workers, sets)


def check_endpoint(plan: PowerPlan) -> None:
    """Simulate one patient per compared arm: the model must compute the primary endpoint."""
    for a in plan.arms:
        columns = list(simulate_chunk(plan.config, Chunk(a, 0, 0, 1)).patients.columns)
        if plan.endpoint not in columns:
            computed = [c for c in columns if c in KINDS]
            raise CartsimInputError("trial.primary_endpoint", f"{plan.endpoint!r} is in the endpoint dictionary "
                                    "but the model does not compute it", ", ".join(computed))


def _simulate(plan: PowerPlan) -> dict[int, pd.DataFrame]:
    """Per compared arm: patient number, status, the primary endpoint (and its censoring flag)."""
    job = partial(simulate_chunk, plan.config, draw=partial(draw_replicates, sets=plan.sets))
    parts: dict[int, list[pd.DataFrame]] = {a: [] for a in plan.arms}
    with executor(job, plan.workers) as run, progress() as bar:
        task = bar.add_task(f"{plan.config.trial.name}: {plan.replicates} replicates", total=plan.patients)
        for chunk, result in run(plan.chunks):
            parts[chunk.arm].append(_columns(plan, result))
            bar.advance(task, chunk.n)
    return {a: pd.concat(p, ignore_index=True).sort_values("patient", ignore_index=True) for a, p in parts.items()}


def _columns(plan: PowerPlan, result: ChunkResult) -> pd.DataFrame:
    df = result.patients
    out = pd.DataFrame({"patient": df["patient"], "status": df["status"], "value": df[plan.endpoint]})
    if plan.kind == "time_to_event":
        flag = censoring(plan.endpoint, list(df.columns))
        out["censored"] = df[flag].fillna(False).astype(bool) if flag else False   # no flag: every time an event
    return out


def _test(plan: PowerPlan, a: pd.DataFrame, b: pd.DataFrame) -> hypothesis.TestResult:
    """The kind's test on the patients of one replicate that did not fail."""
    kind = plan.kind
    if kind == "time_to_event":
        a, b = (d[d["value"].notna()] for d in (a, b))
        return hypothesis.logrank(a["value"].to_numpy(float), ~a["censored"].to_numpy(bool),
                                  b["value"].to_numpy(float), ~b["censored"].to_numpy(bool))
    va, vb = (d["value"].to_numpy(float, na_value=np.nan) for d in (a, b))
    va, vb = va[np.isfinite(va)], vb[np.isfinite(vb)]
    if kind == "binary":
        return hypothesis.fisher(va.astype(bool), vb.astype(bool))
    if kind == "ordinal":
        return hypothesis.mann_whitney(va, vb)
    if kind in ("rate", "count"):
        scale = rate_exposure(plan.config, plan.endpoint) if kind == "rate" else 1.0
        return hypothesis.negative_binomial(_counts(va * scale), _counts(vb * scale),
                                            np.full(va.size, scale), np.full(vb.size, scale))
    return hypothesis.welch(va, vb)


def _counts(values: np.ndarray) -> np.ndarray:
    """Event counts: whole numbers where the rate times the exposure is one up to rounding."""
    whole = np.round(values)
    return np.where(np.abs(values - whole) < 1e-6 * np.maximum(1.0, whole), whole, values)


def _quantiles(values: np.ndarray) -> dict[str, float | None]:
    v = values[~np.isnan(values)]
    if v.size == 0:
        return {k: None for k in ("median", "p025", "p25", "p75", "p975")}
    with np.errstate(invalid="ignore"):
        q = np.quantile(v, [0.5, 0.025, 0.25, 0.75, 0.975])
    return dict(zip(("median", "p025", "p25", "p75", "p975"), map(float, q)))


def analyse(plan: PowerPlan, arms: dict[int, pd.DataFrame]) -> dict:
    """The power document from the simulated patients of the two compared arms."""
    cfg = plan.config
    rows = []
    by_replicate = {a: arms[a].assign(replicate=arms[a]["patient"] // cfg.arm_n(a)) for a in plan.arms}
    ok = {a: df[df["status"] == "ok"] for a, df in by_replicate.items()}
    for a in plan.arms:
        if ok[a]["value"].notna().sum() == 0 and len(ok[a]):
            raise CartsimInputError("trial.primary_endpoint", f"{plan.endpoint!r} has no value in arm "
                                    f"{cfg.arm[a].name!r}: it does not apply to {cfg.arm[a].therapy!r}")
    groups = {a: dict(tuple(ok[a].groupby("replicate"))) for a in plan.arms}
    empty = ok[plan.arms[0]].iloc[:0]
    for r in range(plan.replicates):
        da, db = (groups[a].get(r, empty) for a in plan.arms)
        res = _test(plan, da, db)
        rows.append({"replicate": r, "p_value": res.p_value, "effect": res.effect,
                     "effect_ci95": None if res.ci95 is None else list(res.ci95), "n_ok": [len(da), len(db)]})
    p = np.array([x["p_value"] for x in rows])
    rejected = int(np.sum(p < cfg.trial.alpha))
    power, ci = stats.wilson(rejected, plan.replicates)
    a_idx, b_idx = plan.arms
    doc = {
        "trial": cfg.trial.name, "cartsim_version": __version__, "seed": cfg.trial.seed,
        "replicates": plan.replicates, "primary_endpoint": plan.endpoint, "kind": plan.kind,
        "test": hypothesis.TEST_NAMES[plan.kind], "alpha": cfg.trial.alpha,
        "comparison": [cfg.arm[a_idx].name, cfg.arm[b_idx].name],
        "arms": [{"label": label, "name": cfg.arm[a].name, "therapy": cfg.arm[a].therapy, "n": cfg.arm_n(a),
                  "n_failed": int((by_replicate[a]["status"] != "ok").sum())}
                 for label, a in (("A", a_idx), ("B", b_idx))],
        "n_per_arm": {cfg.arm[a].name: cfg.arm_n(a) for a in plan.arms},
        "power": power, "power_ci95": ci, "rejections": rejected,
        "untestable_replicates": int(np.isnan(p).sum()),
        "effect": {"measure": hypothesis.EFFECTS[plan.kind]}
                  | _quantiles(np.array([x["effect"] for x in rows], dtype=float))
                  | {"not_estimable_replicates": int(sum(not math.isfinite(x["effect"]) for x in rows))},
    }
    if plan.sets is not None:
        doc["parameter_uncertainty"] = _assurance(plan, p)
    if plan.kind == "rate":
        unit = "scheduled MRI scans" if plan.endpoint == "gd_lesions_per_scan" else "patient-years"
        doc["exposure_per_patient"] = {"value": rate_exposure(cfg, plan.endpoint), "unit": unit}
    doc |= {"replicate_seeds": SEED_RULE, "config": cfg.model_dump(mode="json"), "per_replicate": rows}
    return _finite(doc)


def _assurance(plan: PowerPlan, p: np.ndarray) -> dict:
    """With parameter sets, ``power`` is the assurance (power averaged over the sets); here also the power
    within each set (from its replicates r with r % K = k), which says how much it hangs on the biology."""
    sets = plan.sets
    assert sets is not None
    alpha = plan.config.trial.alpha
    by_set = [float(np.mean(p[k::sets.k] < alpha)) for k in range(sets.k)]
    return {"sets": sets.k, "parameters": list(sets.names), "replicates_per_set": plan.replicates / sets.k,
            "meaning": "power is the assurance: the power averaged over parameter sets drawn from the parameter "
                       "table's uncertainty ranges (replicate r runs under set r % K)",
            "power_by_set": {"median": float(np.median(by_set)), "min": float(min(by_set)),
                             "max": float(max(by_set))}, "per_set": by_set}


@dataclass(frozen=True)
class PowerResult:
    document: dict
    seconds: float      # wall time of the simulation


def run_power(plan: PowerPlan, out: Path | None = None) -> PowerResult:
    """Simulate every replicate, test each, and write ``out/power.json`` (when ``out`` is given)."""
    check_endpoint(plan)
    started = time.perf_counter()
    arms = _simulate(plan)
    seconds = time.perf_counter() - started
    doc = analyse(plan, arms)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / POWER_FILE) as tmp:
            tmp.write_text(json.dumps(doc, indent=2))
    return PowerResult(doc, seconds)
