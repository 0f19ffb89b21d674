"""Where a trial's chunks run: in this process, a local process pool or a Dask cluster; and the progress bar."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from multiprocessing import get_context

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from cartsim.errors import CartsimInputError
from cartsim.trial.chunks import Chunk, ChunkResult

Runner = Callable[[list[Chunk]], Iterator[tuple[Chunk, ChunkResult]]]


def _limit_threads(threads: int) -> None:
    """Pool-worker initializer: share the cores among workers instead of oversubscribing them."""
    import numba

    numba.set_num_threads(threads)


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


def progress(console: Console | None = None, get_time: Callable[[], float] | None = None) -> Progress:
    """The trial's progress bar: patients done, patients per second and time left (on a terminal only)."""
    console = console or Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(), _Rate(),
                    _TimeLeft(), console=console, get_time=get_time, disable=not console.is_terminal)
