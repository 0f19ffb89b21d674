"""Reproducible calibration of the two fitted toxicity parameters.

CRS and ICANS in B-cell lymphoma are driven by the myeloid amplification of
IL-6 (macrophages and monocytes activated by dying target cells, saturable in
the target kill rate; ``model/toxicity.py``). Its ceiling ``il6_myeloid_max``
is set from the IL-6 levels of the most severe CRS and its Hill coefficient is
assumed; two parameters are fitted on a grid:

- ``il6_myeloid_k50``: the target kill rate for half-maximal myeloid release,
- ``crs_toci_resistant``: the share of the CRS cytokine signal that
  tocilizumab does not block,

scored against the observed ZUMA-1 toxicity (axicabtagene ciloleucel in large
B-cell lymphoma, Neelapu 2017, n=101: CRS any 93%, grade >= 3 13%, ICANS any
64%, grade >= 3 28%) and the observed any-grade CRS of the Erlangen lupus
series (Mackensen 2022, 3 of 5), with the virtual populations of
``cartsim validate`` (n=200, seed 20221). The observed values are used, not the
acceptance windows.

    python bench/calibrate_toxicity.py [--quick] [--out bench/calibration_toxicity.json]

It prints the best grid points and whether the parameter table holds the best
one. Nothing in the package reads its output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from grid_search import grid_search

from cartsim import endpoints
from cartsim.model import build_model
from cartsim.population import Population, sample
from cartsim.scenario import Scenario
from cartsim.validate import POP_N, SEED

GRID = {
    "il6_myeloid_k50": [50000.0, 100000.0, 150000.0, 200000.0, 300000.0, 500000.0, 750000.0, 1000000.0],
    "crs_toci_resistant": [0.1, 0.15, 0.2, 0.25, 0.3],
}
QUICK_GRID = {"il6_myeloid_k50": [300000.0, 500000.0, 750000.0], "crs_toci_resistant": [0.15]}
HORIZON = 60.0   # days: CRS and ICANS are over within the first weeks

ZUMA1_N = 101    # patients treated in ZUMA-1 phase 2 (Neelapu 2017)


def _binomial(p: float, n: int) -> tuple[float, float]:
    """Observed fraction and its standard error."""
    return p, float(np.sqrt(p * (1 - p) / n))


OBSERVED = {
    "zuma1_crs_any": _binomial(0.93, ZUMA1_N),
    "zuma1_crs_grade3plus": _binomial(0.13, ZUMA1_N),
    "zuma1_icans_any": _binomial(0.64, ZUMA1_N),
    "zuma1_icans_grade3plus": _binomial(0.28, ZUMA1_N),
    "sle_crs_any": (0.6, 0.22),          # grade 1 in 3 of 5 (Mackensen 2022), as in bench/calibrate.py
}


# the checks of cartsim validate whose observed values the objective uses (they are labelled calibrated)
TARGETS = {"zuma1_crs_any": ("zuma1_crs_icans", "pop_crs_any"),
           "zuma1_crs_grade3plus": ("zuma1_crs_icans", "pop_crs_grade3plus"),
           "zuma1_icans_any": ("zuma1_crs_icans", "pop_icans_any"),
           "zuma1_icans_grade3plus": ("zuma1_crs_icans", "pop_icans_grade3plus"),
           "sle_crs_any": ("mackensen2022_crs", "pop_fraction_any")}
FITTED_CHECKS = set(TARGETS.values())      # labelled calibrated in cartsim validate


def _with(pop: Population, values: dict[str, float], table) -> Population:
    """Set grid values; parameters with random effects keep each patient's ratio to the table value."""
    scaled = {k: (pop.column(k) * v / table.value(k) if table[k].iiv_omega > 0 else v) for k, v in values.items()}
    return pop.with_parameters(scaled)


def _max_grades(therapy: str, disease: str, values: dict[str, float]) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-patient maximal CRS and ICANS grades (solver failures left out, as in validate) and the failures."""
    model = build_model()
    sc = Scenario.make(therapy, disease, HORIZON)
    pop = _with(sample(model, sc.disease, POP_N, SEED), values, model.table)
    ep = endpoints.compute(sc.run(pop, columns=endpoints.COLUMNS), model.table)
    ok = ep.crs_max_grade.notna().to_numpy()
    return (ep.crs_max_grade[ok].to_numpy(int), ep.icans_max_grade[ok].to_numpy(int), int((~ok).sum()))


def score(values: dict[str, float]) -> dict[str, float]:
    crs, icans, failed = _max_grades("axi-cel", "lbcl", values)
    sle_crs, _, _ = _max_grades("mb-cart19", "sle", values)
    m = {
        "zuma1_crs_any": float(np.mean(crs >= 1)),
        "zuma1_crs_grade3plus": float(np.mean(crs >= 3)),
        "zuma1_icans_any": float(np.mean(icans >= 1)),
        "zuma1_icans_grade3plus": float(np.mean(icans >= 3)),
        "sle_crs_any": float(np.mean(sle_crs >= 1)),
    }
    m["zuma1_failed"] = failed
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 3-point grid around the table values")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("calibration_toxicity.json"))
    args = ap.parse_args()
    grid = QUICK_GRID if args.quick else GRID
    table = build_model().table
    fixed = {k: table.value(k) for k in ("il6_myeloid_max", "il6_myeloid_hill")}
    grid_search(grid, score, OBSERVED, args.out, extra={"fixed": fixed}, progress=True)

if __name__ == "__main__":
    main()
