"""Calibration of cytokine release across CAR-T products with one rule for all of them.

In cartsim every product releases IL-6 by the same three routes (``model/toxicity.py``): per target cell killed,
per activated (dividing) CAR-T effector, and through macrophages and monocytes activated by dying target cells.
A product differs only by what it is (target, costimulation, dose, an mRNA or a viral-vector CAR) and a setting
only by its disease (target burden) and lymphodepletion. Seven parameters are fitted together on a grid:
``il6_per_kill``, ``il6_per_activated_car``, ``crs_il6_grade1`` (the IL-6 signal of a fever, CRS grade 1),
``il6_myeloid_k50`` (the kill rate for half-maximal myeloid release), ``crs_toci_resistant`` (the share of the
CRS signal that tocilizumab does not block) and ``mrna_car_signal`` (how strongly an mRNA CAR kills and
activates its cell, relative to a CAR from a viral vector) and ``icans_grade1`` (the CNS cytokine exposure of
ICANS grade 1), to the CRS and ICANS of six trials: ZUMA-1
(axicabtagene ciloleucel, CD28, large B-cell lymphoma, n=101), the Erlangen series (MB-CART19.1, 4-1BB, SLE,
myositis and systemic sclerosis, n=15), KYSA-1 (KYV-101, CD28, lupus nephritis, n=2), Kyverna's first 30
autoimmune patients on KYV-101 (CRS grade 3 or more and ICANS only: the CRS count of any grade was read
truncated; the 2 KYSA-1 patients are probably among them), CT103A in NMOSD
(equecabtagene autoleucel, BCMA, 4-1BB, n=12) and MG-001 (Descartes-08, an mRNA BCMA CAR-T without
lymphodepletion, in myasthenia gravis, n=14).

Objective: the binomial deviance of the trials' counts (-2 log-likelihood against each observed share), the
natural measure for counts of patients, which weighs 0 of 14 and 12 of 12 without special cases. The model's
shares come from the virtual populations of ``cartsim validate`` (n=200, seed 20221), kept half a patient away
from 0 and 1 so that a count the population cannot show costs a finite amount. Held out as predictions (not in
the objective): JULIET and ELIANA (tisa-cel), KYSA-6 (KYV-101 in MG), the progressive-MS series of eque-cel,
the Mackensen 2022 subset of the Erlangen series, and the product table's other rows (bench/product_toxicity.py
prints all of them).

    python bench/calibrate_crs.py [--quick] [--out bench/calibration_crs.json]

It prints the best grid points and whether the parameter table holds them. Nothing in the package reads its
output.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from grid_search import binomial_deviance, grid_search, iiv_reference, with_values

from cartsim import endpoints
from cartsim.model import build_model
from cartsim.population import sample
from cartsim.scenario import Scenario
from cartsim.validate import DESCARTES08_SAFETY_DAYS, POP_N, SEED

GRID = {
    # killing releases IL-6 (the dying cells' contents); where the trials cannot tell it from 0, the grid keeps it
    "il6_per_kill": [0.003125, 0.0],
    "il6_per_activated_car": [0.05, 0.1, 0.2],
    "crs_il6_grade1": [15.0, 20.0, 30.0],
    "il6_myeloid_k50": [31250.0, 62500.0, 125000.0],
    "crs_toci_resistant": [0.15, 0.2, 0.25],
    # CRS bounds it from above only: 0.0025, 0.005 and 0.01 tied on the grid before this one, which keeps the
    # largest, the signal closest to a viral-vector CAR's
    "mrna_car_signal": [0.01],
    "icans_grade1": [100.0, 150.0, 225.0],
}
QUICK_GRID = {"il6_per_kill": [0.003125], "il6_per_activated_car": [0.1, 0.2], "crs_il6_grade1": [20.0, 30.0],
              "il6_myeloid_k50": [62500.0], "crs_toci_resistant": [0.2], "mrna_car_signal": [0.01],
              "icans_grade1": [150.0, 225.0]}
HORIZON = 60.0   # days: CRS and ICANS are over within the first weeks


@dataclass(frozen=True)
class Trial:
    """A trial's setting in the model and what it observed: counts (events, patients) by metric."""
    therapy: str
    disease: str
    days: float
    counts: dict[str, tuple[int, int]]
    dose: str | None = None       # the trial's dose where it differs from the product's


TRIALS = {
    # Neelapu SS et al. NEJM 2017;377:2531 (n=101): CRS 93%, grade >= 3 13%; neurologic events 64%, grade >= 3 28%
    "zuma1": Trial("axi-cel", "lbcl", HORIZON, {"crs_any": (94, 101), "crs_grade3plus": (13, 101),
                                               "icans_any": (65, 101), "icans_grade3plus": (28, 101)}),
    # Mueller F et al. NEJM 2024;390:687 (n=15): CRS grade 1 in 10, grade 2 in 1; ICANS grade 1 in 1
    "erlangen": Trial("mb-cart19", "sle", HORIZON, {"crs_any": (11, 15), "crs_grade2plus": (1, 15),
                                                   "icans_any": (1, 15)}),
    # Qin C et al. Signal Transduct Target Ther 2023;8:5 (n=12): CRS in all, grade 1 or 2 only
    "ct103a": Trial("eque-cel", "nmosd", HORIZON, {"crs_any": (12, 12), "crs_grade3plus": (0, 12)}),
    # KYSA-1 (KYV-101, CD28, 0.5e8 cells in lupus nephritis; Lupus Sci Med 2024;11(Suppl 1):A109, n=2): "both
    # patients experienced grade 1 cytokine release syndrome consisting of fever"
    "kysa1": Trial("kyv-101", "sle", HORIZON, {"crs_any": (2, 2), "crs_grade2plus": (0, 2)}, dose="0.5e8 cells"),
    # Kyverna's first 30 autoimmune patients on KYV-101 at 1e8 cells (lupus nephritis, systemic sclerosis, MG, MS,
    # stiff person syndrome; EULAR 2024, as reported by Endpoints News; run as lupus): no CRS of grade 3 or more,
    # ICANS in 3
    "kyv101_30": Trial("kyv-101", "sle", HORIZON, {"crs_grade3plus": (0, 30), "icans_any": (3, 30)}),
    # Granit V et al. Lancet Neurol 2023;22:578 (MG-001, n=14): no CRS, no neurotoxicity
    "mg001": Trial("descartes-08", "mg", DESCARTES08_SAFETY_DAYS, {"crs_any": (0, 14), "icans_any": (0, 14)}),
}


def _binomial(events: int, patients: int) -> tuple[float, float]:
    """A trial's observed share and its binomial standard error (recorded and printed beside the fit)."""
    p = events / patients
    return p, float(np.sqrt(max(p * (1 - p), 0.25 / patients) / patients))


OBSERVED = {f"{name}_{metric}": _binomial(*counts)
            for name, trial in TRIALS.items() for metric, counts in trial.counts.items()}
COUNTS = {f"{name}_{metric}": counts for name, trial in TRIALS.items() for metric, counts in trial.counts.items()}


def deviance(metrics: dict[str, float]) -> float:
    """Binomial deviance of the trials' counts given the model's shares (each at most half a patient of the
    virtual population from 0 and 1)."""
    return sum(binomial_deviance(metrics[key], k, n, edge=0.5 / (POP_N + 1)) for key, (k, n) in COUNTS.items())


# the checks of cartsim validate whose observed values the objective uses (they are labelled calibrated)
TARGETS = {"zuma1_crs_any": ("zuma1_crs_icans", "pop_crs_any"),
           "zuma1_crs_grade3plus": ("zuma1_crs_icans", "pop_crs_grade3plus"),
           "zuma1_icans_any": ("zuma1_crs_icans", "pop_icans_any"),
           "zuma1_icans_grade3plus": ("zuma1_crs_icans", "pop_icans_grade3plus"),
           "erlangen_crs_any": ("muller2024_autoimmune_toxicity", "pop_crs_any"),
           "erlangen_crs_grade2plus": ("muller2024_autoimmune_toxicity", "pop_crs_grade2plus"),
           "erlangen_icans_any": ("muller2024_autoimmune_toxicity", "pop_icans_any"),
           "ct103a_crs_any": ("ct103a_nmosd", "pop_crs_any"),
           "ct103a_crs_grade3plus": ("ct103a_nmosd", "pop_crs_grade3plus"),
           "mg001_crs_any": ("descartes08_mg_safety", "pop_crs_any"),
           "mg001_icans_any": ("descartes08_mg_safety", "pop_icans_any"),
           "kysa1_crs_any": ("kysa1_crs", "pop_crs_any"), "kysa1_crs_grade2plus": ("kysa1_crs", "pop_crs_grade2plus"),
           "kyv101_30_crs_grade3plus": ("kyv101_autoimmune_safety", "pop_crs_grade3plus"),
           "kyv101_30_icans_any": ("kyv101_autoimmune_safety", "pop_icans_any")}
# labelled calibrated in cartsim validate; Mackensen 2022's 5 patients are among the Erlangen series' 15
FITTED_CHECKS = set(TARGETS.values()) | {("mackensen2022_crs", "pop_fraction_any")}


READ_OUT = ("crs_il6_grade1", "icans_grade1")   # grade thresholds: they read the signals, they do not change them


def shares(trial: Trial, values: dict[str, float]) -> dict[str, float]:
    """The model's shares of patients with CRS and ICANS by grade in the trial's setting; ``crs_il6_grade1`` and
    ``icans_grade1`` are applied to the simulated signals (read-outs: grades 2-4 and the tocilizumab rescue keep
    the table's thresholds)."""
    model = build_model()
    table = model.table
    sc = Scenario.make(trial.therapy, trial.disease, trial.days, dose=trial.dose)
    in_model = {k: v for k, v in values.items() if k not in READ_OUT}
    ref = iiv_reference(model, in_model)
    pop = with_values(sample(ref, sc.disease, POP_N, SEED, course=sc.course), in_model, ref.table)
    sol = sc.run(pop, columns=endpoints.COLUMNS)
    ep = endpoints.compute(sol, table, population=pop)
    ok = ep.crs_max_grade.notna().to_numpy()
    thresholds = [values.get("crs_il6_grade1", table.value("crs_il6_grade1"))] + [
        table.value(f"crs_il6_grade{g}") for g in range(2, 5)]
    crs = endpoints.grade(np.nanmax(sol.column("il6_signal"), axis=1), thresholds)
    crs = np.where(ep.tocilizumab_given, np.maximum(crs, 2), crs)[ok]
    icans_thresholds = [values.get("icans_grade1", table.value("icans_grade1"))] + [
        table.value(f"icans_grade{g}") for g in range(2, 5)]
    icans = endpoints.grade(np.nanmax(sol.column("icans_signal"), axis=1), icans_thresholds)[ok]
    return {"crs_any": float(np.mean(crs >= 1)), "crs_grade2plus": float(np.mean(crs >= 2)),
            "crs_grade3plus": float(np.mean(crs >= 3)), "icans_any": float(np.mean(icans >= 1)),
            "icans_grade3plus": float(np.mean(icans >= 3))}


def score(values: dict[str, float]) -> dict[str, float]:
    out = {}
    for name, trial in TRIALS.items():
        out |= {f"{name}_{k}": v for k, v in shares(trial, values).items() if k in trial.counts}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 points over 3 of the 6 parameters, to check the script runs")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("calibration_crs.json"))
    args = ap.parse_args()
    grid_search(QUICK_GRID if args.quick else GRID, score, OBSERVED, args.out, objective=deviance,
                extra={"trials": {k: t.counts for k, t in TRIALS.items()}}, progress=True)

if __name__ == "__main__":
    main()
