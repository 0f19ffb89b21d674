"""Two therapies side by side for the typical patient: the typed Python API behind ``cartsim compare``."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from cartsim.disease import diseases
from cartsim.endpoints import REAPPEARANCE_LIMIT
from cartsim.errors import CartsimInputError
from cartsim.outputs.compare import arm_labels, dose_count_text, plot_comparison
from cartsim.scenario import Scenario, therapy_names
from cartsim.simulate import SimulationResult, simulate

NOTE = "cartsim research simulation, not medical advice"


def check_inputs(therapy_a: str, therapy_b: str, disease: str = "ms", days: float | str = 1095) -> float:
    """Validate the inputs (raising :class:`CartsimInputError` named as on the command line); the horizon in days."""
    for field, therapy in (("THERAPY_A", therapy_a), ("THERAPY_B", therapy_b)):
        if therapy not in therapy_names():
            raise CartsimInputError(field, f"unknown therapy {therapy!r}", ", ".join(therapy_names()))
    for therapy in dict.fromkeys((therapy_a, therapy_b)):
        scenario = Scenario.make(therapy, disease, days)  # type: ignore[arg-type]  # parses text days too
    return scenario.days


def _plain(v: Any) -> Any:
    """A JSON-ready scalar: NaN and missing become None, numpy scalars become Python ones."""
    if v is None or v is pd.NA:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    f = float(v)
    return None if math.isnan(f) else f


def facts(result: SimulationResult) -> dict[str, Any]:
    """Plain comparison facts for one therapy (None where the event does not happen within the horizon).

    B cells count as gone once they fall below the 1 cell/uL detection limit; return, naive share
    at return and repletion are only reported after that.
    """
    df, ep = result.trajectories, result.endpoints
    below = df[(df.day >= 0) & (df.b_blood_per_uL < REAPPEARANCE_LIMIT)]
    gone = float(below.day.iloc[0]) if len(below) else None
    back = gone is not None and not ep["bcell_reappearance_censored"]
    replete = gone is not None and not ep["bcell_repletion_censored"]
    return {
        "administrations": len(result.dosing),
        "bcells_below_1_per_uL_day": gone,
        "bcell_reappearance_day": _plain(ep["bcell_reappearance_day"]) if back else None,
        "naive_share_at_reappearance": _plain(ep["naive_fraction_at_reappearance"]) if back else None,
        "bcell_repletion_day": _plain(ep["bcell_repletion_day"]) if replete else None,
        "bcells_at_end_per_uL": float(df.b_blood_per_uL.iloc[-1]),
    }


def horizon_text(days: float) -> str:
    """'3 years (1095 days)', '6 months (182 days)' or '90 days'."""
    if days >= 365 and days % 365 == 0:
        n = int(days // 365)
        return f"{n} year{'s' if n > 1 else ''} ({days:g} days)"
    months = days / (365.25 / 12)
    if days >= 60 and abs(months - round(months)) < 0.05:
        return f"{round(months)} months ({days:g} days)"
    return f"{days:g} days"


@dataclass(frozen=True)
class Comparison:
    """Two therapies (A and B) for the typical patient of one disease over one horizon."""

    disease: str
    days: float
    results: tuple[SimulationResult, SimulationResult]

    @property
    def therapies(self) -> tuple[str, str]:
        return self.results[0].scenario.therapy, self.results[1].scenario.therapy

    @property
    def title(self) -> str:
        a, b = self.therapies
        return (f"{a} vs {b} in {diseases()[self.disease].description}: "
                f"typical patient over {horizon_text(self.days)}")

    @property
    def trajectories(self) -> pd.DataFrame:
        """Both trajectories stacked, with 'arm' (A, B) and 'therapy' columns first."""
        parts = [r.trajectories.assign(arm=arm, therapy=r.scenario.therapy) for arm, r in zip("AB", self.results)]
        df = pd.concat(parts, ignore_index=True)
        return df[["arm", "therapy", *parts[0].columns.drop(["arm", "therapy"])]]

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: per therapy its regimen, dosing list, comparison facts and endpoints."""
        arms = []
        for arm, label, r in zip("AB", arm_labels(self.results), self.results):
            arms.append({"arm": arm, "therapy": r.scenario.therapy, "label": label,
                         "description": r.scenario.describe(),
                         "dosing": [{"day": float(d), "what": w} for d, w in r.dosing],
                         "facts": facts(r),
                         "endpoints": {k: _plain(v) for k, v in r.endpoints.items()}})
        return {"disease": self.disease, "days": self.days, "title": self.title, "therapies": arms, "note": NOTE}

    def lines(self) -> list[str]:
        """One plain line per therapy: doses and what the B cells do."""
        out = []
        for label, r in zip(arm_labels(self.results), self.results):
            f = facts(r)
            gone, back, full = f["bcells_below_1_per_uL_day"], f["bcell_reappearance_day"], f["bcell_repletion_day"]
            line = f"{label}: {dose_count_text(r)}; B cells "
            line += "never below 1/uL" if gone is None else f"below 1/uL from day {gone:g}"
            if back is not None:
                line += f", back on day {back:g} ({f['naive_share_at_reappearance']:.0%} naive)"
            if full is not None:
                line += f", at the normal level by day {full:g}"
            out.append(line)
        return out

    def write(self, out: Path | str, fmt: Literal["parquet", "csv"] = "parquet") -> list[Path]:
        """Write trajectories, summary.json, compare.png and compare.svg into ``out``.

        Everything is written to a temporary folder inside ``out`` first and moved into place
        only when all files are complete. Returns the written paths."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".cartsim-", dir=out))
        try:
            traj = tmp / f"trajectories.{fmt}"
            if fmt == "csv":
                self.trajectories.to_csv(traj, index=False)
            else:
                self.trajectories.to_parquet(traj, index=False)
            (tmp / "summary.json").write_text(json.dumps(self.summary(), indent=2), encoding="utf-8")
            plot_comparison(self.results, tmp / "compare.png", self.title)
            written = []
            for f in sorted(tmp.iterdir()):
                os.replace(f, out / f.name)
                written.append(out / f.name)
            return written
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def compare(therapy_a: str, therapy_b: str, disease: str = "ms", days: float | str = 1095) -> Comparison:
    """Simulate the typical patient of ``disease`` on each therapy (antibodies at their default regimen).

    >>> c = compare("kyv-101", "ocrelizumab", "ms", 200)
    >>> [len(r.dosing) for r in c.results]
    [1, 3]
    """
    horizon = check_inputs(therapy_a, therapy_b, disease, days)
    a = simulate(therapy_a, disease, horizon)
    b = a if therapy_b == therapy_a else simulate(therapy_b, disease, horizon)
    return Comparison(disease, horizon, (a, b))
