"""Stages 2-4 of a trial: simulate, summarize, report; each reads the previous stage's typed output.

``DIR/chunks/`` holds one Parquet file per finished chunk, written atomically, and ``manifest.json`` with a hash
of everything that decides the numbers (the configuration, the model and its data). The final files are
assembled from the chunks in (arm, patient) order, so the result does not depend on chunk size, workers,
scheduler or interruptions. The report's trajectory bands come from the trial's own simulation of each arm's
first :data:`REPORT_PATIENTS` patients (saved with their chunks), its durability range from runs of the CAR-T
arms made once per trial folder.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from cartsim import __version__
from cartsim.endpoint_dictionary import KINDS
from cartsim.model import build_model
from cartsim.outputs.files import atomic_path
from cartsim.outputs.report import ReportData, write_report
from cartsim.outputs.validation import cached_validation
from cartsim.trial import summary_schema, uncertainty
from cartsim.trial.chunks import BandRequest, Chunk, quantile_bands, simulate_chunk
from cartsim.trial.durability import car_t_arms, durability_range
from cartsim.trial.executors import Runner, executor, progress
from cartsim.trial.plan import MANIFEST, TrialPlan, coarse_times
from cartsim.trial.summary import _finite, censoring, intervals, summarize_arm, summary_document

ROW_GROUP = 65_536               # rows per row group of the assembled files (chunks are far smaller)
REPORT_PATIENTS = 200            # patients per arm behind the report's trajectory bands
DURABILITY_PATIENTS = 100        # patients per CAR-T arm and reset half-life in the report's durability range
REPORT_COLUMNS = ("b_blood_per_uL", "car_blood_per_uL", "igg", "autoantibody_level", "attack_cum", "mg_adl")
ROLES_KEY = b"cartsim.roles"
DURABILITY_FILE = "durability.parquet"


@dataclass(frozen=True)
class Simulated:
    """What the simulate stage leaves for the next ones: the assembled files and the report's runs."""

    patients: Path                       # patients.parquet: one row per patient, endpoints and status
    failures: Path                       # failures.parquet: failed patients and why
    trajectories: Path | None            # trajectories.parquet (--save-trajectories)
    bands: dict[str, pd.DataFrame]       # arm name -> day, <column>_p05, _median, _p95 (the report's bands)
    band_patients: int                   # patients per arm behind the bands
    durability: pd.DataFrame | None      # CAR-T arms across reset half-lives (None: no such arm)
    simulated: int                       # patients simulated by this run (resumed chunks not counted)
    seconds: float                       # wall time spent simulating


@dataclass(frozen=True)
class Summarized:
    """What the summarize stage leaves for the report: the summary, each patient's time-to-event columns and the
    intervals computed from the patients' values."""

    summary: dict                        # as written to summary.json
    events: pd.DataFrame                 # arm, status and the time-to-event columns of every patient
    intervals: dict[str, dict]           # arm name (or "arm name/course") -> endpoint -> statistic -> 95% interval


# ---- stage 2: simulate ----------------------------------------------------------------------------------

def band_request(p: TrialPlan) -> BandRequest:
    cfg = p.config
    return BandRequest({a: coarse_times(cfg.scenario(a).start, cfg.trial.horizon_days) for a in range(len(cfg.arm))},
                       REPORT_COLUMNS, REPORT_PATIENTS)


def _executor(p: TrialPlan) -> AbstractContextManager[Runner]:
    return executor(partial(simulate_chunk, p.config, traj_times=p.traj_times, solver=p.solver, band=band_request(p)),
                    p.workers, p.scheduler)


def _table(df: pd.DataFrame, roles: dict[str, list[str]] | None = None) -> pa.Table:
    t = pa.Table.from_pandas(df, preserve_index=False)
    if roles is not None:
        t = t.replace_schema_metadata({**t.schema.metadata, ROLES_KEY: json.dumps(roles).encode()})
    return t


def _write(table: pa.Table, path: Path) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _file(p: TrialPlan, c: Chunk, what: str = "") -> Path:
    """A chunk's patients (``what`` empty), ``trajectories`` or ``bands`` file."""
    return p.chunk_dir / f"{c.name}{'.' + what if what else ''}.parquet"


def _banded(c: Chunk) -> bool:
    return c.first < REPORT_PATIENTS


def _is_done(p: TrialPlan, c: Chunk) -> bool:
    """Whether the chunk's files exist and hold exactly the chunk's patients (and times)."""
    try:
        t = pq.read_table(_file(p, c), columns=["arm", "patient"])
        ok = t.num_rows == c.n and np.array_equal(t["patient"].to_numpy(), c.ids) \
            and bool(np.all(t["arm"].to_numpy() == c.arm))
        if ok and p.traj_times is not None:
            tr = pq.read_table(_file(p, c, "trajectories"), columns=["patient", "day"])
            ok = tr.num_rows == c.n * len(p.traj_times) and np.array_equal(
                np.unique(tr["day"].to_numpy()), np.asarray(p.traj_times))
        if ok and _banded(c):
            ok = pq.read_metadata(_file(p, c, "bands")).num_rows > 0
        return ok
    except (OSError, pa.ArrowException, KeyError):
        return False


def _assemble(sources: list[Path], dest: Path, each: Callable[[pa.Table], None] | None = None) -> None:
    """Concatenate Parquet files (same columns) into ``dest`` in the given order, handing each to ``each``.

    Chunks are read one at a time and written in row groups of about :data:`ROW_GROUP` rows: memory
    stays bounded whatever the number of patients, and the file's footer does not grow with one row
    group per chunk (a million patients make thousands of chunks)."""
    with atomic_path(dest) as tmp:
        writer = None
        batch: list[pa.Table] = []
        try:
            for src in sources:
                t = pq.read_table(src)
                if each is not None:
                    each(t)
                writer = writer or pq.ParquetWriter(tmp, t.schema)
                batch.append(t.cast(writer.schema))
                if sum(b.num_rows for b in batch) >= ROW_GROUP:
                    writer.write_table(pa.concat_tables(batch))
                    batch = []
            if batch:
                writer.write_table(pa.concat_tables(batch))
        finally:
            if writer is not None:
                writer.close()


def _start(p: TrialPlan) -> None:
    """Create the chunk folder; a fresh (non-resumed) run clears old chunks and records its manifest."""
    p.chunk_dir.mkdir(parents=True, exist_ok=True)
    for f in p.chunk_dir.glob(".arm*_chunk*"):    # temporary files of an interrupted run
        f.unlink()
    if not p.resume:
        for f in (*p.chunk_dir.glob("arm*_chunk*.parquet"), p.chunk_dir / DURABILITY_FILE):
            f.unlink(missing_ok=True)
    manifest = {"config_hash": p.config_hash, "chunk_size": p.chunk_size, "cartsim_version": __version__,
                "config": p.config.model_dump(mode="json")}
    with atomic_path(p.chunk_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))


def simulate(p: TrialPlan) -> Simulated:
    """Run the missing chunks (saving each), assemble patients, failures and trajectories, run the parameter
    sets (``--uncertainty``) and the durability range, and take the report's bands from the saved chunks."""
    chunks = p.chunks
    todo = [c for c in chunks if not (p.resume and _is_done(p, c))]
    total = sum(p.config.arm_n(a) for a in range(len(p.config.arm)))
    started = time.perf_counter()
    with _executor(p) as run:
        _start(p)
        with progress() as bar:
            task = bar.add_task(p.config.trial.name, total=total, completed=total - sum(c.n for c in todo))
            for chunk, result in run(todo):
                if result.trajectories is not None:
                    _write(_table(result.trajectories), _file(p, chunk, "trajectories"))
                if result.bands is not None:
                    _write(_table(result.bands), _file(p, chunk, "bands"))
                _write(_table(result.patients, result.roles), _file(p, chunk))
                bar.advance(task, chunk.n)
    seconds = time.perf_counter() - started
    failed: list[pa.Table] = []
    patients = p.out / "patients.parquet"
    _assemble([_file(p, c) for c in chunks], patients,
              lambda t: failed.append(t.select(["arm", "arm_name", "patient", "status"])
                                      .filter(pa.compute.not_equal(t["status"], "ok"))))
    failures = p.out / "failures.parquet"
    _write(pa.concat_tables(failed).rename_columns(["arm", "arm_name", "patient", "reason"]), failures)
    trajectories = None
    if p.traj_times is not None:
        trajectories = p.out / "trajectories.parquet"
        _assemble([_file(p, c, "trajectories") for c in chunks], trajectories)
    extra = 0
    if p.sets is not None:
        extra, more = _uncertainty(p)
        seconds += more
    return Simulated(patients, failures, trajectories, _bands(p), _band_patients(p), _durability(p),
                     sum(c.n for c in todo) + extra, seconds)


def _band_patients(p: TrialPlan) -> int:
    cfg = p.config
    return min(REPORT_PATIENTS, *(cfg.arm_n(a) for a in range(len(cfg.arm))))


def _bands(p: TrialPlan) -> dict[str, pd.DataFrame]:
    """Each arm's trajectory bands over its first :data:`REPORT_PATIENTS` patients that did not fail."""
    out = {}
    for a, arm in enumerate(p.config.arm):
        mine = [c for c in p.chunks if c.arm == a and _banded(c)]
        long = pd.concat([pq.read_table(_file(p, c, "bands")).to_pandas() for c in mine], ignore_index=True)
        status = pd.concat([pq.read_table(_file(p, c), columns=["patient", "status"]).to_pandas() for c in mine])
        ok = status.loc[(status["status"] == "ok") & (status["patient"] < REPORT_PATIENTS), "patient"]
        out[arm.name] = quantile_bands(long, ok, REPORT_COLUMNS)
    return out


def _durability(p: TrialPlan) -> pd.DataFrame | None:
    """The CAR-T arms across reset half-lives over ``durability.horizon_years``, from the first
    :data:`DURABILITY_PATIENTS` patients of each arm (all of them in a smaller arm); saved with the chunks, so a
    resumed run does not repeat it."""
    cfg = p.config
    if not car_t_arms(cfg):
        return None
    path = p.chunk_dir / DURABILITY_FILE
    if p.resume and path.exists():
        return pq.read_table(path).to_pandas()
    with Console(stderr=True).status(f"re-running the CAR-T arms across reset half-lives over "
                                     f"{cfg.durability.horizon_years:g} years"):
        table = durability_range(cfg, n=DURABILITY_PATIENTS)
    _write(_table(table), path)
    return table


def _uncertainty_dir(p: TrialPlan) -> Path:
    assert p.sets is not None
    return p.chunk_dir / f"uncertainty-{p.sets.key()}"


def _uncertainty(p: TrialPlan) -> tuple[int, float]:
    """Run the trial's patients under every parameter set (saving each chunk, skipping saved ones on
    ``--resume``) and write the sets' tables; returns patients simulated and seconds."""
    sets = p.sets
    assert sets is not None
    folder = _uncertainty_dir(p)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / MANIFEST) as tmp:
        tmp.write_text(uncertainty.manifest(sets))
    chunks = uncertainty.chunks(p.config, sets.k, p.chunk_size)
    file = lambda c: folder / f"{c.name}.parquet"  # noqa: E731
    todo = [c for c in chunks if not (p.resume and file(c).exists())]
    for c in todo:
        file(c).unlink(missing_ok=True)
    started = time.perf_counter()
    job = uncertainty.job(p.config, sets, p.solver)
    with executor(job, p.workers, p.scheduler) as run, progress() as bar:
        task = bar.add_task(f"{p.config.trial.name}: {sets.k} parameter sets", total=sum(c.n for c in chunks),
                            completed=sum(c.n for c in chunks) - sum(c.n for c in todo))
        for chunk, result in run(todo):
            endpoints = result.roles["endpoints"]
            _write(uncertainty.chunk_table(result.patients, endpoints), file(chunk))
            bar.advance(task, chunk.n)
    seconds = time.perf_counter() - started
    rows = {a: pd.concat([pq.read_table(file(c)).to_pandas() for c in chunks if c.arm == a], ignore_index=True)
            for a in range(len(p.config.arm))}
    table = uncertainty.statistics(p.config, sets, rows)
    uncertainty.write_tables(p.out, sets, table)
    return sum(c.n for c in todo), seconds


# ---- stage 3: summarize ---------------------------------------------------------------------------------

def summarize(p: TrialPlan, sim: Simulated) -> Summarized:
    """``summary.json`` and the report's event data and intervals, reading ``patients.parquet`` once, one arm
    at a time and only the columns the statistics need (arm, status, course, endpoints): memory holds one arm's
    endpoints, never the covariates and parameters of the whole trial."""
    schema = pq.read_schema(sim.patients)
    endpoints = json.loads(schema.metadata[ROLES_KEY])["endpoints"]
    course = ["ms_course"] if "ms_course" in schema.names else []
    events_cols = [e for e in endpoints if KINDS.get(e) == "time_to_event"]
    events_cols += [c for e in events_cols if (c := censoring(e, endpoints)) is not None]
    arms, events, ranges = [], [], {}
    for a, spec in enumerate(p.config.arm):
        rows = pq.read_table(sim.patients, columns=["arm", "status", *course, *endpoints],
                             filters=[("arm", "=", a)]).to_pandas()
        arms.append(summarize_arm(p.config, a, rows, endpoints))
        ranges[spec.name] = intervals(rows, endpoints)
        if course:
            for c, g in rows.groupby("ms_course", sort=True):
                ranges[f"{spec.name}/{c}"] = intervals(g, endpoints)
        events.append(rows[["arm", "status", *dict.fromkeys(events_cols)]])
        del rows
    summary = summary_document(p.config, arms)
    if p.sets is not None:
        table = pq.read_table(p.out / uncertainty.TABLE_FILE).to_pandas()
        summary = _finite(uncertainty.add_to_summary(summary, p.sets, table))
    with atomic_path(p.out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary_schema.checked(summary), indent=2))
    return Summarized(summary, pd.concat(events, ignore_index=True), ranges)


# ---- stage 4: report ------------------------------------------------------------------------------------

def report_data(p: TrialPlan, sim: Simulated, summ: Summarized) -> ReportData:
    """Everything ``report.html`` shows: results, each arm's scenario, the model and its validation."""
    cfg = p.config
    checks = None
    if p.validation:
        with Console(stderr=True).status("validating the model against published targets (cached after the "
                                         "first run)"):
            checks = cached_validation()
    return ReportData(summ.summary, summ.events, sim.bands, sim.band_patients,
                      scenarios=tuple((arm.name, cfg.scenario(a)) for a, arm in enumerate(cfg.arm)),
                      validation=checks, model=build_model(), durability=sim.durability, intervals=summ.intervals)


def report(p: TrialPlan, sim: Simulated, summ: Summarized) -> Path:
    path = p.out / "report.html"
    write_report(path, report_data(p, sim, summ))
    return path


