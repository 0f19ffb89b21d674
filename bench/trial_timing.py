"""Wall time and peak memory of ``cartsim trial`` end to end: the real CLI, in a subprocess.

Memory is the resident set of the whole process tree (the CLI and any worker
processes), summed over processes and polled every :data:`POLL_S` seconds.
Shared pages count once per process, so the sum overstates what the tree uses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from cartsim.trial.chunks import Chunk, plan
from cartsim.trial.config import TrialConfig, parse_config

ARMS = (("MB-CART19.1", "mb-cart19"), ("KYV-101", "kyv-101"))
POLL_S = 0.2
MB = 1024.0**2


def config_text(n_per_arm: int, horizon: float, seed: int = 2024) -> str:
    """A two-arm CAR-T trial in SLE (TOML)."""
    arms = "".join(f'\n[[arm]]\nname = "{name}"\ntherapy = "{therapy}"\n' for name, therapy in ARMS)
    return (f'[trial]\nname = "benchmark: MB-CART19.1 vs KYV-101 in SLE"\nseed = {seed}\n'
            f'horizon_days = {horizon:g}\n\n[population]\nn = {n_per_arm}\ndisease = "sle"\n{arms}')


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("cartsim")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from cartsim.cli import app; app()"]


def _tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """Resident set of ``proc`` and all its descendants: the sum, and the largest single process."""
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    sizes = []
    for p in procs:
        try:
            sizes.append(p.memory_info().rss)
        except psutil.NoSuchProcess:
            pass
    return sum(sizes), max(sizes, default=0)


def _stop_tree(proc: subprocess.Popen) -> None:
    """Terminate the CLI process started here and its worker processes, by id."""
    try:
        workers = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        workers = []
    for p in workers:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    for p in psutil.wait_procs(workers, timeout=15)[1]:
        p.kill()


def _finished_chunks(chunk_dir: Path) -> int:
    return sum(1 for f in chunk_dir.glob("arm*_chunk*.parquet") if not f.name.endswith(".trajectories.parquet"))


@dataclass(frozen=True)
class Sample:
    seconds: float
    rss_mb: float        # process tree
    chunks: int          # chunk files written so far


@dataclass(frozen=True)
class TrialRun:
    n_per_arm: int
    arms: int
    workers: int
    chunks: int                      # planned
    wall_s: float
    simulating_s: float | None       # until the last chunk file was written
    completed: bool                  # exited 0 within the time limit (else stopped, or failed)
    returncode: int | None
    peak_rss_mb: float               # process tree, whole run
    peak_rss_simulating_mb: float    # while chunks were being simulated
    peak_rss_finishing_mb: float | None  # after the last chunk: assembling, summary, report
    largest_process_mb: float        # largest single process seen by the polling
    failed: dict[str, int] | None    # patients that failed, per arm (from summary.json)
    samples: tuple[Sample, ...]

    def record(self, points: int = 120) -> dict:
        """For the results file, with the memory trace thinned to about ``points`` samples."""
        keep = self.samples[::max(1, len(self.samples) // points)]
        out = {k: v for k, v in self.__dict__.items() if k != "samples"}
        return out | {"n_total": self.n_per_arm * self.arms,
                      "trace": [[round(s.seconds, 1), round(s.rss_mb, 1), s.chunks] for s in keep]}


def run_trial(out: Path, text: str, workers: int, limit_s: float | None = None, resume: bool = False) -> TrialRun:
    """Run ``cartsim trial`` on config ``text`` into ``out`` and poll its memory; stop it after ``limit_s``."""
    cfg = parse_config(text)
    if not resume and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    config = out / "trial.toml"
    config.write_text(text)
    n_chunks = len(plan(cfg, _chunk_size(out)))
    cmd = [*_cli(), "trial", str(config), "--out", str(out), "--workers", str(workers), *(["--resume"] * resume)]
    samples: list[Sample] = []
    largest, last_chunk_at, chunks, next_count = 0, None, 0, 0.0
    start = time.perf_counter()
    with open(out / "trial.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            now = time.perf_counter() - start
            if limit_s is not None and now > limit_s:
                _stop_tree(proc)
                break
            if now >= next_count:
                chunks, next_count = _finished_chunks(out / "chunks"), now + 1.0
                if chunks >= n_chunks and last_chunk_at is None:
                    last_chunk_at = now
            total, big = _tree_rss(ps)
            largest = max(largest, big)
            samples.append(Sample(now, total / MB, chunks))
            time.sleep(POLL_S)
        returncode = proc.wait()
    wall = time.perf_counter() - start
    completed = returncode == 0 and (limit_s is None or wall <= limit_s)
    simulating = [s.rss_mb for s in samples if last_chunk_at is None or s.seconds < last_chunk_at]
    finishing = [s.rss_mb for s in samples if last_chunk_at is not None and s.seconds >= last_chunk_at]
    return TrialRun(cfg.population.n, len(cfg.arm), workers, n_chunks, wall, last_chunk_at, completed,
                    returncode, max((s.rss_mb for s in samples), default=0.0), max(simulating, default=0.0),
                    max(finishing) if finishing else None, largest / MB, _failed(out) if completed else None,
                    tuple(samples))


def _failed(out: Path) -> dict[str, int] | None:
    try:
        return {a["name"]: a["n_failed"] for a in json.loads((out / "summary.json").read_text())["arms"]}
    except (OSError, ValueError, KeyError):
        return None


def _chunk_size(out: Path) -> int:
    """The chunk size of a run in ``out`` (from its manifest when resuming), else the CLI's default."""
    from cartsim.trial.plan import CHUNK_SIZE

    try:
        return int(json.loads((out / "chunks" / "manifest.json").read_text())["chunk_size"])
    except (OSError, ValueError, KeyError):
        return CHUNK_SIZE


# ---- memory flatness at a million patients ------------------------------------------------------------------


def flatness(samples: tuple[Sample, ...]) -> dict:
    """Tree memory while the first tenth of the finished chunks ran against the second half of the run.

    Peaks show the largest transient (one chunk's solution and tables); medians show the level a leak
    would raise. The slope is fitted to the per-chunk peaks."""
    done = max((s.chunks for s in samples), default=0)
    k = max(5, done // 10)
    early = [s.rss_mb for s in samples if 1 <= s.chunks <= k]
    late = [s.rss_mb for s in samples if s.chunks > max(k, done // 2)]
    if not early or not late:
        return {"chunks_finished": done, "note": "too few chunks finished to compare"}
    peaks: dict[int, float] = {}
    for s in samples:
        if s.chunks >= 1:
            peaks[s.chunks] = max(peaks.get(s.chunks, 0.0), s.rss_mb)
    x, y = np.array(list(peaks)), np.array(list(peaks.values()))
    return {"chunks_finished": done, "early_chunks": [1, k], "late_chunks": [max(k, done // 2) + 1, done],
            "early_peak_mb": max(early), "late_peak_mb": max(late), "early_median_mb": float(np.median(early)),
            "late_median_mb": float(np.median(late)), "growth_median_mb": float(np.median(late) - np.median(early)),
            "slope_mb_per_1000_chunks": float(np.polyfit(x, y, 1)[0] * 1000) if np.ptp(x) > 0 else 0.0}


def _fill_missing(out: Path, cfg: TrialConfig) -> int:
    """Write every chunk the stopped run did not finish as a copy of a finished one, renumbered.

    Only the finishing phase (assembling, summary, report) is measured on them: its memory
    depends on the number of rows and columns, not on their values."""
    chunk_dir = out / "chunks"
    chunks = plan(cfg, _chunk_size(out))
    path = lambda c: chunk_dir / f"{c.name}.parquet"  # noqa: E731
    full = next(c for c in chunks if c.n == chunks[0].n and path(c).exists())
    template = pq.read_table(path(full))
    missing = [c for c in chunks if not path(c).exists()]
    for c in missing:
        pq.write_table(_renumbered(template, c, cfg.arm[c.arm].name), path(c))
    return len(missing)


def _renumbered(t: pa.Table, c: Chunk, arm_name: str) -> pa.Table:
    metadata = t.schema.metadata   # the column roles the trial runner reads back
    t = t.slice(0, c.n)
    values = {"arm": np.full(c.n, c.arm), "arm_name": [arm_name] * c.n, "patient": c.ids}
    for name, v in values.items():
        i = t.schema.get_field_index(name)
        t = t.set_column(i, t.schema.field(i), pa.array(v, type=t.schema.field(i).type))
    return t.replace_schema_metadata(metadata)


def million(work: Path, n_total: int, horizon: float, workers: int, limit_s: float) -> dict:
    """Memory of a ``n_total``-patient trial: simulated for at most ``limit_s`` (flatness over chunks),
    then, if unfinished, its finishing phase over the full number of rows (resumed with copied chunks)."""
    out = work / "million"
    text = config_text(n_total // len(ARMS), horizon)
    sim = run_trial(out, text, workers, limit_s)
    result = {"n_total": n_total, "simulation": sim.record(), "flatness": flatness(sim.samples)}
    if not sim.completed:
        copied = _fill_missing(out, parse_config(text))
        fin = run_trial(out, text, workers, resume=True)
        result["finishing"] = fin.record() | {"copied_chunks": copied, "failed": None}   # counts of copies: moot
    return result
