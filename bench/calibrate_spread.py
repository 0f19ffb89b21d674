"""Reproducible calibration of how much the CAR-T expansion rate varies between patients (the between-patient
SD, omega, of ``car_r_exp``).

The spread of the CAR-T peak between patients is published for one product and setting: tisagenlecleucel in
children and young adults with B-ALL, geometric CV 163% for Cmax (79 responding patients) and 193% for AUC0-28d
(78), Kymriah EU SmPC Table 7: a log SD of 1.14 and 1.25. In cartsim the peak's spread comes from the expansion
rate's (effectors in their proliferation programme do not contract, so Stein 2019's variability of the
contraction rate acts after the peak, as in Stein's own model), from the dose per kg and from the leukaemic
burden. One value is fitted, the SD of the expansion rate, by a root search (SciPy's brentq) to the Cmax log
SD in the B-ALL population of ``cartsim validate``; the AUC0-28d spread stays a prediction. The value is written
by hand into parameters.toml (``iiv_omega`` of ``car_r_exp``).

    python bench/calibrate_spread.py [--out bench/calibration_spread.json]
"""

from __future__ import annotations

from root_fit import fit_one_main

from cartsim.validate import kymriah_ball_spread

NAME = "car_r_exp"
KEY = ("kymriah_ball_spread", "pop_log_sd_cmax")
TARGET = 1.14               # sqrt(ln(1 + 1.634^2)), Kymriah SmPC Table 7
FITTED_CHECKS = {KEY}       # labelled calibrated in cartsim validate
BRACKET = (0.02, 0.4)


def main() -> None:
    fit_one_main(__doc__, "calibration_spread.json", f"{NAME}.iiv_omega", lambda w: kymriah_ball_spread({NAME: w}),
                 KEY, TARGET, BRACKET, method="brentq on the SD in [0.02, 0.4], xtol 1e-3, 2 significant digits",
                 digits=2, label=f"{NAME} omega")


if __name__ == "__main__":
    main()
