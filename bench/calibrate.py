"""Reproducible calibration of cartsim's fitted CAR-T and B-lineage parameters.

A grid search over the parameters whose kind is ``calibrated`` in the parameter
table, scored against the published observations of the calibration targets
(the observed values, not the acceptance windows): the Erlangen lupus series
(Mackensen 2022), the tisagenlecleucel kinetics of Stein 2019, the median
CAR-T peak of axicabtagene ciloleucel in lymphoma (ZUMA-1), the similar
expansion of one 4-1BB product in lupus and in lymphoma (Mueller 2025), the
median clearance of a 4-1BB product from the blood in lupus (YTB323), the
similar expansion of tisagenlecleucel and axicabtagene ciloleucel in lymphoma
(Clin Cancer Res 2022) and the median peak day of lisocabtagene maraleucel in
lymphoma (TRANSCEND). The last two inform the two sizes of exhaustion, which are
fitted with the other four values held (see GRID). The
immunity against the CAR that clears it is fitted on a grid of its own with the
same objective (bench/calibrate_anti_car.py), the expansion parameters here
with its values held. The same
virtual population (n=200, seed 20221) as ``cartsim validate`` is used, so the
script shows exactly why the table holds the values it does.

    python bench/calibrate.py [--quick] [--out bench/calibration.json]

It prints the best grid points and whether the parameter table matches the
best one. Nothing in the package reads its output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from grid_search import grid_search, with_values
from product_table import row

from cartsim import endpoints
from cartsim.model import build_model
from cartsim.population import sample, typical
from cartsim.scenario import Scenario
from cartsim.validate import JULIET_DOSE, JULIET_LYMPHODEPLETION, TRANSCEND_DOSE, YTB323_DOSE

# The two sizes of exhaustion are fitted on a grid of their own with the other four held at the values of the earlier
# six-dimensional grid (which had neither lymphoma check below): over all six this objective falls along a ridge of
# lower car_k_stim and higher car_k_kill (6.4 at 31.25 and 0.02, 4.2 at 7.8 and 0.08, its least beyond any grid
# tried), a direction the data do not bound, so the autoimmune kinetics are held where they were fitted.
GRID = {
    "car_k_stim": [62.5],
    "car_k_kill": [0.01],
    "car_program": [2.5],
    "prog_ld_sensitivity": [4.0],
    "car_k_exh": [0.1, 0.14, 0.2, 0.28, 0.4],
    "cd28_exhaustion_factor": [2.0, 2.8, 4.0, 5.7, 8.0, 11.3],
}
# the earlier six-dimensional grid's values of the four held (their ranges in the parameter table)
EARLIER_GRID = {"car_k_stim": [31.25, 62.5, 125.0], "car_k_kill": [0.005, 0.01, 0.02], "car_program": [2.0, 2.5, 3.0],
                "prog_ld_sensitivity": [3.5, 4.0, 4.5]}
QUICK_GRID = {"car_k_stim": [62.5], "car_k_kill": [0.01], "car_program": [2.5],
              "prog_ld_sensitivity": [4.0], "car_k_exh": [0.14, 0.2, 0.28],
              "cd28_exhaustion_factor": [4.0]}

# ZUMA-1's median CAR-T peaks by response group (cells/uL), read from the product table
_ZUMA1_PEAKS = row("axi-cel", "ZUMA-1")["cmax"]["value"].values()
ZUMA1_PEAK_LOW, ZUMA1_PEAK_HIGH = min(_ZUMA1_PEAKS), max(_ZUMA1_PEAKS)

# observed value and the scale of a unit error (about one standard error of the observation)
OBSERVED = {
    "sle_reappearance_mean": (110.0, 32.0 / np.sqrt(5)),   # Mackensen 2022, mean +- SD over n=5
    "sle_reappearance_sd": (32.0, 15.0),
    "sle_below1_day7": (1.0, 0.05),                        # "undetectable within the first week"
    "sle_cart_tmax_median": (9.0, 2.0),                    # Erlangen series, peak about day 9
    "ball_tmax": (9.3, 1.5),                               # Stein 2019 Table 1
    "ball_contraction_halflife": (np.log(2) / 0.16, 1.5),
    # ZUMA-1 (Neelapu 2023; the product table's row): median CAR-T peaks of 12.08, 35.27 and 65.76/uL in its three
    # response groups; the median of all patients lies between them: their geometric middle, on the log scale with
    # a quarter of the log-span as its scale
    "lbcl_peak_log": (float(np.log(np.sqrt(ZUMA1_PEAK_LOW * ZUMA1_PEAK_HIGH))),
                      float(np.log(ZUMA1_PEAK_HIGH / ZUMA1_PEAK_LOW) / 4)),
    # Stein 2019: persistence rate beta 0.0032/day (half-life 217 days; validate accepts 120-400 days)
    "ball_persistence_rate": (0.0032, 0.001),
    # Mueller 2025: "similar expansion" of MB-CART19.1 in lupus and lymphoma; log peak ratio 0, 3-fold at 2 units
    "similar_peak_log_ratio": (0.0, float(np.log(3) / 2)),
    # YTB323 in SLE (ACR Convergence 2025 abstract, 21 patients): "median time of clearance from peripheral blood of
    # 2 months"; the abstract rounds to months, so a unit error is half a month
    "ytb323_persistence_median": (60.0, 15.0),
    # tisa-cel and axi-cel in large B-cell lymphoma "displayed similar expansion kinetics" (Clin Cancer Res
    # 2022;28:3378, 61 patients); log peak ratio 0, 3-fold at 2 units (as Mueller 2025)
    "lbcl_tisa_axi_log_ratio": (0.0, float(np.log(3) / 2)),
    # liso-cel in lymphoma (TRANSCEND): median time of maximal expansion 11 days (Breyanzi SmPC 5.2)
    "liso_tmax": (11.0, 2.0),
}


# the checks of cartsim validate whose observed values the objective uses (they are labelled calibrated)
TARGETS = {"sle_reappearance_mean": ("mackensen2022_bcell_reappearance", "pop_mean"),
           "sle_reappearance_sd": ("mackensen2022_bcell_reappearance", "pop_sd"),
           "sle_below1_day7": ("autoimmune_bcell_depletion_onset", "pop_fraction_below_1_per_uL_at_day_7"),
           "sle_cart_tmax_median": ("autoimmune_cart_tmax", "pop_median"),
           "ball_tmax": ("stein2019_multiphasic_kinetics", "typical_tmax_day"),
           "ball_contraction_halflife": ("stein2019_multiphasic_kinetics", "typical_contraction_halflife_day"),
           "lbcl_peak_log": ("zuma1_cart_peak", "pop_median"),
           "ball_persistence_rate": ("stein2019_multiphasic_kinetics", "typical_persistence_halflife_day"),
           "similar_peak_log_ratio": ("autoimmune_vs_cancer_toxicity", "pop_median_cart_peak_ratio_lymphoma_to_sle"),
           "ytb323_persistence_median": ("ytb323_sle_kinetics", "pop_median_persistence"),
           "lbcl_tisa_axi_log_ratio": ("lbcl_tisacel_axicel_expansion", "pop_median_cart_peak_ratio_tisacel_to_axicel"),
           "liso_tmax": ("transcend_liso_cel", "pop_median_tmax")}
FITTED_CHECKS = set(TARGETS.values())      # labelled calibrated in cartsim validate


def _lymphoma_peaks(model, product: str, values: dict[str, float], **setting) -> tuple[np.ndarray, np.ndarray]:
    """Each patient's CAR-T peak in blood (cells/uL) over the first 60 days of ``product`` in lymphoma, and its day
    (``setting``: a trial's dose and lymphodepletion)."""
    sc = Scenario.make(product, "lbcl", 60, **setting)
    sol = sc.run(with_values(sample(model, sc.disease, 200, 20221), values, model.table), columns=("car_blood_per_uL",))
    return sol.values[:, :, 0].max(axis=1), sol.times[sol.values[:, :, 0].argmax(axis=1)]


def score(values: dict[str, float]) -> dict[str, float]:
    model = build_model()
    sle = Scenario.make("mb-cart19", "sle", 365)
    pop = with_values(sample(model, sle.disease, 200, 20221), values, model.table)
    sol = sle.run(pop, columns=endpoints.COLUMNS)
    ep = endpoints.compute(sol, model.table)
    b7 = sol.values[:, np.searchsorted(sol.times, 7.0), sol.columns.index("b_blood_per_uL")]
    ball = Scenario.make("tisa-cel", "b-all", 365)
    tsol = ball.run(with_values(typical(model, ball.disease), values, model.table), columns=("car_blood_per_uL",))
    car = tsol.values[:, :, 0]
    tmax = tsol.times[np.argmax(car, axis=1)]
    contraction, persistence = endpoints.persistence_halflives(tsol.times, car, tmax)
    (peak, _), (same_peak, _) = (_lymphoma_peaks(model, product, values) for product in ("axi-cel", "mb-cart19"))
    tisa, _ = _lymphoma_peaks(model, "tisa-cel", values, dose=JULIET_DOSE, lymphodepletion=JULIET_LYMPHODEPLETION)
    _, liso_tmax = _lymphoma_peaks(model, "liso-cel", values, dose=TRANSCEND_DOSE)
    ytb = Scenario.make("mb-cart19", "sle", 365, dose=YTB323_DOSE)
    ytb_ep = endpoints.compute(ytb.run(pop, columns=endpoints.COLUMNS), model.table)
    m = {
        "sle_reappearance_mean": float(ep.bcell_reappearance_day.mean()),
        "sle_reappearance_sd": float(ep.bcell_reappearance_day.std()),
        "sle_below1_day7": float((b7 < 1).mean()),
        "sle_cart_tmax_median": float(ep.cart_tmax_day.median()),
        "ball_tmax": float(tmax[0]),
        "ball_contraction_halflife": float(contraction[0]),
        "lbcl_peak_log": float(np.log(np.median(peak))),
        "ball_persistence_rate": float(np.log(2) / persistence[0]),
        "similar_peak_log_ratio": float(np.log(np.median(same_peak) / ep.cart_peak_per_uL.median())),
        "ytb323_persistence_median": float(ytb_ep.cart_persistence_day.astype(float).median()),
        "lbcl_tisa_axi_log_ratio": float(np.log(np.median(tisa) / np.median(peak))),
        "liso_tmax": float(np.median(liso_tmax)),
    }
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 9-point grid around the table values")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("calibration.json"))
    args = ap.parse_args()
    grid_search(QUICK_GRID if args.quick else GRID, score, OBSERVED, args.out)

if __name__ == "__main__":
    main()
