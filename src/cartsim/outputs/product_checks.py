"""The report's figure of CAR-T products against published data: each product's kinetics and toxicity checks
(from :mod:`cartsim.validate`), the model's prediction placed on its acceptance window.

Windows differ in unit and size (a share of patients, cells per uL, days), so each row shows where the
prediction falls relative to its own window: 0 at the window's low end, 1 at its high end, on a log scale where
the window is of positive quantities above 1 spanning more than twofold (counts, days), linear otherwise
(shares of patients, score changes). The
printed number beside each row is the prediction itself with its window.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from cartsim.validate import PRODUCT_TARGETS, Check

SHOWN = (-1.0, 2.0)     # the x range drawn; predictions beyond it are drawn at its edge as arrows


def window_position(predicted: float, low: float, high: float) -> float:
    """Where ``predicted`` lies on the window [low, high]: 0 at low, 1 at high (log scale for a positive window
    reaching above 1 and spanning more than twofold, linear otherwise); NaN when the window is a single value."""
    if high <= low:
        return math.nan
    if low > 0 and high > 1 and high / low > 2 and predicted > 0:
        return (math.log(predicted) - math.log(low)) / (math.log(high) - math.log(low))
    return (predicted - low) / (high - low)


METRICS = {
    "pop_fraction_any": "any grade", "pop_fraction_grade2plus": "grade 2+", "pop_fraction_grade3plus": "grade 3+",
    "pop_crs_any": "CRS, any grade", "pop_crs_grade2plus": "CRS, grade 2+", "pop_crs_grade3plus": "CRS, grade 3+",
    "pop_icans_any": "ICANS, any grade", "pop_icans_grade3plus": "ICANS, grade 3+",
    "pop_median": "median", "pop_mean": "mean", "pop_sd": "SD",
    "pop_fraction_detectable_day_30": "detectable on day 30", "pop_fraction_detectable_day_365": "detectable at 1 year",
    "typical_tmax_day": "peak day", "typical_contraction_halflife_day": "contraction half-life (days)",
    "typical_persistence_halflife_day": "persistence half-life (days)",
    "pop_median_tmax": "median peak day", "pop_median_persistence": "median last day in blood",
    "pop_log_sd_cmax": "log SD of the peak", "pop_log_sd_auc_0_28": "log SD of AUC0-28d",
    "pop_attack_free": "attack-free share",
    "typical_cns_plasma_cell_reduction_day_90": "CNS plasma cells gone, day 90",
    "typical_intrathecal_igg_reduction_day_180": "intrathecal IgG gone, day 180",
    "pop_mg_adl_change_week_24": "MG-ADL change, week 24",
    "sle_crs_grade2plus_lower": "less grade 2+ CRS in SLE",
    "sle_bcell_recovery_faster": "B cells back sooner in SLE",
    "sle_cart_persistence_shorter": "CAR-T cells gone sooner in SLE",
    "pop_median_cart_peak_ratio_lymphoma_to_sle": "CAR-T peak ratio",
    "pop_median_cart_peak_ratio_dlbcl_to_ball": "CAR-T peak ratio",
    "pop_median_cart_peak_ratio_tisacel_to_axicel": "CAR-T peak ratio",
    "axicel_crs_more_frequent": "more CRS after axi-cel",
    "pop_fraction_igg_recovered_day_365": "recovered at 1 year",
    "pop_median_crs_onset_axicel": "axi-cel, median day", "pop_median_crs_onset_tisacel": "tisa-cel, median day",
    "pop_median_crs_onset_lisocel": "liso-cel, median day",
}


def _metric(name: str) -> str:
    return METRICS.get(name, name.removeprefix("pop_").removeprefix("typical_").replace("_", " "))


def product_checks(checks: list[Check] | tuple[Check, ...]) -> list[Check]:
    """The checks of CAR-T product targets, in the order of :data:`PRODUCT_TARGETS`."""
    order = {tid: i for i, tid in enumerate(PRODUCT_TARGETS)}
    return sorted((c for c in checks if c.id in order), key=lambda c: order[c.id])


def _value(c: Check) -> str:
    """The prediction and its window as printed beside a row; a yes/no check says which."""
    if c.accept[0] == c.accept[1]:
        return ("yes" if c.predicted == 1 else "no") + f" (expected: {'yes' if c.accept[0] == 1 else 'no'})"
    return f"{c.predicted:.3g}  [{c.accept[0]:g}, {c.accept[1]:g}]"


def product_figure(checks: list[Check] | tuple[Check, ...]) -> plt.Figure | None:
    """One row per product check: the acceptance window shaded, the prediction a dot (a red cross when missed;
    hollow where a parameter was fitted to that number, so it checks the fit and predicts nothing), the predicted
    value and window written at the right; None without product checks."""
    rows = product_checks(checks)
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(9.0, 0.3 * len(rows) + 1.4))
    y = np.arange(len(rows))[::-1]
    ax.axvspan(0, 1, color="tab:green", alpha=0.15, lw=0)
    for yi, c in zip(y, rows):
        u = window_position(c.predicted, *c.accept)
        if math.isnan(u):      # a yes/no check: on the window when it holds
            u = 0.5 if c.passed else SHOWN[0]
        clipped = min(max(u, SHOWN[0] + 0.05), SHOWN[1] - 0.05)
        marker = "o" if clipped == u else (">" if u > clipped else "<")
        color = "black" if c.passed else "tab:red"
        ax.plot(clipped, yi, marker=marker if c.passed else ("X" if clipped == u else marker), ms=7,
                color=color, markerfacecolor="white" if c.calibrated else color, ls="none")
        ax.text(1.01, yi, _value(c) + ("  fitted" if c.calibrated else ""), transform=ax.get_yaxis_transform(),
                va="center", fontsize=7.5, color="black" if c.passed else "tab:red")
    ax.set_yticks(y, [f"{PRODUCT_TARGETS[c.id]}: {_metric(c.metric)}" for c in rows], fontsize=7.5)
    ax.set_xlim(*SHOWN)
    ax.set_xticks([SHOWN[0], 0, 0.5, 1, SHOWN[1]], ["far below", "window's\nlow end", "", "window's\nhigh end",
                                                      "far above"], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("CAR-T products: the model's prediction on each published acceptance window\n"
                 "(dot: inside; red: missed; arrows: beyond the drawn range; number: prediction [window];\n"
                 "hollow, 'fitted': a parameter was fitted to that number; filled: a prediction)",
                 fontsize=9)
    fig.subplots_adjust(left=0.42, right=0.8, top=1 - 0.75 / fig.get_figheight(),
                        bottom=0.75 / fig.get_figheight())
    return fig
