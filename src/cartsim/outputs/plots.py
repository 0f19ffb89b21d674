"""Four-panel trajectory figure for one simulated patient (PNG, Agg backend)."""

from __future__ import annotations

import textwrap

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from cartsim.endpoint_dictionary import B_DETECTION, B_LOWER_NORMAL, CART_DETECTION  # noqa: E402
from cartsim.outputs.files import atomic_path  # noqa: E402

FLOOR = 1e-3  # display floor so log axes never see zeros
FOOTER = "cartsim research simulation - not medical advice"
# quantities that observed data can be overlaid on (serum IL-6 is drawn on the IL-6 panel, an antibody's serum
# level beside the CAR-T cells on the second panel)
OBSERVED_QUANTITIES = ("b_blood_per_uL", "car_blood_per_uL", "il6", "igg", "mab_conc")
# serum levels of the drugs given by a regimen (ug/mL), by trajectory column: what the figures call them
DRUG_LEVELS = {"mab_conc": "anti-CD20 antibody", "fcrnb_conc": "FcRn blocker", "c5i_conc": "C5 inhibitor"}


def time_label(df: pd.DataFrame) -> str:
    """The time axis's label: day 0 is the CAR-T infusion where there are CAR-T cells, else the first dose."""
    car = _col(df, "car_blood_per_uL")
    return "days since CAR-T infusion" if np.nanmax(car, initial=0.0) > 0 else "days since the first dose"


def _col(df: pd.DataFrame, name: str, floor: float | None = None) -> np.ndarray:
    """Column as float array (NaN if missing), optionally clipped below `floor`."""
    v = df[name].to_numpy(dtype=float) if name in df else np.full(len(df), np.nan)
    return np.clip(v, floor, None) if floor is not None else v


def _legend(*axes: Axes, loc: str = "best") -> None:
    """One legend combining the lines of several (twin) axes."""
    handles, labels = [], []
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    axes[0].legend(handles, labels, loc=loc, fontsize=9, framealpha=0.85)


def _overlay(ax: Axes, observed: pd.DataFrame | None, quantity: str, color: str, floor: float | None = None) -> None:
    """Observed values of ``quantity`` (columns day, quantity, value) as open circles."""
    if observed is None:
        return
    pts = observed[observed["quantity"] == quantity]
    if len(pts):
        v = pts["value"].to_numpy(dtype=float)
        ax.plot(pts["day"].to_numpy(dtype=float), np.clip(v, floor, None) if floor is not None else v, "o",
                mfc="none", mec=color, ms=4, mew=1, label=f"observed ({len(pts)} values)")


def plot_trajectories(
    df: pd.DataFrame, path: Path, title: str, thresholds: dict[str, float] | None = None,
    observed: pd.DataFrame | None = None, drug_names: dict[str, str] | None = None,
    autoantibody: str = "autoantibody",
) -> None:
    """Plot B cells, CAR-T, IL-6/CRS/ICANS and IgG/autoantibody vs day; write PNG atomically.

    ``observed`` (columns day, quantity, value) adds observations of the quantities in
    :data:`OBSERVED_QUANTITIES` to their panel. ``drug_names``: the name of a drug level's column where the drug
    given says it better than :data:`DRUG_LEVELS` (inebilizumab's is an anti-CD19 antibody); ``autoantibody``:
    the disease's name for its autoantibody (AQP4-IgG).
    """
    levels = DRUG_LEVELS | (drug_names or {})
    path = Path(path)
    if observed is not None:
        other = sorted(set(observed["quantity"]) - set(OBSERVED_QUANTITIES))
        if other:
            raise ValueError(f"cannot plot observations of {', '.join(other)}; "
                             f"plotted quantities: {', '.join(OBSERVED_QUANTITIES)}")
    day = df["day"].to_numpy(dtype=float)
    fig, (a1, a2, a3, a4) = plt.subplots(4, 1, figsize=(12, 9), sharex=True, dpi=120)

    # (1) B cells
    a1.plot(day, _col(df, "b_blood_per_uL", FLOOR), color="tab:blue", label="B cells, blood (cells/µL)")
    a1.plot(day, _col(df, "b_tissue", FLOOR), color="tab:purple", label="B cells, lymphoid tissue (cells/µL-eq)")
    _overlay(a1, observed, "b_blood_per_uL", "tab:blue", FLOOR)
    a1.axhline(B_DETECTION.value, color="grey", ls=":", lw=1, label=f"detection limit ({B_DETECTION.value:g}/µL)")
    a1.axhline(B_LOWER_NORMAL.value, color="tab:green", ls=":", lw=1,
               label=f"lower limit of normal ({B_LOWER_NORMAL.value:g}/µL)")
    a1.set_yscale("log")
    a1.set_ylabel("CD19+ B cells\n(cells/µL)")
    _legend(a1)

    # (2) CAR-T in blood, and the serum level of a drug given by a regimen (beside CAR-T cells on a twin axis)
    car = _col(df, "car_blood_per_uL", FLOOR)
    twins2 = []
    if np.nanmax(car, initial=0.0) > FLOOR or (observed is not None and
                                                (observed["quantity"] == "car_blood_per_uL").any()):
        a2.plot(day, car, color="tab:red", label="CAR-T, blood (cells/µL)")
        _overlay(a2, observed, "car_blood_per_uL", "tab:red", FLOOR)
        a2.axhline(CART_DETECTION.value, color="grey", ls=":", lw=1,
                   label=f"{CART_DETECTION.assay} limit ({CART_DETECTION.value:g}/µL)")
        i = int(np.nanargmax(car))
        a2.plot(day[i], car[i], "v", color="tab:red", ms=7)
        a2.annotate(f"peak {car[i]:.3g}/µL on day {day[i]:.1f}", (day[i], car[i]), xytext=(60, -12),
                    textcoords="offset points", fontsize=9, va="center",
                    arrowprops=dict(arrowstyle="-", color="grey", lw=0.8))
        a2.set_yscale("log")
        a2.set_ylabel("CAR-T cells\n(cells/µL)")
        twins2.append(a2)
    for column, name in levels.items():
        level = _col(df, column)
        seen = observed is not None and (observed["quantity"] == column).any()
        if np.nanmax(level, initial=0.0) > 0 or seen:
            m2 = a2.twinx() if twins2 else a2     # without CAR-T cells the drug level has the panel to itself
            m2.plot(day, level, color="tab:green", label=f"{name}, serum (ug/mL)")
            _overlay(m2, observed, column, "tab:green")
            m2.set_ylabel(f"{name}\n(ug/mL)")
            m2.set_ylim(bottom=0)
            twins2.append(m2)
    if twins2:
        _legend(*twins2)
    else:      # no flat line at the axis floor: say what the panel would show
        a2.set_yticks([])
        a2.text(0.5, 0.5, "no CAR-T cells and no drug level in this simulation", transform=a2.transAxes,
                ha="center", va="center", color="0.4")

    # (3) IL-6 with CRS / ICANS grades on a twin axis
    a3.plot(day, _col(df, "il6_signal", FLOOR), color="tab:orange", label="IL-6 (pg/mL)")
    _overlay(a3, observed, "il6", "tab:orange", FLOOR)
    for g in range(1, 5):
        thr = (thresholds or {}).get(f"crs_il6_grade{g}")
        if thr is not None:
            a3.axhline(thr, color="tab:orange", alpha=0.25, lw=1,
                       label="CRS IL-6 thresholds G1-4" if g == 1 else None)
            a3.text(0.55, thr, f"grade {g}", transform=a3.get_yaxis_transform(), fontsize=7,
                    color="tab:orange", alpha=0.8, va="bottom", ha="left")
    a3.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")  # "20" rather than "2x10^1" on short ranges
    a3.yaxis.set_major_formatter(plain)
    lo, hi = a3.get_ylim()
    few = np.log10(hi / lo) < 2  # short range: also label the 2x and 5x minor ticks
    a3.yaxis.set_minor_formatter(FuncFormatter(
        lambda v, _: f"{v:g}" if few and f"{v:.0e}"[0] in "25" else ""))
    a3.set_ylabel("IL-6 (pg/mL)")
    g3 = a3.twinx()
    g3.step(day, _col(df, "crs_grade"), where="post", color="black", lw=1.4, label="CRS grade (0-4)")
    g3.step(day, _col(df, "icans_grade"), where="post", color="tab:cyan", ls="--", lw=1.4,
            label="ICANS grade (0-4)")
    g3.set_ylim(-0.2, 4.4)
    g3.set_yticks(range(5))
    g3.set_ylabel("grade")
    _legend(a3, g3, loc="upper right")

    # (4) IgG and autoantibody (% of baseline)
    a4.plot(day, _col(df, "igg"), color="tab:brown", label="IgG (g/L)")
    _overlay(a4, observed, "igg", "tab:brown")
    a4.set_ylabel("IgG (g/L)")
    a4.set_ylim(bottom=0)
    twins = [a4]
    aab = _col(df, "autoantibody")
    base = float(aab[0]) if len(aab) else 0.0  # first sample = pre-treatment, as in endpoints.py
    if np.isfinite(base) and base > 0:
        g4 = a4.twinx()
        g4.plot(day, 100.0 * aab / base, color="tab:pink", ls="--", label=f"{autoantibody} (% of baseline)")
        g4.set_ylabel(f"{autoantibody}\n(% of baseline)")
        g4.set_ylim(bottom=0)
        twins.append(g4)
    _legend(*twins, loc="upper right")
    a4.set_xlabel(time_label(df))

    for ax in (a1, a2, a3, a4):
        ax.axvline(0.0, color="k", ls="--", lw=0.9, alpha=0.7)
        ax.grid(alpha=0.25, which="major")
    day0 = " infusion" if time_label(df).endswith("infusion") else " first dose"
    a1.text(0.0, 1.02, day0, transform=a1.get_xaxis_transform(), fontsize=8, va="bottom")
    a1.set_xlim(day.min(), day.max())
    fig.suptitle(textwrap.fill(title, 110), fontsize=13)
    fig.text(0.99, 0.005, FOOTER, ha="right", va="bottom", fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.015, 1, 1))

    save_figure(fig, path)


def save_figure(fig: plt.Figure, path: Path, svg: bool = False) -> None:
    """Write ``fig`` to ``path`` as PNG (and beside it as SVG), atomically, and close it."""
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        if svg:
            with atomic_path(path.with_suffix(".svg"), suffix=".svg") as tmp:
                fig.savefig(tmp, format="svg")
    finally:
        plt.close(fig)
