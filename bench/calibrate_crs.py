"""Calibration of cytokine release across CAR-T products with one rule for all of them.

In cartsim every product releases IL-6 by the same three routes (``model/toxicity.py``): per target cell killed,
per activated (dividing) CAR-T effector, and through macrophages and monocytes activated by dying target cells.
A product differs only by what it is (target, costimulation, dose, an mRNA or a viral-vector CAR) and a setting
only by its disease (target burden) and lymphodepletion. Seven parameters are fitted together: on a grid,
``il6_per_kill``, ``il6_per_activated_car``, ``il6_myeloid_k50`` (the kill rate for half-maximal myeloid
release), ``crs_toci_resistant`` (the share of the CRS signal that tocilizumab does not block) and
``mrna_car_signal`` (how strongly an mRNA CAR kills and activates its cell, relative to a CAR from a viral
vector); at each grid point, on fine scans of their own, the two grade-1 thresholds ``crs_il6_grade1`` (the IL-6
signal of a fever) and ``icans_grade1`` (the CNS cytokine exposure of ICANS grade 1). The thresholds read the
simulated signals without changing them, so one simulation per grid point serves every value of their scans
(a profile of the deviance over each); the record gives each threshold's profile at the best point and its
profile-likelihood 95% interval. All seven are fitted to the CRS and ICANS of six trials: ZUMA-1
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
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from grid_search import binomial_deviance, grid_search, iiv_reference, with_values

from cartsim import endpoints
from cartsim.model import build_model, load_table
from cartsim.outputs.files import write_text_atomic
from cartsim.population import sample
from cartsim.scenario import Scenario
from cartsim.validate import DESCARTES08_SAFETY_DAYS, POP_N, SEED

# the model's parameters (the grade-1 thresholds are fitted at each point on scans of their own, READ_OUT below);
# steps of about sqrt(2) where a simulation per point leaves room for them
GRID = {
    # killing releases IL-6 (the dying cells' contents); where the trials cannot tell it from 0, the grid keeps it
    "il6_per_kill": [0.003125, 0.0],
    "il6_per_activated_car": [0.05, 0.07, 0.1, 0.14, 0.2],
    "il6_myeloid_k50": [31250.0, 44200.0, 62500.0, 88400.0, 125000.0],
    "crs_toci_resistant": [0.15, 0.2, 0.25],
    # CRS bounds it from above only: 0.0025, 0.005 and 0.01 tied on the grid before this one, which keeps the
    # largest, the signal closest to a viral-vector CAR's
    "mrna_car_signal": [0.01],
}
QUICK_GRID = {"il6_per_kill": [0.0], "il6_per_activated_car": [0.07, 0.1], "il6_myeloid_k50": [62500.0],
              "crs_toci_resistant": [0.2], "mrna_car_signal": [0.01]}
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


# The grade-1 thresholds read the simulated signals; they do not change them. So they are not grid dimensions:
# at each grid point the signals are simulated once and each threshold is fitted on a fine scan (a profile of the
# deviance over it), steps of 2^(1/16) (4.4%), values to 3 significant figures. The ICANS scan stays below
# icans_grade2's range (267 pg/mL) so that the grades keep their order.
def _scan(low: float, high: float) -> np.ndarray:
    steps = int(round(16 * np.log2(high / low)))
    return np.unique([float(f"{v:.3g}") for v in low * 2.0 ** (np.arange(steps + 1) / 16)])


READ_OUT = {"crs_il6_grade1": _scan(10.0, 40.0), "icans_grade1": _scan(100.0, 250.0)}
# the metrics each threshold moves (grade 2 and above keep the table's thresholds and the tocilizumab rescue)
READ_OUT_METRICS = {"crs_il6_grade1": "crs_any", "icans_grade1": "icans_any"}


@dataclass(frozen=True)
class Signals:
    """A trial's simulated peak CRS and ICANS signals per patient and who was given tocilizumab."""
    crs_signal: np.ndarray
    icans_signal: np.ndarray
    tocilizumab: np.ndarray


def simulate(trial: Trial, values: dict[str, float]) -> Signals:
    """The peak signals of the trial's virtual population (``cartsim validate``'s) at the model values ``values``."""
    model = build_model()
    sc = Scenario.make(trial.therapy, trial.disease, trial.days, dose=trial.dose)
    ref = iiv_reference(model, values)
    pop = with_values(sample(ref, sc.disease, POP_N, SEED, course=sc.course), values, ref.table)
    sol = sc.run(pop, columns=endpoints.COLUMNS)
    ep = endpoints.compute(sol, model.table, population=pop)
    ok = ep.crs_max_grade.notna().to_numpy()
    return Signals(np.nanmax(sol.column("il6_signal"), axis=1)[ok], np.nanmax(sol.column("icans_signal"), axis=1)[ok],
                   ep.tocilizumab_given.to_numpy()[ok])


def shares(signals: Signals, grade1: dict[str, float]) -> dict[str, float]:
    """The shares of patients with CRS and ICANS by grade, with the grade-1 thresholds ``grade1`` (by parameter
    name, as ``READ_OUT``) and the table's others."""
    table = load_table()
    crs = endpoints.grade(signals.crs_signal, [grade1["crs_il6_grade1"]] + [
        table.value(f"crs_il6_grade{g}") for g in range(2, 5)])
    crs = np.where(signals.tocilizumab, np.maximum(crs, 2), crs)
    icans = endpoints.grade(signals.icans_signal, [grade1["icans_grade1"]] + [
        table.value(f"icans_grade{g}") for g in range(2, 5)])
    return {"crs_any": float(np.mean(crs >= 1)), "crs_grade2plus": float(np.mean(crs >= 2)),
            "crs_grade3plus": float(np.mean(crs >= 3)), "icans_any": float(np.mean(icans >= 1)),
            "icans_grade3plus": float(np.mean(icans >= 3))}


def metrics_at(signals: dict[str, Signals], grade1: dict[str, float]) -> dict[str, float]:
    out = {}
    for name, trial in TRIALS.items():
        out |= {f"{name}_{k}": v for k, v in shares(signals[name], grade1).items() if k in trial.counts}
    return out


def _deviances(signals: dict[str, Signals], name: str, grade1: dict[str, float]) -> list[float]:
    """The deviance, over the metrics that threshold ``name`` moves, at each value of its scan (the other threshold
    at its value in ``grade1``)."""
    metric = READ_OUT_METRICS[name]
    out = []
    for v in READ_OUT[name]:
        m = metrics_at(signals, grade1 | {name: v})
        out.append(sum(binomial_deviance(m[k], *COUNTS[k], edge=0.5 / (POP_N + 1)) for k in m if k.endswith(metric)))
    return out


def _profile(signals: dict[str, Signals], name: str, grade1: dict[str, float]) -> float:
    """The scan value of threshold ``name`` with the least deviance over the metrics it moves (the first of ties)."""
    return float(READ_OUT[name][int(np.argmin(_deviances(signals, name, grade1)))])


def score(values: dict[str, float]) -> dict[str, float]:
    """The trials' shares at the grid point ``values``, with both grade-1 thresholds fitted on their scans (each
    moves metrics of its own, so each is profiled with the other at the table's value); the fitted thresholds
    are returned with the shares."""
    signals = {name: simulate(trial, values) for name, trial in TRIALS.items()}
    in_table = {name: load_table().value(name) for name in READ_OUT}
    fitted = {name: _profile(signals, name, in_table) for name in READ_OUT}
    return metrics_at(signals, fitted) | fitted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 grid points around the table values, to check the script runs")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("calibration_crs.json"))
    args = ap.parse_args()
    grid = QUICK_GRID if args.quick else GRID
    best = grid_search(grid, score, OBSERVED, args.out, objective=deviance,
                       extra={"trials": {k: t.counts for k, t in TRIALS.items()}}, progress=True,
                       profiled=list(READ_OUT))
    # each threshold's profile at the best grid point (the other parameters held there): its deviance over the
    # scan, and the scan values within 3.84 (the 95% point of chi-squared with 1 degree of freedom) of the least,
    # the threshold's profile-likelihood interval
    signals = {name: simulate(trial, {k: best[k] for k in grid}) for name, trial in TRIALS.items()}
    profiles = {}
    for name in READ_OUT:
        dev = _deviances(signals, name, {k: best[k] for k in READ_OUT})
        inside = [float(v) for v, d in zip(READ_OUT[name], dev) if d <= min(dev) + 3.84]
        profiles[name] = {"scan": READ_OUT[name].tolist(), "deviance": dev, "interval_95": [min(inside), max(inside)]}
        print(f"{name}: {best[name]:g}, profile-likelihood 95% interval {min(inside):g}-{max(inside):g}")
    record = json.loads(args.out.read_text())
    write_text_atomic(args.out, json.dumps(record | {"read_out_profiles": profiles}, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
