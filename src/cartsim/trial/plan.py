"""Stage 1 of a trial, the plan: a run validated against its options and its output folder (writes nothing).

The stages, each reading the previous one's typed output (``cartsim.trial.run.execute`` chains them):
plan (:class:`TrialPlan`, here) -> simulate (``stages.simulate``: chunks, assembled files, the report's
trajectory bands and durability runs) -> summarize (``stages.summarize``: ``summary.json`` and the report's
event data and intervals) -> report (``stages.report``: ``report.html``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cartsim import __version__
from cartsim.engine.compile import module_source
from cartsim.errors import CartsimInputError
from cartsim.model import build_model
from cartsim.therapy import lymphodepletion_regimens
from cartsim.trial import uncertainty
from cartsim.trial.chunks import Chunk, plan
from cartsim.trial.config import TrialConfig

CHUNK_SIZE = 256
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class TrialPlan:
    """A validated trial run; creating one writes nothing."""

    config: TrialConfig
    out: Path
    chunk_size: int
    config_hash: str
    resume: bool = False
    traj_times: tuple[float, ...] | None = None
    workers: int = 1
    scheduler: str | None = None
    solver: dict = field(default_factory=dict)
    validation: bool = True      # the report's validation table (cached on disk after the first run)
    sets: uncertainty.ParameterSets | None = None   # parameter-uncertainty sets to re-run the trial over

    @property
    def chunks(self) -> list[Chunk]:
        return plan(self.config, self.chunk_size)

    @property
    def chunk_dir(self) -> Path:
        return self.out / "chunks"


def config_hash(cfg: TrialConfig, solver: dict) -> str:
    """Hash of everything that decides a patient's numbers: configuration, model, data."""
    model = build_model()
    parts = [json.dumps({"config": cfg.model_dump(mode="json"), "solver": solver, "version": __version__},
                        sort_keys=True),
             module_source(model), repr(list(model.table)), repr(lymphodepletion_regimens()),
             *(repr(cfg.scenario(a)) for a in range(len(cfg.arm)))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def coarse_times(start: float, horizon: float) -> tuple[float, ...]:
    """Daily to day 28, then weekly, and the horizon: enough to draw a trajectory."""
    days = np.concatenate([np.arange(np.ceil(start), min(28.0, horizon)), np.arange(28.0, horizon, 7.0), [horizon]])
    return tuple(float(d) for d in np.unique(days[days >= start]))


def parse_times(text: str) -> tuple[float, ...]:
    """``"0,7,14"`` -> (0.0, 7.0, 14.0)."""
    try:
        days = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise CartsimInputError("--times", f"cannot read {text!r}", "comma-separated days, e.g. '0,7,14,28'") \
            from None
    if not days or not all(np.isfinite(days)):
        raise CartsimInputError("--times", f"cannot read {text!r}", "comma-separated days, e.g. '0,7,14,28'")
    return tuple(sorted(set(days)))


def _trajectory_times(cfg: TrialConfig, save: bool, times: str | None) -> tuple[float, ...] | None:
    if times is not None and not save:
        raise CartsimInputError("--times", "applies only with --save-trajectories")
    if not save:
        return None
    first = max(cfg.scenario(a).start for a in range(len(cfg.arm)))
    horizon = cfg.trial.horizon_days
    if times is None:
        return coarse_times(first, horizon)
    days = parse_times(times)
    if days[0] < first or days[-1] > horizon:
        raise CartsimInputError("--times", f"days must lie within every arm's simulation, got {times!r}",
                                f"days from {first:g} to {horizon:g}")
    return days


def _read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def prepare(cfg: TrialConfig, out: Path, *, chunk_size: int | None = None, resume: bool = False,
            save_trajectories: bool = False, times: str | None = None, workers: int = 1,
            scheduler: str | None = None, solver: dict | None = None, validation: bool = True,
            uncertainty_sets: int | None = None, uncertainty_parameters: list[str] | None = None) -> TrialPlan:
    """Validate a run against its options and the output directory (writes nothing).

    ``validation=False`` leaves the model's validation out of the report (it does not change the numbers).
    ``uncertainty_sets=K`` re-runs the trial over K parameter-uncertainty sets (:mod:`cartsim.trial.uncertainty`)
    of ``uncertainty_parameters`` (default: every assumed and calibrated parameter with a range)."""
    if chunk_size is not None and chunk_size < 1:
        raise CartsimInputError("--chunk-size", f"must be at least 1, got {chunk_size}", "an integer >= 1")
    if workers < 1:
        raise CartsimInputError("--workers", f"must be at least 1, got {workers}", "an integer >= 1")
    if scheduler is not None and workers > 1:
        raise CartsimInputError("--workers", "chunks go to the Dask cluster with --scheduler; drop --workers")
    traj_times = _trajectory_times(cfg, save_trajectories, times)
    solver = dict(solver or {})
    digest = config_hash(cfg, solver)
    chunk_dir = Path(out) / "chunks"
    manifest = _read_manifest(chunk_dir / MANIFEST)
    has_chunks = chunk_dir.is_dir() and any(chunk_dir.glob("arm*_chunk*.parquet"))
    if (manifest is not None or has_chunks) and (manifest or {}).get("config_hash") != digest:
        raise CartsimInputError("--out", f"{str(out)!r} holds chunks of a different trial (configuration, model "
                                "or data differ); use another directory or delete its chunks/ folder")
    if resume and manifest:
        if chunk_size is not None and chunk_size != manifest["chunk_size"]:
            raise CartsimInputError("--chunk-size", f"the chunks in {str(out)!r} have {manifest['chunk_size']} "
                                    f"patients; resume with that size, got {chunk_size}",
                                    str(manifest["chunk_size"]))
        chunk_size = manifest["chunk_size"]
    sets = None
    if uncertainty_sets is not None or uncertainty_parameters is not None:
        sets = uncertainty.draw_sets(cfg, build_model(), uncertainty_sets or 0, uncertainty_parameters)
    return TrialPlan(cfg, Path(out), chunk_size or CHUNK_SIZE, digest, resume, traj_times, workers, scheduler, solver,
                     validation, sets)
