"""``sensitivity.png``: the parameters that move each endpoint most (total-order Sobol index or Morris mu*).

One panel per endpoint, one column (it reads on a phone as on a wide screen), the top
:data:`TOP` parameters as horizontal bars with their 95% intervals. When a run has more
endpoints than :data:`MAX_PANELS`, the figure shows the headline ones (how long the reset
lasts, the trial's primary endpoint, then :data:`HEADLINE`) and says how many more
``sensitivity.json`` holds.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cartsim.outputs.files import atomic_path  # noqa: E402
from cartsim.outputs.plots import FOOTER  # noqa: E402

TOP = 15
MAX_PANELS = 12
HEADLINE = ("autoreactive_return_day:durability", "annualized_relapse_rate:durability", "bcell_reappearance_day",
            "cart_peak_per_uL", "crs_max_grade:grade2plus", "icans_max_grade:any", "igg_nadir_fraction",
            "cns_plasma_cell_fraction_day_90", "edss_change", "annualized_relapse_rate", "cdp12_fraction")
WIDTH_IN, DPI = 8.0, 100          # 800 px: a phone shows it at about half size, a wide screen at full size
BAR_IN, TITLE_LINE_IN = 0.32, 0.26   # height per bar and per line of a panel's title (inches)
LEFT_TEXT, LEFT_AXES = 0.02, 0.36   # figure fractions: titles start at the left edge, bars after the names
ARM_COLOURS = ("#1f5fa8", "#b8572a", "#3a7d44", "#6b4c9a")


def panels(doc: dict, primary: str | None = None) -> list[dict]:
    """The analysed endpoints the figure shows, arm by arm: all of them when there are at most
    :data:`MAX_PANELS`, else the headline ones."""
    done = [e for e in doc["endpoints"] if e["analysed"]]
    if len(done) > MAX_PANELS:
        order = list(dict.fromkeys(HEADLINE[:3] + ((primary,) if primary else ()) + HEADLINE[3:]))
        done = sorted((e for e in done if e["output"] in order), key=lambda e: order.index(e["output"]))
    arms = list(dict.fromkeys(e["arm"] for e in doc["endpoints"]))
    return sorted(done, key=lambda e: arms.index(e["arm"]))[:MAX_PANELS]   # stable: keeps the order within an arm


def plot_sensitivity(doc: dict, path: Path, primary: str | None = None) -> None:
    """Write the figure of ``doc`` (a ``sensitivity.json`` document) to ``path`` (PNG, atomically)."""
    method = doc["method"]["name"]
    rank, first = ("ST", "S1") if method == "sobol" else ("mu_star", None)
    shown = panels(doc, primary)
    arms = list(dict.fromkeys(e["arm"] for e in doc["endpoints"]))
    heads = [_head(e, len(arms) > 1) for e in shown]
    # layout in inches, top to bottom: header, then per panel its title, bars and x axis, then the note
    header_in, note_in, axis_in = 1.25, 0.75, 0.75
    bars = [BAR_IN * max(1, min(TOP, len(e["indices"]))) + 0.15 for e in shown]
    titles = [0.12 + TITLE_LINE_IN * h.count("\n") + TITLE_LINE_IN for h in heads]
    fig_h = header_in + sum(t + b + axis_in for t, b in zip(titles, bars)) + note_in
    fig = plt.figure(figsize=(WIDTH_IN, fig_h), dpi=DPI)
    title = ("Which parameters move each endpoint: total-order Sobol index" if method == "sobol" else
             "Which parameters move each endpoint: Morris screen (mu*)")
    fig.text(LEFT_TEXT, 1 - 0.3 / fig_h, title, fontsize=15, fontweight="bold", va="top")
    what = (f"{doc['n_rows']} parameter sets of {len(doc['parameters'])} parameters; each set: "
            + ("the typical patient" if doc["outcome"] == "typical" else "the mean of a virtual cohort"))
    if first:
        what += ".\nDark bar: first order (the parameter alone); light bar: total order (with interactions)"
    else:
        what += ".\nmu*: mean change of the endpoint, in its own unit, across the parameter's range"
    fig.text(LEFT_TEXT, 1 - 0.7 / fig_h, what, fontsize=11, color="#444", va="top", linespacing=1.4)
    defaults = {p["name"] for p in doc["parameters"] if p["default_range"]}
    top = fig_h - header_in
    for e, head, t_in, b_in in zip(shown, heads, titles, bars):
        colour = ARM_COLOURS[arms.index(e["arm"]) % len(ARM_COLOURS)]
        fig.text(LEFT_TEXT, (top - 0.08) / fig_h, head, fontsize=13, fontweight="bold", va="top", linespacing=1.3)
        ax = fig.add_axes((LEFT_AXES, (top - t_in - b_in) / fig_h, 0.97 - LEFT_AXES, b_in / fig_h))
        _panel(ax, e, rank, first, method, defaults, colour)
        top -= t_in + b_in + axis_in
    if not shown:
        fig.text(0.5, 0.5, "no endpoint varied over the parameter ranges", ha="center", va="center")
    analysed = sum(e["analysed"] for e in doc["endpoints"])
    note = "* default range (2-fold either side), not the parameter table's. " + FOOTER
    if analysed > len(shown):
        note = f"{analysed - len(shown)} more endpoints in sensitivity.json. " + note
    fig.text(LEFT_TEXT, 0.15 / fig_h, textwrap.fill(note, 90), fontsize=10, color="#444", va="bottom")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)


def _head(e: dict, multiple_arms: bool) -> str:
    head = textwrap.fill(e["label"], 62)
    return f"{e['arm']}: {head}" if multiple_arms and "\n" not in head and len(head) + len(e["arm"]) < 60 \
        else (f"{e['arm']}\n{head}" if multiple_arms else head)


def _panel(ax, e: dict, rank: str, first: str | None, method: str, defaults: set[str], colour: str) -> None:
    items = list(e["indices"].items())[:TOP]
    names = [p + (" *" if p in defaults else "") for p, _ in items]
    y = np.arange(len(items))[::-1]
    v = np.array([i[rank]["value"] or 0.0 for _, i in items])
    ci = [i[rank]["ci95"] for _, i in items]
    lo = np.array([v[k] - c[0] if c else 0.0 for k, c in enumerate(ci)])
    hi = np.array([c[1] - v[k] if c else 0.0 for k, c in enumerate(ci)])
    ax.barh(y, v, color=colour, alpha=0.4 if first else 0.85, height=0.75)
    if first:
        s1 = np.array([max(0.0, i[first]["value"] or 0.0) for _, i in items])
        ax.barh(y, s1, color=colour, height=0.4)
    ax.errorbar(v, y, xerr=[np.clip(lo, 0, None), np.clip(hi, 0, None)], fmt="none", ecolor="#333",
                elinewidth=1, capsize=2)
    ax.set_yticks(y, names, fontsize=12)
    ax.set_ylim(-0.6, len(items) - 0.4)
    ax.tick_params(axis="x", labelsize=11)
    reach = float(np.nanmax(v + np.clip(hi, 0, None))) if v.size else 0.0
    if method == "sobol":
        ax.set_xlim(0, max(1.0, reach) * 1.02)
        ax.set_xlabel("share of the endpoint's variance", fontsize=11)
    else:
        ax.set_xlim(0, reach * 1.05 if reach > 0 else 1.0)
        unit = ("log10 units" if e.get("scale") == "log10" else
                "days" if e["endpoint"].endswith("_day") else "the endpoint's unit")
        ax.set_xlabel(f"mu*, in {unit}", fontsize=11)
    ax.grid(axis="x", color="#ddd")
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
