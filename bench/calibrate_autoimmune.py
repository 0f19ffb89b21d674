"""Reproducible calibration of the NMOSD and myasthenia gravis models (``model/nmosd.py``, ``model/mg.py``).

NMOSD: three values, each fitted by a root search (SciPy's brentq) to one published number, in an order where
each fit leaves the earlier ones unchanged:

1. ``pc_auto_death`` of the nmosd disease (how long AQP4-IgG-making plasma cells live) to the 37% of
   inebilizumab patients whose AQP4-IgG fell at least 2-fold by day 197 (N-MOmentum; Pittock, AAN 2023);
2. ``nmosd_attack_rate`` (the nmosd disease's untreated rate) to 59.9% attack-free by day 197 on placebo
   (N-MOmentum end-of-study analysis, Cree 2024), expected over 1000 patients (no draws);
3. ``nmosd_attack_imax`` to the hazard ratio 0.272 of inebilizumab against placebo (Cree 2019); placebo
   patients' B cells stay at baseline, so it leaves fit 2 unchanged.

Myasthenia gravis, ADAPT (AChR+, cycle 1), where each arm gives three shares of patients: MG-ADL responders
(Howard 2021), at least 6 MG-ADL points better at a visit, and minimal symptom expression (MG-ADL 0 or 1) at a
visit (ADAPT post hoc, Can J Neurol Sci 2023 abstract P034). Each arm is fitted on a grid by the binomial
deviance of its three shares (responder shares are step functions of the values over a seeded population, so a
grid, not a gradient):

4. the placebo arm fits ``mg_placebo_mean``, ``mg_placebo_sd`` (the lasting improvement patients have whatever
   they are given) and ``mg_visit_sd`` (week-to-week swings). Without swings no placebo patient could be 6 points
   better at one visit while only 29.7% are 2 points better for 4 weeks in a row;
5. the efgartigimod arm fits ``mg_antibody_share`` and ``mg_junction_k50`` (the safety-factor threshold), with
   the placebo values of fit 4; the placebo arm has no antibody change, so fit 4 stays. The two lie on a ridge
   (a larger share with a lower threshold fits as well): the profile along it is printed and written;
6. ``mg_qmg_placebo_share`` to 14.1% QMG responders on placebo by brentq (the MG-ADL does not depend on it);
7. ``mg_qmg_antibody_share`` to 63.1% QMG responders on efgartigimod by brentq.

The values are written by hand into diseases.toml and parameters.toml.

    python bench/calibrate_autoimmune.py [--out bench/calibration_autoimmune.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path
from typing import Callable

from scipy.optimize import brentq

from cartsim.outputs.files import write_text_atomic
from cartsim.validate import adapt_mg, n_momentum_aqp4_igg, n_momentum_attacks

# (check id, metric) of cartsim validate that this script fits: observed value
TARGETS = {("n_momentum_aqp4_igg", "pop_fraction_2fold_fall_day_197"): 0.371,
           ("n_momentum_attacks", "pop_attack_free_placebo"): 0.599,
           ("n_momentum_attacks", "pop_hazard_ratio"): 0.272,
           ("adapt_mg", "pop_mg_adl_responders_placebo"): 0.297,
           ("adapt_mg", "pop_mg_adl_improved_6_placebo"): 0.206,
           ("adapt_mg", "pop_mg_adl_mse_placebo"): 0.111,
           ("adapt_mg", "pop_mg_adl_responders_efgartigimod"): 0.677,
           ("adapt_mg", "pop_mg_adl_improved_6_efgartigimod"): 0.569,
           ("adapt_mg", "pop_mg_adl_mse_efgartigimod"): 0.400,
           ("adapt_mg", "pop_qmg_responders_placebo"): 0.141,
           ("adapt_mg", "pop_qmg_responders_efgartigimod"): 0.631}
FITTED_CHECKS = set(TARGETS)      # labelled calibrated in cartsim validate
# patients in each ADAPT share (AChR+: 65 on efgartigimod; 64 on placebo for responders, 63 for the post hoc)
ARM_N = {"placebo": 63, "efgartigimod": 65}
# fitted value, its disease, its check, bracket, whether the search runs on the log of the value
FITS: tuple[tuple[str, str, Callable[[dict], dict], tuple[str, str], tuple[float, float], bool], ...] = (
    ("pc_auto_death", "nmosd", n_momentum_aqp4_igg, ("n_momentum_aqp4_igg", "pop_fraction_2fold_fall_day_197"),
     (2e-4, 1e-2), True),
    ("nmosd_attack_rate", "nmosd", n_momentum_attacks, ("n_momentum_attacks", "pop_attack_free_placebo"),
     (0.1, 5.0), True),
    ("nmosd_attack_imax", "nmosd", n_momentum_attacks, ("n_momentum_attacks", "pop_hazard_ratio"), (0.0, 1.0),
     False),
)
MG_GRIDS: tuple[tuple[str, dict[str, list[float]]], ...] = (
    ("placebo", {"mg_placebo_mean": [-2.0, -1.5, -1.0, -0.5, 0.0, 0.5],
                 "mg_placebo_sd": [3.0, 3.5, 4.0, 4.5, 5.0, 6.0],
                 "mg_visit_sd": [1.0, 1.25, 1.5, 1.75, 2.0, 2.5]}),
    ("efgartigimod", {"mg_antibody_share": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
                      "mg_junction_k50": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0]}),
)
MG_ROOTS = (("mg_qmg_placebo_share", ("adapt_mg", "pop_qmg_responders_placebo"), (0.0, 1.5)),
            ("mg_qmg_antibody_share", ("adapt_mg", "pop_qmg_responders_efgartigimod"), (0.05, 1.0)))


def binomial_deviance(p: float, observed: float, n: int) -> float:
    """2 x log-likelihood ratio of ``observed`` (a share of ``n``) against a predicted share ``p``."""
    k = observed * n
    p = min(max(p, 1e-9), 1 - 1e-9)
    dev = k * math.log(k / (n * p)) if k > 0 else 0.0
    dev += (n - k) * math.log((n - k) / (n * (1 - p))) if k < n else 0.0
    return 2.0 * dev


def _arm_keys(arm: str) -> list[tuple[str, str]]:
    return [k for k in TARGETS if k[0] == "adapt_mg" and k[1].endswith(arm) and "qmg" not in k[1]]


def fit_grid(arm: str, grid: dict[str, list[float]], fixed: dict[str, float], trace: list[dict]) -> dict:
    """The grid point of least binomial deviance over the arm's three ADAPT shares."""
    rows = []
    for point in itertools.product(*grid.values()):
        values = dict(zip(grid, point))
        got = adapt_mg(fixed | values)
        dev = sum(binomial_deviance(got[m], TARGETS[(c, m)], ARM_N[arm]) for c, m in _arm_keys(arm))
        rows.append({**values, "deviance": round(dev, 4), **{m: round(got[m], 4) for _, m in _arm_keys(arm)}})
    trace.extend(rows)
    best = min(rows, key=lambda r: r["deviance"])
    print(f"-> {arm}: {best}", flush=True)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("calibration_autoimmune.json"))
    args = ap.parse_args()
    fitted: dict[str, float] = {}
    trace: list[dict] = []
    predicted: dict[str, float] = {}
    for name, _disease, check, key, bracket, log in FITS:     # NMOSD: each fit keeps the earlier ones
        observed = TARGETS[key]
        earlier = dict(fitted)

        def gap(x: float) -> float:
            value = math.exp(x) if log else x
            got = check({**earlier, name: value})[key[1]]
            trace.append({name: value, key[1]: got})
            print(f"{name} {value:10.5f}: {key[1]} {got:.4f} (observed {observed})", flush=True)
            return got - observed

        lo, hi = (math.log(b) for b in bracket) if log else bracket
        root = brentq(gap, lo, hi, xtol=1e-4)
        fitted[name] = float(f"{math.exp(root) if log else root:.4g}")
        predicted[key[1]] = round(check({**earlier, name: fitted[name]})[key[1]], 4)
        print(f"-> {name} = {fitted[name]} ({key[1]} {predicted[key[1]]})", flush=True)

    mg: dict[str, float] = {}
    deviance: dict[str, float] = {}
    profile: list[dict] = []
    for arm, grid in MG_GRIDS:
        best = fit_grid(arm, grid, mg, trace)
        mg.update({k: best[k] for k in grid})
        deviance[arm] = best["deviance"]
        if arm == "efgartigimod":      # the share-threshold ridge: the best threshold for each share
            rows = [r for r in trace if "mg_antibody_share" in r]
            for share in grid["mg_antibody_share"]:
                profile.append(min((r for r in rows if r["mg_antibody_share"] == share),
                                   key=lambda r: r["deviance"]))
            for r in profile:
                print(f"   share {r['mg_antibody_share']}: threshold {r['mg_junction_k50']}, "
                      f"deviance {r['deviance']}", flush=True)
    for name, key, bracket in MG_ROOTS:
        earlier = dict(mg)

        def qgap(x: float) -> float:
            got = adapt_mg({**earlier, name: x})[key[1]]
            trace.append({name: x, key[1]: got})
            return got - TARGETS[key]

        mg[name] = float(f"{brentq(qgap, *bracket, xtol=1e-4):.4g}")
        print(f"-> {name} = {mg[name]}", flush=True)
    final = adapt_mg(mg)
    predicted.update({m: round(final[m], 4) for c, m in TARGETS if c == "adapt_mg"})
    fitted.update(mg)
    doc = {"fitted": fitted, "targets": [list(k) for k in TARGETS], "observed": {k[1]: v for k, v in TARGETS.items()},
           "predicted": predicted, "mg_deviance": deviance, "mg_share_threshold_profile": profile,
           "method": "NMOSD: brentq in the order above (log scale for rates), xtol 1e-4, rounded to 4 significant "
           "digits; MG: grids of least binomial deviance per ADAPT arm (placebo first), then brentq for the QMG "
           "shares", "evaluations": trace}
    write_text_atomic(args.out, json.dumps(doc, indent=1, default=float) + "\n")
    print(f"fitted {fitted}; wrote {args.out}")


if __name__ == "__main__":
    main()
