"""The grid search shared by the calibration scripts: score every grid point, print the best, record all.

Each script supplies its grid, its scoring function (the metrics that ``observed`` names, and any others) and
what else to record; the loss is the sum of the squared standardised differences from ``observed``; the best point is compared with the parameter table so a stale table is visible.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from cartsim.model import Model, build_model
from cartsim.model.parameters import ParameterTable
from cartsim.population import Population


def iiv_reference(model: Model, names: Iterable[str]) -> Model:
    """``model`` with each of ``names`` that has random effects but the value 0 set to 1, so that a population
    sampled from it keeps every patient's random effect (0 times any effect is 0) for :func:`with_values`."""
    zero = {n for n in names if model.table[n].iiv_omega > 0 and model.table.value(n) == 0}
    if not zero:
        return model
    records = [replace(r, value=1.0, uncertainty=None) if r.name in zero else r for r in model.table]
    return replace(model, table=ParameterTable(records))


def with_values(pop: Population, values: Mapping[str, float], table: ParameterTable) -> Population:
    """Set grid values; parameters with random effects keep each patient's ratio to the table value (sample
    ``pop`` from :func:`iiv_reference` when a table value is 0)."""
    scaled = {k: (pop.column(k) * v / table.value(k) if table[k].iiv_omega > 0 else v) for k, v in values.items()}
    return pop.with_parameters(scaled)


def binomial_deviance(share: float, events: float, n: int, edge: float) -> float:
    """Binomial deviance (2 x log-likelihood ratio) of ``events`` of ``n`` patients against a model ``share``
    kept ``edge`` from 0 and 1, so that a count the model cannot show costs a finite amount. ``events`` may be an
    observed share times ``n`` (not a whole number): the binomial coefficient cancels in the ratio."""
    p = min(max(share, edge), 1 - edge)
    dev = events * math.log(events / (n * p)) if events > 0 else 0.0
    dev += (n - events) * math.log((n - events) / (n * (1 - p))) if events < n else 0.0
    return 2.0 * dev


def loss(metrics: Mapping[str, float], observed: Mapping[str, tuple[float, float]]) -> float:
    """Sum over ``observed`` (name: (value, scale)) of ((metric - value) / scale) ** 2."""
    return float(sum(((metrics[k] - obs) / s) ** 2 for k, (obs, s) in observed.items()))


def grid_search(grid: Mapping[str, list[float]], score: Callable[[dict[str, float]], dict[str, float]],
                observed: Mapping[str, tuple[float, float]], out: Path, *, extra: Mapping[str, object] | None = None,
                progress: bool = False,
                objective: Callable[[Mapping[str, float]], float] | None = None,
                profiled: Iterable[str] = ()) -> dict[str, float]:
    """Score every point of ``grid``, print the ten best, write the record to ``out``; return the best point.
    ``objective``: the loss of a point's metrics (default: :func:`loss` against ``observed``). ``profiled``:
    parameters that ``score`` fits itself at each grid point and returns among its metrics (a profile over
    them); they belong to the best point and are compared with the table like the grid's."""
    objective = objective or (lambda metrics: loss(metrics, observed))
    table = build_model().table
    rows = []
    start = time.perf_counter()
    for point in itertools.product(*grid.values()):
        values = dict(zip(grid, point))
        metrics = score(values)
        rows.append({**values, **metrics, "loss": objective(metrics)})
        if progress:
            print(" ".join(f"{k}={v:.4g}" for k, v in rows[-1].items()), flush=True)
    rows.sort(key=lambda r: r["loss"])
    print(f"{len(rows)} grid points in {time.perf_counter() - start:.0f} s; best first:")
    profiled = list(profiled)
    fitted = [*grid, *profiled]
    keys = [*fitted, *observed, "loss"]
    print(" ".join(f"{k[:14]:>14}" for k in keys))
    for r in rows[:10]:
        print(" ".join(f"{r[k]:>14.4g}" for k in keys))
    best = {k: rows[0][k] for k in fitted}
    in_table = {k: table.value(k) for k in fitted}
    print("best:", best)
    print("table:", in_table, "(matches)" if best == in_table else "(DIFFERS: update data/parameters.toml)")
    record = {"grid": grid, **({"profiled": profiled} if profiled else {}),
              "observed": observed, **(extra or {}), "best": best, "rows": rows}
    out.write_text(json.dumps(record, indent=1, default=float) + "\n")
    return best
