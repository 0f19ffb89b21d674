"""Side-by-side figure of two therapies for one typical patient (PNG and SVG, Agg backend)."""

from __future__ import annotations

import textwrap

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MultipleLocator  # noqa: E402

from cartsim.endpoints import CART_DETECTION_LIMIT, REAPPEARANCE_LIMIT, REPLETION_LIMIT  # noqa: E402
from cartsim.outputs.plots import DRUG_LEVELS, _col, save_figure  # noqa: E402
from cartsim.therapy.antibodies import drug_class  # noqa: E402
from cartsim.simulate import SimulationResult  # noqa: E402

FOOTER = "cartsim research simulation, not medical advice"
COLORS = ("#0072B2", "#D55E00")  # Okabe-Ito blue and vermilion: distinct for colour-blind readers
DAYS_PER_MONTH = 365.25 / 12
B_FLOOR = 0.01      # cells/uL: lowest value drawn on the B-cell axis
CAR_FLOOR = 0.001   # cells/uL
MAB_FLOOR = 0.01    # ug/mL
PLAIN = FuncFormatter(lambda v, _: f"{v:g}")  # 0.01, 1, 100 rather than 10^-2, 10^0, 10^2


def arm_labels(results: Sequence[SimulationResult]) -> list[str]:
    """Therapy names, with ' (A)' / ' (B)' added when the same therapy appears twice."""
    names = [r.scenario.therapy for r in results]
    return [f"{n} ({'AB'[i]})" if names.count(n) > 1 else n for i, n in enumerate(names)]


def _kind(result: SimulationResult) -> str:
    """'car-t', the serum-level column of a drug given by a regimen, or 'none' (no drug, or one without a level)."""
    s = result.scenario
    if s.product is not None:
        return "car-t"
    return (s.antibody.level or "none") if s.antibody is not None else "none"


def dose_count_text(result: SimulationResult) -> str:
    """'1 infusion', '8 infusions', '42 injections' or 'no treatment'."""
    n = len(result.dosing)
    if n == 0:
        return "no treatment"
    word = "injection" if all(w.rstrip().endswith("SC") for _, w in result.dosing) else "infusion"
    return f"{n} {word}{'s' if n != 1 else ''}"


def back_and_naive(result: SimulationResult) -> np.ndarray:
    """Times at which B cells are back (>= 1/uL after having fallen below it) and mostly naive (> 50%)."""
    df = result.trajectories
    day, b = df["day"].to_numpy(float), _col(df, "b_blood_per_uL")
    gone = (day >= 0) & (b < REAPPEARANCE_LIMIT)
    after = np.cumsum(gone) > 0
    return after & (b >= REAPPEARANCE_LIMIT) & (_col(df, "naive_fraction_blood") > 0.5)


def _legend(ax: Axes, handles: list[Any] | None = None) -> None:
    """Legend to the right of the panel, so it never covers the curves."""
    kw: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "fontsize": 9, "frameon": False,
                          "borderaxespad": 0.0}
    if handles is None:
        ax.legend(**kw)
    else:
        ax.legend(handles=handles, **kw)


def _log_axis(ax: Axes, bottom: float, top: float) -> None:
    ax.set_yscale("log")
    ax.set_ylim(bottom, top)
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=12))
    ax.yaxis.set_major_formatter(PLAIN)


def _decades_above(peak: float, floor: float, decades: float) -> float:
    """Axis top: one third of a decade above the peak (at least ``decades`` above ``floor``)."""
    return max(peak * 10 ** 0.35, floor * 10 ** decades)


def plot_comparison(results: Sequence[SimulationResult], path: Path | str, title: str) -> None:
    """Stacked panels over months: B cells, drug level(s), IgG, the autoantibody (where the disease has one), the
    MG-ADL score (in myasthenia gravis) and the dosing timeline.

    Writes ``path`` (PNG) and the same figure as SVG beside it, each atomically. The drug panel
    shows CAR-T cells (cells/uL) and each drug's serum level (ug/mL) on panels of their own.
    """
    path = Path(path)
    labels = arm_labels(results)
    kinds = [_kind(r) for r in results]
    months = [r.trajectories["day"].to_numpy(float) / DAYS_PER_MONTH for r in results]
    drug_panels: list[str] = sorted({k for k in kinds if k != "none"}, key=lambda k: (k != "car-t", k)) or ["none"]
    # the autoantibody panel where a disease has one (autoreactive cells at baseline), as a share of baseline
    auto = any(float(_col(r.trajectories, "autoantibody")[0]) > 0 for r in results)
    # the MG-ADL score where the disease has one (myasthenia gravis): what the antibody does to daily life
    mg = any(float(_col(r.trajectories, "mg_adl")[0]) > 0 for r in results)
    ratios = [3.0] + [2.2] * len(drug_panels) + [2.0] * (1 + auto + mg) + [0.5 + 0.45 * len(results)]
    fig, axes = plt.subplots(len(ratios), 1, figsize=(12, 0.85 * sum(ratios) + 1.5), sharex=True, dpi=120,
                             gridspec_kw={"height_ratios": ratios})
    ab, drug_axes, ai, ad = axes[0], list(axes[1:1 + len(drug_panels)]), axes[1 + len(drug_panels)], axes[-1]

    # (1) blood B cells: detection limit, lower limit of normal, and where they are back and mostly naive
    b_all = [_col(r.trajectories, "b_blood_per_uL", B_FLOOR) for r in results]
    _log_axis(ab, B_FLOOR, _decades_above(max(float(np.nanmax(b)) for b in b_all), B_FLOOR, 4))
    ab.axhspan(B_FLOOR, REAPPEARANCE_LIMIT, color="0.5", alpha=0.12, lw=0)
    handles = []
    for r, m, b, lab, c in zip(results, months, b_all, labels, COLORS):
        handles += ab.plot(m, b, color=c, lw=2, label=lab)
        mask = back_and_naive(r)
        if mask.any():
            ab.fill_between(m, REAPPEARANCE_LIMIT, b, where=mask, color=c, alpha=0.15, lw=0, interpolate=True)
            handles.append(Patch(color=c, alpha=0.25, label=f"{lab}: B cells back, mostly new (naive)"))
    handles.append(ab.axhline(REPLETION_LIMIT, color="#009E73", ls="--", lw=1.2,
                              label=f"lower limit of normal ({REPLETION_LIMIT:g}/µL)"))
    handles.append(ab.axhline(REAPPEARANCE_LIMIT, color="0.35", ls=":", lw=1.4,
                              label=f"detection limit ({REAPPEARANCE_LIMIT:g}/µL)"))
    handles.append(Patch(color="0.5", alpha=0.12, label="undetectable (below 1/µL)"))
    ab.set_ylabel("B cells in blood\n(cells/µL)")
    _legend(ab, handles)

    # (2) drug level: CAR-T cells and antibody each on their own panel and unit
    for ax, kind in zip(drug_axes, drug_panels):
        if kind == "none":
            ax.set_yticks([])
            ax.text(0.5, 0.5, "no drug given", transform=ax.transAxes, ha="center", va="center", color="0.4")
            ax.set_ylabel("drug level")
            continue
        col, floor = ("car_blood_per_uL", CAR_FLOOR) if kind == "car-t" else (kind, MAB_FLOOR)
        peak = max((float(np.nanmax(_col(r.trajectories, col))) for r, k in zip(results, kinds) if k == kind),
                   default=1.0)
        bottom = max(floor, peak * 1e-5) if kind == "car-t" else max(floor, peak * 1e-3)
        _log_axis(ax, bottom, _decades_above(peak, bottom, 2))
        for r, k, m, lab, c in zip(results, kinds, months, labels, COLORS):
            if k == kind:
                ax.plot(m, _col(r.trajectories, col, bottom), color=c, lw=2, label=lab)
        if kind == "car-t":
            ax.axhline(CART_DETECTION_LIMIT, color="0.35", ls=":", lw=1.4,
                       label=f"lab detection limit ({CART_DETECTION_LIMIT:g}/µL)")
            ax.set_ylabel("CAR-T cells in blood\n(cells/µL)")
        else:
            # the drugs' own class where the arms name one (anti-CD19 and anti-CD20 antibodies share a level)
            name = drug_class(kind, (r.scenario.antibody for r in results)) or DRUG_LEVELS.get(kind, kind)
            ax.set_ylabel(f"{textwrap.fill(name, 22)} in blood\n(µg/mL)")
        _legend(ax)

    # (3) total IgG
    for m, r, lab, c in zip(months, results, labels, COLORS):
        ai.plot(m, _col(r.trajectories, "igg"), color=c, lw=2, label=lab)
    ai.set_ylim(0, max(float(np.nanmax(_col(r.trajectories, "igg"))) for r in results) * 1.15)
    ai.set_ylabel("total IgG\n(g/L)")
    _legend(ai)
    if auto:     # (3b) the autoantibody: the IgG that the autoreactive cells make
        aa = axes[-3] if mg else axes[-2]
        for m, r, lab, c in zip(months, results, labels, COLORS):
            a = _col(r.trajectories, "autoantibody")
            aa.plot(m, 100 * a / a[0] if a[0] > 0 else np.full(a.size, np.nan), color=c, lw=2, label=lab)
        aa.set_ylim(0, 115)
        aa.set_ylabel(f"{results[0].scenario.disease.autoantibody}\n(% of baseline)")
        _legend(aa)
    if mg:       # (3c) the MG-ADL score of the typical patient (the model's, without the placebo improvement)
        am = axes[-2]
        for m, r, lab, c in zip(months, results, labels, COLORS):
            am.plot(m, _col(r.trajectories, "mg_adl"), color=c, lw=2, label=lab)
        am.set_ylim(0, max(float(np.nanmax(_col(r.trajectories, "mg_adl"))) for r in results) * 1.15)
        am.set_ylabel("MG-ADL score\n(0 none to 24)")
        _legend(am)

    # (4) dosing timeline: one marker per administration, one row per therapy
    rows = list(range(len(results)))[::-1]
    for row, r, lab, c in zip(rows, results, labels, COLORS):
        d = np.array([day for day, _ in r.dosing], dtype=float) / DAYS_PER_MONTH
        ad.plot(d, np.full(d.size, row), "v", color=c, ms=10, mec="white", mew=0.6,
                label=f"{lab}: {dose_count_text(r)}")
        if not d.size:
            ad.text(0.01, row, "no treatment", transform=ad.get_yaxis_transform(), color=c, va="center", fontsize=9)
    ad.set_yticks(rows, labels)
    ad.set_ylim(-0.6, len(results) - 0.4)
    ad.set_ylabel("doses")
    ad.tick_params(axis="y", length=0)
    _legend(ad)
    for side in ("top", "right", "left"):
        ad.spines[side].set_visible(False)

    # shared x axis in months, day 0 marked
    lo = min(float(m.min()) for m in months)
    hi = max(float(m.max()) for m in months)
    step = 1 if hi <= 12 else 3 if hi <= 36 else 6 if hi <= 72 else 12
    ad.xaxis.set_major_locator(MultipleLocator(step))
    ad.xaxis.set_major_formatter(PLAIN)
    right = float(round(hi)) if abs(hi - round(hi)) < 0.1 else hi  # 1095 days: end at 36 months
    ad.set_xlim(min(lo, 0.0) - 0.012 * (right - lo), right)  # room for the day-0 dose markers
    ad.set_xlabel("months since first treatment")
    for ax in axes:
        ax.axvline(0.0, color="k", ls="--", lw=0.8, alpha=0.5)
        ax.grid(alpha=0.25, which="major")
    ab.text(0.0, 1.01, " first treatment", transform=ab.get_xaxis_transform(), fontsize=8, va="bottom")
    fig.suptitle(textwrap.fill(title, 110), fontsize=13)
    fig.text(0.01, 0.005, FOOTER, ha="left", va="bottom", fontsize=8, color="0.4")
    fig.tight_layout(rect=(0, 0.02, 1, 1))

    save_figure(fig, path, svg=True)
