"""Running a trial: plan -> simulate -> summarize -> report, on local processes or a Dask cluster, resumable.

:func:`prepare` (``plan.py``) validates a run and writes nothing; :func:`execute` runs the other stages
(``stages.py``), each on the previous one's typed output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cartsim.trial import stages
from cartsim.trial.plan import TrialPlan, prepare

__all__ = ["TrialResult", "execute", "prepare"]


@dataclass(frozen=True)
class TrialResult:
    out: Path
    summary: dict
    simulated: int       # patients simulated by this run (resumed chunks not counted)
    seconds: float       # wall time spent simulating chunks


def execute(p: TrialPlan) -> TrialResult:
    """Run the missing chunks, then write patients, failures, (trajectories,) summary and report."""
    simulated = stages.simulate(p)
    summarized = stages.summarize(p, simulated)
    stages.report(p, simulated, summarized)
    return TrialResult(p.out, summarized.summary, simulated.simulated, simulated.seconds)
