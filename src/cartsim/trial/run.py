"""Running a trial: chunks of patients on local processes or a Dask cluster, resumable.

``DIR/chunks/`` holds one Parquet file per finished chunk, written atomically,
and ``manifest.json`` with a hash of everything that decides the numbers (the
configuration, the model and its data). The final files are assembled from the
chunks in (arm, patient) order, so the result does not depend on chunk size,
workers, scheduler or interruptions.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from cartsim import __version__
from cartsim.engine.compile import module_source
from cartsim.errors import CartsimInputError
from cartsim.model import build_model
from cartsim.outputs.files import atomic_path
from cartsim.outputs.report import ReportData, write_report
from cartsim.outputs.validation import cached_validation
from cartsim.therapy import lymphodepletion_regimens
from cartsim.trial.chunks import Chunk, ChunkResult, plan, simulate_chunk, trajectory_bands
from cartsim.trial.config import TrialConfig
from cartsim.trial.durability import car_t_arms, durability_range
from cartsim.trial import summary_schema, uncertainty
from cartsim.trial.summary import _finite, censoring, summarize_arm, summary_document

CHUNK_SIZE = 256
ROW_GROUP = 65_536               # rows per row group of the assembled files (chunks are far smaller)
REPORT_PATIENTS = 200            # patients per arm behind the report's trajectory bands
DURABILITY_PATIENTS = 100        # patients per CAR-T arm and reset half-life in the report's durability range
REPORT_COLUMNS = ("b_blood_per_uL", "car_blood_per_uL", "igg", "autoantibody_level", "attack_cum", "mg_adl")
MANIFEST = "manifest.json"
ROLES_KEY = b"cartsim.roles"


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


@dataclass(frozen=True)
class TrialResult:
    out: Path
    summary: dict
    simulated: int       # patients simulated by this run (resumed chunks not counted)
    seconds: float       # wall time spent simulating chunks


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


# ---- executing chunks ---------------------------------------------------------------------------

Runner = Callable[[list[Chunk]], Iterator[tuple[Chunk, ChunkResult]]]


def _limit_threads(threads: int) -> None:
    """Pool-worker initializer: share the cores among workers instead of oversubscribing them."""
    import numba

    numba.set_num_threads(threads)


def _executor(p: TrialPlan) -> AbstractContextManager[Runner]:
    """The runner of a trial's chunks (see :func:`executor`)."""
    return executor(partial(simulate_chunk, p.config, traj_times=p.traj_times, solver=p.solver), p.workers,
                    p.scheduler)


@contextmanager
def executor(job: Callable[[Chunk], ChunkResult], workers: int = 1,
             scheduler: str | None = None) -> Iterator[Runner]:
    """Runs ``job`` on chunks in this process, a local process pool, or on a Dask cluster; yields results as
    they finish.

    Workers get only ``job`` (a picklable function of the configuration) and a chunk; each loads the
    compiled model from the on-disk cache (``$CARTSIM_CACHE``), so nothing compiled is pickled."""
    if scheduler is not None:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed

        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as err:
            raise CartsimInputError("--scheduler", f"cannot connect to {scheduler!r} ({err})") from None

        def on_cluster(chunks: list[Chunk]) -> Iterator[tuple[Chunk, ChunkResult]]:
            futures = client.map(job, chunks, pure=False)
            by_key = {f.key: c for f, c in zip(futures, chunks)}
            done = dask_completed(futures, with_results=True)
            del futures     # only `done` holds the futures now: the cluster frees each result once it is yielded
            for future, result in done:
                yield by_key.pop(future.key), result

        try:
            yield on_cluster
        finally:
            client.close()
    elif workers > 1:
        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_limit_threads,
                                 initargs=(threads,)) as pool:
            def in_pool(chunks: list[Chunk]) -> Iterator[tuple[Chunk, ChunkResult]]:
                futures = {pool.submit(job, c): c for c in chunks}
                for future in as_completed(futures):
                    yield futures.pop(future), future.result()

            yield in_pool
    else:
        yield lambda chunks: ((c, job(c)) for c in chunks)


class _Rate(ProgressColumn):
    """Patients simulated per second (rich's estimate over the last 30 s)."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f} patients/s" if task.speed else "- patients/s")


class _TimeLeft(TimeRemainingColumn):
    """Estimated time to the last patient, labelled."""

    def render(self, task: Task) -> Text:
        return super().render(task).append(" left")


def _progress(console: Console | None = None, get_time: Callable[[], float] | None = None) -> Progress:
    """The trial's progress bar: patients done, patients per second and time left (on a terminal only)."""
    console = console or Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(), _Rate(),
                    _TimeLeft(), console=console, get_time=get_time, disable=not console.is_terminal)


# ---- files ------------------------------------------------------------------------------------

def _table(df: pd.DataFrame, roles: dict[str, list[str]] | None = None) -> pa.Table:
    t = pa.Table.from_pandas(df, preserve_index=False)
    if roles is not None:
        t = t.replace_schema_metadata({**t.schema.metadata, ROLES_KEY: json.dumps(roles).encode()})
    return t


def _write(table: pa.Table, path: Path) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _patients_file(p: TrialPlan, c: Chunk) -> Path:
    return p.chunk_dir / f"{c.name}.parquet"


def _trajectory_file(p: TrialPlan, c: Chunk) -> Path:
    return p.chunk_dir / f"{c.name}.trajectories.parquet"


def _is_done(p: TrialPlan, c: Chunk) -> bool:
    """Whether the chunk's files exist and hold exactly the chunk's patients (and times)."""
    try:
        t = pq.read_table(_patients_file(p, c), columns=["arm", "patient"])
        ok = t.num_rows == c.n and np.array_equal(t["patient"].to_numpy(), c.ids) \
            and bool(np.all(t["arm"].to_numpy() == c.arm))
        if ok and p.traj_times is not None:
            tr = pq.read_table(_trajectory_file(p, c), columns=["patient", "day"])
            ok = tr.num_rows == c.n * len(p.traj_times) and np.array_equal(
                np.unique(tr["day"].to_numpy()), np.asarray(p.traj_times))
        return ok
    except (OSError, pa.ArrowException, KeyError):
        return False


def _assemble(sources: list[Path], dest: Path) -> None:
    """Concatenate Parquet files (same columns) into ``dest`` in the given order.

    Chunks are read one at a time and written in row groups of about :data:`ROW_GROUP` rows: memory
    stays bounded whatever the number of patients, and the file's footer does not grow with one row
    group per chunk (a million patients make thousands of chunks)."""
    with atomic_path(dest) as tmp:
        writer = None
        batch: list[pa.Table] = []
        try:
            for src in sources:
                t = pq.read_table(src)
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


def _failures(patients: Path) -> pa.Table:
    """Failed patients and why, from the assembled patients file (four columns, failed rows only)."""
    cols = ["arm", "arm_name", "patient", "status"]
    rows = pq.read_table(patients, columns=cols, filters=[("status", "!=", "ok")])
    return rows.rename_columns([*cols[:-1], "reason"])


def _start(p: TrialPlan) -> None:
    """Create the chunk folder; a fresh (non-resumed) run clears old chunks and records its manifest."""
    p.chunk_dir.mkdir(parents=True, exist_ok=True)
    for f in p.chunk_dir.glob(".arm*_chunk*"):    # temporary files of an interrupted run
        f.unlink()
    if not p.resume:
        for f in p.chunk_dir.glob("arm*_chunk*.parquet"):
            f.unlink()
    manifest = {"config_hash": p.config_hash, "chunk_size": p.chunk_size, "cartsim_version": __version__,
                "config": p.config.model_dump(mode="json")}
    with atomic_path(p.chunk_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))


def execute(p: TrialPlan) -> TrialResult:
    """Run the missing chunks, then write patients, failures, (trajectories,) summary and report."""
    chunks = p.chunks
    todo = [c for c in chunks if not (p.resume and _is_done(p, c))]
    total = sum(p.config.arm_n(a) for a in range(len(p.config.arm)))
    started = time.perf_counter()
    with _executor(p) as run:
        _start(p)
        with _progress() as bar:
            task = bar.add_task(p.config.trial.name, total=total, completed=total - sum(c.n for c in todo))
            for chunk, result in run(todo):
                if result.trajectories is not None:
                    _write(_table(result.trajectories), _trajectory_file(p, chunk))
                _write(_table(result.patients, result.roles), _patients_file(p, chunk))
                bar.advance(task, chunk.n)
    seconds = time.perf_counter() - started
    sources = [_patients_file(p, c) for c in chunks]
    _assemble(sources, p.out / "patients.parquet")
    _write(_failures(p.out / "patients.parquet"), p.out / "failures.parquet")
    if p.traj_times is not None:
        _assemble([_trajectory_file(p, c) for c in chunks], p.out / "trajectories.parquet")
    extra = 0
    if p.sets is not None:
        extra, more = _uncertainty(p)
        seconds += more
    summary = write_summary(p)
    write_report(p.out / "report.html", report_data(p, summary))
    return TrialResult(p.out, summary, sum(c.n for c in todo) + extra, seconds)


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
    with executor(job, p.workers, p.scheduler) as run, _progress() as bar:
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


def write_summary(p: TrialPlan) -> dict:
    """Summarise ``patients.parquet`` into ``summary.json``.

    Reads one arm at a time and only the columns the statistics need (arm, status, endpoints), so
    memory holds one arm's endpoints (and disease courses), never the covariates and parameters of the
    whole trial."""
    path = p.out / "patients.parquet"
    schema = pq.read_schema(path)
    endpoints = json.loads(schema.metadata[ROLES_KEY])["endpoints"]
    course = ["ms_course"] if "ms_course" in schema.names else []
    arms = []
    for a in range(len(p.config.arm)):
        rows = pq.read_table(path, columns=["arm", "status", *course, *endpoints],
                             filters=[("arm", "=", a)]).to_pandas()
        arms.append(summarize_arm(p.config, a, rows, endpoints))
        del rows
    summary = summary_document(p.config, arms)
    if p.sets is not None:
        table = pq.read_table(p.out / uncertainty.TABLE_FILE).to_pandas()
        summary = _finite(uncertainty.add_to_summary(summary, p.sets, table))
    with atomic_path(p.out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary_schema.checked(summary), indent=2))
    return summary


def report_data(p: TrialPlan, summary: dict) -> ReportData:
    """Everything ``report.html`` shows: results, each arm's scenario, the model and its validation."""
    cfg = p.config
    checks = None
    if p.validation:
        with Console(stderr=True).status("validating the model against published targets (cached after the "
                                         "first run)"):
            checks = cached_validation()
    shown = min(REPORT_PATIENTS, *(cfg.arm_n(a) for a in range(len(cfg.arm))))
    return ReportData(summary, _report_data(p, summary), _bands(p), shown,
                      scenarios=tuple((arm.name, cfg.scenario(a)) for a, arm in enumerate(cfg.arm)),
                      validation=checks, model=build_model(),
                      durability=_durability(cfg))


def _durability(cfg: TrialConfig) -> pd.DataFrame | None:
    """The CAR-T arms across reset half-lives over ``durability.horizon_years``, from the first
    :data:`DURABILITY_PATIENTS` patients of each arm (all of them in a smaller arm)."""
    if not car_t_arms(cfg):
        return None
    with Console(stderr=True).status(f"re-running the CAR-T arms across reset half-lives over "
                                     f"{cfg.durability.horizon_years:g} years"):
        return durability_range(cfg, n=DURABILITY_PATIENTS)


def _report_data(p: TrialPlan, summary: dict) -> pd.DataFrame:
    """The columns the report's event curves need, for every patient."""
    columns = pq.read_schema(p.out / "patients.parquet").names
    names = [n for n, e in summary["arms"][0]["endpoints"].items() if e["kind"] == "time_to_event"]
    cols = ["arm", "status", *names, *(censoring(n, columns) for n in names)]
    return pq.read_table(p.out / "patients.parquet", columns=cols).to_pandas()


def _bands(p: TrialPlan) -> dict[str, pd.DataFrame]:
    """Trajectory bands per arm from the first :data:`REPORT_PATIENTS` patients, on a coarse grid."""
    cfg = p.config
    return {arm.name: trajectory_bands(cfg, a, REPORT_PATIENTS,
                                       coarse_times(cfg.scenario(a).start, cfg.trial.horizon_days), REPORT_COLUMNS)
            for a, arm in enumerate(cfg.arm)}
