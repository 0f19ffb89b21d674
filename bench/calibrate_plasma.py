"""Reproducible calibration of plasma-cell regeneration after an anti-BCMA CAR-T (``model/bcells.py``).

An anti-BCMA CAR-T kills every plasma cell; serum IgG comes back only as new plasmablasts refill the emptied
survival niches of the long-lived (CD19-) plasma cells. Two parameters set how fast: the rate at which naive B
cells become plasmablasts (``b_k_naive_to_pb``; primary, extrafollicular responses), which is the plasmablast
supply while memory B cells, hit by lymphodepletion, regrow only over years, and the share of plasmablasts
that settle when the niches are free (``pc_settle_share_empty``). One number constrains them, and only
together: IgG had recovered one year after anti-BCMA CAR-T in 8 of 15 myeloma patients whose myeloma did not
make IgG (Wang Y et al. Blood Adv 2021;5:5290; ``bcma_cart_igg_recovery``). Raising either raises that share,
so the settle share is held at its assumed value (0.9: free niches take nearly every plasmablast that reaches
them) and the naive-to-plasmablast rate is fitted by a root search (SciPy's brentq) to 8/15. The share is a
step function of the rate over the check's 200 patients: brentq finds a step that crosses the target.

Neither parameter moves the steady state (the plasmablast pool and the niche-entry rate are derived from the
baseline counts) or the IgG course under ocrelizumab or after CD19 CAR-T (the niches stay full there).
Autoreactive plasmablasts come from the autoreactive memory clone only, but they share the steady-state
niche-entry rate, which falls as naive cells add plasmablasts, so more of the autoantibody comes from plasmablasts
at steady state: after a change to the naive rate, rerun bench/calibrate_autoimmune.py (NMOSD's pc_auto_death).

    python bench/calibrate_plasma.py [--out bench/calibration_plasma.json]
"""

from __future__ import annotations

import math

from product_table import count
from root_fit import fit_one_main

from cartsim.validate import bcma_cart_igg_recovery, targets

NAME = "b_k_naive_to_pb"
KEY = ("bcma_cart_igg_recovery", "pop_fraction_igg_recovered_day_365")
_EVENTS, _PATIENTS = count(targets()[KEY[0]]["observed"]["igg_recovered_year_1"])
TARGET = _EVENTS / _PATIENTS
FITTED_CHECKS = {KEY}       # labelled calibrated in cartsim validate
# above 0.0036/day the naive death rate that keeps the steady state (turnover - activation - this) is negative
BRACKET = (math.log(0.0002), math.log(0.0035))


def main() -> None:
    fit_one_main(__doc__, "calibration_plasma.json", NAME, lambda r: bcma_cart_igg_recovery({NAME: r}), KEY, TARGET,
                 BRACKET, method="brentq on the log rate in [0.0002, 0.0035]/day, xtol 1e-3, 2 significant digits; "
                                 "pc_settle_share_empty held at the table's value",
                 digits=2, to_value=math.exp, label=f"{NAME} (/day)")


if __name__ == "__main__":
    main()
