"""``report.html``: one self-contained page per trial (figures embedded as base64 PNG, equations as MathML).

The page is a list of sections; each is built by one function of
:data:`SECTIONS` from the :class:`ReportData`: results (configuration,
endpoints, trajectories, time to event, toxicity, failures), the validation
against published targets, the model's equations and the parameter table.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from jinja2 import Environment, select_autoescape  # noqa: E402
from markupsafe import Markup, escape  # noqa: E402

from cartsim.endpoints import CART_DETECTION_LIMIT, REAPPEARANCE_LIMIT, label  # noqa: E402
from cartsim.model import Model, build_model  # noqa: E402
from cartsim.model.parameters import ParameterRecord  # noqa: E402
from cartsim.outputs.equations import equations_html  # noqa: E402
from cartsim.outputs.files import write_text_atomic  # noqa: E402
from cartsim.outputs.plots import FOOTER  # noqa: E402
from cartsim.outputs.product_checks import product_figure  # noqa: E402
from cartsim.outputs.validation import Validation  # noqa: E402
from cartsim.scenario import Scenario  # noqa: E402
from cartsim.stats import kaplan_meier  # noqa: E402
from cartsim import endpoint_dictionary as dictionary  # noqa: E402
from cartsim.validate import POP_N, targets  # noqa: E402

DISCLAIMER = ("cartsim is research software. Its results are simulations of a mathematical model, not "
              "predictions for any patient, and not medical advice. CAR T-cell therapy for multiple sclerosis "
              "and other autoimmune diseases is investigational.")
COVARIATE_NOTE = ("Covariates are recorded per patient in patients.parquet. The MS course sets the course's "
                  "relapse, lesion and progression rates and its CNS compartmentalisation; baseline EDSS sets the "
                  "step of a confirmed worsening (1.0, or 0.5 above 5.5); body weight scales weight-based doses "
                  "and antibody pharmacokinetics. No model parameter depends on age: age is an eligibility "
                  "criterion only.")
TRAJECTORY_PANELS = (("b_blood_per_uL", "CD19+ B cells in blood (cells/µL)", True),
                     ("car_blood_per_uL", "CAR-T cells in blood (cells/µL)", True),
                     ("igg", "Total antibody (IgG) in serum (g/L)", False))
# panels of a disease's own course, drawn where some arm has values (the autoantibody: where the disease is known
# by one, AQP4-IgG or anti-AChR; "{autoantibody}" is the disease's name for it)
DISEASE_PANELS = (("autoantibody_level", "{autoantibody}, share of the untreated level", False),
                  ("attack_cum", "NMOSD attacks expected since day 0 (per patient)", False),
                  ("mg_adl", "MG-ADL score (0 none to 24 worst; model mean)", False))
# the assay limit below which a count is undetectable, and reference lines: (value, label)
DETECTION_LIMITS = {x.quantity: (x.value, x.assay) for x in (dictionary.B_DETECTION, dictionary.CART_DETECTION)}
REFERENCE_LINES = {dictionary.B_LOWER_NORMAL.quantity: ((dictionary.B_LOWER_NORMAL.value,
                                                         dictionary.B_LOWER_NORMAL.meaning),)}
PANEL_SIZE = (5.0, 3.7)      # inches: one panel per image, laid out at most three to a row


@dataclass(frozen=True)
class ReportData:
    summary: dict                        # summary.json
    patients: pd.DataFrame               # arm, status and the time-to-event columns of every patient
    bands: dict[str, pd.DataFrame]       # arm name -> day, <column>_p05, _median, _p95
    band_patients: int                   # patients per arm behind the bands
    scenarios: tuple[tuple[str, Scenario], ...] = ()    # (arm name, its scenario) for the parameter changes
    validation: Validation | None = None                # None: the checks were not run (--no-validation)
    model: Model | None = None                          # None: cartsim.model.build_model()
    durability: pd.DataFrame | None = None              # CAR-T arms across reset half-lives (None: not run)
    sensitivity: dict | None = None                     # sensitivity.json of `cartsim sensitivity` (None: none)
    # 95% intervals from the patients' own values (the summarize stage): arm name, or "arm name/course" ->
    # endpoint -> statistic (mean, fraction_any, fraction_grade3plus) -> interval; none given, none shown
    intervals: dict[str, dict] | None = None


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    body: Markup


# ---- small HTML and figure helpers ------------------------------------------------------------

def _table(header: list[str], rows: list[list[str | Markup]], attrs: list[str] | None = None) -> Markup:
    """A table; ``attrs`` are the rows' attributes (already escaped), e.g. ``id="param-x"``."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    attrs = attrs or [""] * len(rows)
    body = "".join(f"<tr{' ' + a if a else ''}>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>"
                   for r, a in zip(rows, attrs))
    return _scroll(Markup(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"))


def _figure(fig: plt.Figure, alt: str, wide: bool = False) -> Markup:
    """The figure as an inline PNG; ``wide``: drawn at its own width (in a scrolling box) rather than shrunk."""
    buf = io.BytesIO()
    fig.text(0.99, 0.005, FOOTER, ha="right", va="bottom", fontsize=7, color="grey")
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    cls = ' class="wide"' if wide else ""
    return Markup(f'<img{cls} alt="{escape(alt)}" src="data:image/png;base64,{data}">')


def _panels(figures: list[Markup]) -> Markup:
    """Figures side by side, at most three to a row (one on a narrow screen)."""
    return Markup('<div class="panels">') + Markup("").join(figures) + Markup("</div>")


def _scroll(table: Markup) -> Markup:
    """A wide table in its own horizontally scrolling box, so the page itself never scrolls sideways."""
    return Markup('<div class="scroll">') + table + Markup("</div>")


def _num(x: float | None, unit: str = "") -> str:
    """Three significant digits, written out (1,640, not 1.64e+03; <0.001, not 1.24e-07)."""
    if x is None:
        return "n/a"
    if abs(x) >= 1000:
        return f"{float(f'{x:.3g}'):,.0f}{unit}"
    if 0 < abs(x) < 0.001:
        return f"{'<' if x > 0 else '>−'}0.001{unit}"      # below what a table should claim to know
    return f"{x:.3g}{unit}"


def _step(value: float, ci: Sequence[float] | None, percent: bool) -> float | None:
    """The rounding step of an estimate: the first significant digit of its interval's half-width (no digit
    finer than the interval can tell), and no coarser than the estimate's own first digit. Percents: whole
    points from 10% up, tenths below (finer would claim more than a model of a disease knows). None: no
    interval to judge by (three significant digits)."""
    if not ci or ci[0] is None or ci[1] is None or not ci[1] > ci[0]:
        return None
    step = 10.0 ** math.floor(math.log10((ci[1] - ci[0]) / 2))
    if value:
        step = min(step, 10.0 ** math.floor(math.log10(abs(value))))
    return min(max(step, 1.0 if abs(value) >= 10 else 0.1), 1.0) if percent else step


def _rounded(x: float, step: float | None, unit: str = "") -> str:
    if step is None:
        return _num(x, unit)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    v = round(x / step) * step
    return f"{v:,.{decimals}f}{unit}".replace("-", "−") if v else f"0{unit}"


def _estimate(value: float, ci: Sequence[float | None] | None, scale: float = 1.0, unit: str = "",
              never_negative: bool = False) -> str:
    """``value`` with its 95% interval, every number rounded to what the interval supports."""
    v = value * scale
    if not ci:
        return _num(v, unit)
    lo, hi = (None if c is None else c * scale for c in ci)
    if lo is not None and never_negative:
        lo = max(0.0, lo)
    if lo is not None and hi is not None and hi <= lo:      # every patient alike: an interval says nothing
        return _num(v, unit)
    if unit != "%" and lo is not None and hi is not None and 0 <= lo and hi < 0.001:
        return f"<0.001{unit} (95% CI all below 0.001{unit})"     # no digits below what a table should claim
    step = _step(v, [lo, hi], unit == "%") if hi is not None else None
    high = _rounded(hi, step, unit) if hi is not None else "not reached"
    low = _rounded(lo, step) if lo is not None else "n/a"
    if step is not None and low + unit == high:        # narrower than the shown digit: say so, not "96–96%"
        half = _rounded(step / 2, step / 10).rstrip("0").rstrip(".")
        return f"{_rounded(v, step, unit)} (95% CI within ±{half}{' points' if unit == '%' else ''})"
    dash = " to " if lo is not None and lo < 0 else "–"      # "−0.24–0.14" reads as a subtraction
    return f"{_rounded(v, step, unit)} (95% CI {low}{dash}{high})"


def _two(x: float | None, unit: str = "") -> str:
    """Two significant digits (a value that describes patients, not the precision of an estimate), percents
    in whole points from 10% up, values below 0.001 shown as such."""
    if x is None:
        return "n/a"
    if not x:
        return f"0{unit}"
    if unit != "%" and abs(x) < 0.001:
        return _num(x, unit)
    own = 10.0 ** (math.floor(math.log10(abs(x))) - 1)
    return _rounded(x, max(own, 1.0) if unit == "%" and abs(x) >= 10 else own, unit)


def _spread(median: float | None, p05: float | None, p95: float | None, unit: str) -> str:
    """Median and the middle 90% of patients, each to two significant digits of its own (a median far below
    the mean keeps its digits)."""
    low, high = _two(p05, unit), _two(p95, unit)
    if low == high:
        return f"median {_two(median, unit)} [5–95%: all {'below' if low.startswith('<') else 'about'} " \
               f"{low.lstrip('<')}]"
    dash = " to " if p05 is not None and p05 < 0 else "–"
    return f"median {_two(median, unit)} [5–95%: {low}{dash}{high}]"


def _arms(data: ReportData) -> list[dict]:
    return data.summary["arms"]


def _model(data: ReportData) -> Model:
    return data.model or build_model()


# ---- sections ---------------------------------------------------------------------------------

def configuration(data: ReportData) -> Section:
    cfg = data.summary["config"]
    rows = [[f"trial.{k}", str(v)] for k, v in cfg["trial"].items()]
    rows += [[f"population.{k}", str(v)] for k, v in cfg["population"].items() if v is not None]
    for i, arm in enumerate(cfg["arm"]):
        rows += [[f"arm[{i}].{k}", str(v)] for k, v in arm.items() if v is not None]
    note = Markup(f"<p class='note'>{escape(COVARIATE_NOTE)}</p>")
    return Section("configuration", "Configuration", _table(["setting", "value"], rows) + note)


def trajectory_figure(data: ReportData, col: str, title: str, log: bool) -> plt.Figure:
    """One trajectory panel: each arm's median and 90% band.

    On a count with an assay limit (:data:`DETECTION_LIMITS`), values below the limit are undetectable:
    the band below it is shaded and labelled, and no line or band is drawn under it (an arm whose
    median never reaches the limit is named as undetectable in the legend)."""
    fig, ax = plt.subplots(figsize=PANEL_SIZE)
    limit, assay = DETECTION_LIMITS.get(col, (None, ""))
    for name, b in data.bands.items():
        lo, mid, hi = (b[f"{col}_{q}"].to_numpy(float) for q in ("p05", "median", "p95"))
        day = b["day"].to_numpy(float)
        if limit is not None:
            seen = hi >= limit
            mid = np.where(mid >= limit, mid, np.nan)
            lo, hi = np.where(seen, np.maximum(lo, limit), np.nan), np.where(seen, hi, np.nan)
            if not seen.any():
                ax.plot([], [], ls="none", marker="none", label=f"{name}: below the limit throughout")
                continue
        line, = ax.plot(day, mid, label=name)
        ax.fill_between(day, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    if log:
        ax.set_yscale("log")
    else:       # levels, shares and scores are never negative: start at 0, so a fall is not drawn larger than it is
        ax.set_ylim(bottom=0)
    if limit is not None:
        top = max(10 * limit, ax.get_ylim()[1] if ax.has_data() else 10 * limit)
        ax.set_ylim(limit / 4, top)
        ax.axhspan(limit / 4, limit, color="0.85", lw=0, zorder=0)
        ax.axhline(limit, color="0.35", ls=":", lw=1.2)
        ax.text(0.02, limit * 0.9, f"below detection limit ({assay}, {limit:g}/µL)",
                transform=ax.get_yaxis_transform(), fontsize=8, color="0.25", va="top")
    for value, text in REFERENCE_LINES.get(col, ()):
        ax.axhline(value, color="tab:green", ls="--", lw=1)
        ax.text(0.3, value * 1.1, f"{text} ({value:g}/µL)", transform=ax.get_yaxis_transform(), fontsize=8,
                color="tab:green", ha="left", va="bottom")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("day (0 = CAR-T infusion or first dose)")
    ax.grid(alpha=0.25)
    days = [b["day"].to_numpy(float) for b in data.bands.values() if len(b)]
    if days:
        ax.set_xlim(min(d.min() for d in days), max(d.max() for d in days))
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def _disease_panels(data: ReportData) -> list[tuple[str, str, bool]]:
    """The disease panels (:data:`DISEASE_PANELS`) this trial's arms have values in."""
    disease = data.scenarios[0][1].disease if data.scenarios else None
    out = []
    for col, title, log in DISEASE_PANELS:
        if not all(f"{col}_p95" in b for b in data.bands.values()):
            continue
        if not any(np.nanmax(b[f"{col}_p95"].to_numpy(float), initial=0.0) > 0 for b in data.bands.values()):
            continue
        if col == "autoantibody_level" and (disease is None or not disease.names_autoantibody):
            continue
        out.append((col, title.format(autoantibody=disease.autoantibody if disease else "autoantibody"), log))
    return out


def trajectories(data: ReportData) -> Section:
    figures = [_figure(trajectory_figure(data, col, title, log), title)
               for col, title, log in (*TRAJECTORY_PANELS, *_disease_panels(data))]
    text = Markup(f"<p>Median (line) and 90% band (5th–95th percentile, shaded) over the first "
                  f"{data.band_patients} patients of each arm (failed simulations left out). Counts below the "
                  f"assay's detection limit (B cells {REAPPEARANCE_LIMIT:g}/µL, CAR-T cells "
                  f"{CART_DETECTION_LIMIT:g}/µL) are undetectable: the grey band marks that range and no line is "
                  f"drawn in it.</p>")
    return Section("trajectories", "Trajectories", text + _panels(figures))


def _of_kind(data: ReportData, kind: str) -> list[str]:
    """Endpoints of ``kind`` that apply to at least one arm."""
    arms = _arms(data)
    return [n for n, e in arms[0]["endpoints"].items()
            if e["kind"] == kind and any(a["endpoints"][n].get("applicable", True) for a in arms)]


def _event_arms(data: ReportData, name: str) -> list[tuple[int, pd.DataFrame]]:
    """(arm index, its solved patients to whom endpoint ``name`` applies) for every arm with such patients."""
    ok = data.patients[data.patients["status"] == "ok"]
    out = []
    for a, arm in enumerate(_arms(data)):
        rows = ok[(ok["arm"] == a) & ok[name].notna()]
        if arm["endpoints"][name].get("applicable", True) and len(rows):
            out.append((a, rows))
    return out


def event_figure(data: ReportData, name: str, arms: list[tuple[int, pd.DataFrame]]) -> plt.Figure:
    """Kaplan-Meier curves of endpoint ``name``, one per arm it applies to, drawn to the last follow-up."""
    fig, ax = plt.subplots(figsize=PANEL_SIZE)
    n_solved = data.patients[data.patients["status"] == "ok"].groupby("arm").size()
    for a, rows in arms:
        arm = _arms(data)[a]
        censored = rows[dictionary.censoring(name)].to_numpy(bool)
        time = rows[name].to_numpy(float)
        km = kaplan_meier(time, ~censored)
        end = float(time.max())
        t = np.concatenate([[0.0], km.time, [end]])
        surv = np.concatenate([[1.0], km.survival, [km.survival[-1] if km.survival.size else 1.0]])
        lower = np.concatenate([[1.0], km.lower, [km.lower[-1] if km.lower.size else 1.0]])
        upper = np.concatenate([[1.0], km.upper, [km.upper[-1] if km.upper.size else 1.0]])
        who = "" if len(rows) == n_solved.get(a, 0) else f" ({len(rows)} of {n_solved.get(a, 0)} patients)"
        line, = ax.step(t, surv, where="post", label=f"{arm['name']}{who}")
        ax.fill_between(t, lower, upper, step="post", color=line.get_color(), alpha=0.15, lw=0)
    ax.set_title(label(name), fontsize=10, wrap=True)
    ax.set_xlabel("weeks after the last dose" if name.endswith("_week") else "day")
    ax.set_ylabel("share of patients without the event")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def event_curves(data: ReportData) -> Section:
    """Kaplan-Meier panels of the time-to-event endpoints; an endpoint no arm can show is left out, and said so."""
    arms_all = _arms(data)
    names = [n for n, e in arms_all[0]["endpoints"].items() if e["kind"] == "time_to_event"]
    figures, left_out, partial = [], [], []
    for name in names:
        arms = _event_arms(data, name)
        if not arms:
            left_out.append(f"{label(name)} (it applies to no patient in any arm)")
            continue
        events = sum(int((~rows[dictionary.censoring(name)].to_numpy(bool)).sum()) for _, rows in arms)
        if events == 0:
            left_out.append(f"{label(name)} (no patient had the event within the horizon)")
            continue
        if len(arms) < len(arms_all):
            shown = {a for a, _ in arms}
            missing = ", ".join(a["name"] for i, a in enumerate(arms_all) if i not in shown)
            partial.append(f"{label(name)}: drawn only for {', '.join(arms_all[a]['name'] for a in sorted(shown))}; "
                           f"it applies to no patient of {missing}.")
        figures.append(_figure(event_figure(data, name, arms), f"Kaplan-Meier curve: {label(name)}"))
    if not names:
        return Section("events", "Time to event", Markup("<p>No time-to-event endpoints.</p>"))
    text = Markup("<p>Kaplan–Meier curves with pointwise 95% bands (Greenwood, log-log), censored at the "
                  "horizon. A curve counts only the patients to whom the endpoint applies (a return needs a fall "
                  "first; the CAR-T course needs CAR-T cells).</p>")
    if left_out:
        text += Markup("<p class='note'>Not drawn: ") + escape("; ".join(left_out)) + Markup(".</p>")
    if partial:
        text += Markup("<p class='note'>") + escape(" ".join(partial)) + Markup("</p>")
    return Section("events", "Time to event", text + (_panels(figures) if figures else Markup("")))


def toxicity_figure(data: ReportData, name: str) -> plt.Figure:
    """Share of patients by worst grade of ``name``, one bar per arm."""
    arms = _arms(data)
    fig, ax = plt.subplots(figsize=PANEL_SIZE)
    width = 0.8 / len(arms)
    for a, arm in enumerate(arms):
        fr = arm["endpoints"][name]["fractions"]
        ax.bar(np.arange(5) + (a - (len(arms) - 1) / 2) * width, [100 * (fr[str(g)] or 0) for g in range(5)],
               width, label=arm["name"])
    ax.set_xticks(range(5))
    ax.set_xlabel("worst grade (ASTCT; 0 = none)")
    ax.set_ylabel("% of patients")
    ax.set_ylim(0, 100)
    ax.set_title(label(name), fontsize=10)
    ax.grid(alpha=0.25, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def toxicity(data: ReportData) -> Section:
    names = _of_kind(data, "ordinal")
    if not names:
        return Section("toxicity", "CRS and ICANS", Markup("<p>No graded endpoints.</p>"))
    figures = [_figure(toxicity_figure(data, n), f"{label(n)}: share of patients by grade") for n in names]
    return Section("toxicity", "CRS and ICANS", _panels(figures))


def _cell(name: str, e: dict, ci: dict) -> str:
    """One arm's entry for endpoint ``name`` (``e`` from summary.json; ``ci`` its intervals)."""
    kind = e["kind"]
    if not e.get("applicable", True):
        return "not applicable"
    if kind == "time_to_event":
        median = ("not reached" if e["km_median"] is None
                  else _estimate(e["km_median"], e["km_median_ci95"]))
        return (f"median {median} (Kaplan–Meier); events {e['n_events']}/{e['n_events'] + e['n_censored']}"
                + (f" ({e['n_not_applicable']} not applicable)" if e.get("n_not_applicable") else ""))
    if kind == "ordinal":
        parts = []
        for key, grade in (("fraction_any", "any"), ("fraction_grade3plus", "grade ≥3")):
            p = e[key]
            parts.append("n/a" if p is None else
                         f"{grade} {_estimate(p, ci.get(key), 100, '%')}")
        return "; ".join(parts)
    if kind in ("binary", "rate"):
        if e["value"] is None:
            return "not applicable"
        if kind == "rate" and e["value"] == 0:
            return "0 (no events)"
        scale, unit = (100, "%") if kind == "binary" else (1, "")
        return _estimate(e["value"], e["ci95"], scale, unit)
    if e["n"] == 0:
        return "not applicable"
    scale, unit = (100, "%") if _is_share(name) else (1, "")
    never_negative = e["p05"] is not None and e["p05"] >= 0    # then the interval stops at 0
    mean = _estimate(e["mean"], ci.get("mean"), scale, unit, never_negative)
    q = [None if e[k] is None else e[k] * scale for k in ("median", "p05", "p95")]
    if q[1] == q[2]:
        return f"mean {mean}; {_spread(*q, unit).split('all about ')[-1].rstrip(']')} in every patient" \
            if e["n"] > 1 else f"{mean} (one patient)"
    return f"mean {mean}; {_spread(*q, unit)}"


def _is_share(name: str) -> bool:
    """A measured endpoint that is a share of baseline (endpoint dictionary: ``..._fraction...``), shown in %."""
    return "fraction" in name


def endpoint_table(data: ReportData) -> Section:
    arms = _arms(data)
    header = ["endpoint", *(f"{a['name']} (n={a['n']}, failed {a['n_failed']})" for a in arms)]
    names = list(arms[0]["endpoints"])
    ranges = data.intervals or {}
    rows = [[label(name), *(_cell(name, a["endpoints"][name], ranges.get(a["name"], {}).get(name, {}))
                            for a in arms)] for name in names]
    attrs = [f'id="endpoint-{escape(n)}" title="{escape(n)}"' for n in names]
    note = Markup("<p class='note'>Measured values: mean with its 95% confidence interval (Student t, "
                  "cut at 0 for quantities that are never negative; shares of baseline in %), "
                  "median and the range of the middle 90% of patients. Shares of patients: Wilson 95% interval. "
                  "Numbers are rounded to the first digit their interval can tell. "
                  "Times to an event: Kaplan–Meier median. Definitions: the cartsim endpoint dictionary (hover a "
                  "row for the endpoint's name there).</p>")
    return Section("endpoints", "Endpoints", _table(header, rows, attrs) + note + _by_course(arms, ranges))


def _by_course(arms: list[dict], ranges: dict[str, dict]) -> Markup:
    """The endpoint table again for each disease course, when the population mixes courses."""
    groups = [(a["name"], c, g) for a in arms for c, g in a.get("by_ms_course", {}).items()]
    if not groups:
        return Markup("")
    header = ["endpoint", *(f"{name}: {c} (n={g['n']}, failed {g['n_failed']})" for name, c, g in groups)]
    rows = [[label(name), *(_cell(name, g["endpoints"][name], ranges.get(f"{a}/{c}", {}).get(name, {}))
                            for a, c, g in groups)]
            for name in arms[0]["endpoints"]]
    text = Markup("<h3 id='endpoints-by-course'>By MS course</h3><p>The population mixes MS courses (each "
                  "patient's course drawn from its own random stream); the same endpoints for the patients of each "
                  "course. Subgroups are smaller, so their intervals are wider.</p>")
    return text + _table(header, rows)


def failures(data: ReportData) -> Section:
    failed = data.patients[data.patients["status"] != "ok"]
    if failed.empty:
        return Section("failures", "Failed simulations", Markup("<p>None: every patient was solved.</p>"))
    names = {a: arm["name"] for a, arm in enumerate(_arms(data))}
    counts = failed.groupby(["arm", "status"]).size()
    rows = [[names[a], reason, str(k)] for (a, reason), k in counts.items()]
    note = Markup("<p>Each failed patient is listed in failures.parquet; failed patients have no endpoint "
                  "values and are left out of the statistics.</p>")
    return Section("failures", "Failed simulations", _table(["arm", "reason", "patients"], rows) + note)


def _plain(v: object) -> str:
    if isinstance(v, list):
        return "–".join(_plain(x) for x in v)
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def _observed(observed: object) -> str:
    """A target's observation in one line: ``mean 110, sd 32 (day)``."""
    if not isinstance(observed, dict):
        return _plain(observed)
    parts = [_plain(v) if k == "qualitative" else f"{k} {_plain(v)}" for k, v in observed.items() if k != "unit"]
    return ", ".join(parts) + (f" ({observed['unit']})" if observed.get("unit") else "")


def _validation_rows(v: Validation) -> Markup:
    """One row per check; a target's id, quantity, observation and source span its checks' rows."""
    known, by_target = targets(), {}
    for c in v.checks:
        by_target.setdefault(c.id, []).append(c)
    rows = []
    for tid, checks in by_target.items():
        t = known.get(tid, {})
        span = f' rowspan="{len(checks)}"'
        for i, c in enumerate(checks):
            predicted = "not computed" if c.predicted != c.predicted else f"{c.predicted:.4g}"
            cells = (f"<td>{escape(c.metric)}</td><td>{escape(predicted)}</td>"
                     f"<td>[{c.accept[0]:g}, {c.accept[1]:g}]</td>"
                     f"<td class='result'>{'pass' if c.passed else 'MISSED'}</td>")
            if i == 0:
                cells = (f"<td{span}>{escape(tid)}<div class='note'>{escape(t.get('quantity', ''))}</div></td>"
                         + cells + f"<td{span}>{escape(_observed(t.get('observed', '')))}</td>"
                         f"<td{span}>{escape(str(t.get('source', '')))}</td>")
            rows.append(f"<tr class='{'pass' if c.passed else 'miss'}'>{cells}</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("target", "metric", "predicted", "acceptance window", "result",
                                              "observed", "source"))
    return _scroll(Markup(f"<table class='validation'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
                          "</table>"))


def validation_table(data: ReportData) -> Section:
    title = "Validation against published data"
    v = data.validation
    if v is None:
        return Section("validation", title, Markup(
            "<p>Not run: this report was made with <code>--no-validation</code>. Run the trial without it, or "
            "<code>cartsim validate</code>, to compare the model with the published targets.</p>"))
    n_miss = len(v.missed)
    text = Markup(f"<p>cartsim {escape(data.summary.get('cartsim_version', ''))} against "
                  f"{len({c.id for c in v.checks})} published targets: {len(v.checks) - n_miss} of {len(v.checks)} "
                  f"checks pass, <strong>{n_miss} missed</strong>. Each acceptance key of a target is one check: "
                  f"the model's prediction (a virtual population of {POP_N} or the typical patient, in the target's "
                  "clinical context) must fall in the acceptance window. Missed checks are targets the model does "
                  "not reproduce yet; they are listed, not adjusted. The same checks: "
                  "<code>cartsim validate</code>.</p>")
    fig = product_figure(v.checks)
    products = Markup("") if fig is None else Markup(
        "<p>CAR-T products, one row per check: where the model's prediction falls on the published acceptance "
        "window (shaded), so products and settings can be compared at a glance. On a narrow screen the figure "
        "scrolls sideways.</p>") + _scroll(_figure(
            fig, "CAR-T products: each check's prediction against its published acceptance window", wide=True))
    return Section("validation", title, text + products + _validation_rows(v))


def methods(data: ReportData) -> Section:
    model = _model(data)
    fingerprint = hashlib.sha256(model.fingerprint().encode()).hexdigest()[:12]
    text = Markup(
        f"<p>The cartsim model has {len(model.states)} states, {len(model.flows)} flows, "
        f"{len(model.parameters)} free and {len(model.derived)} derived parameters and {len(model.observables)} "
        f"observables (model fingerprint {fingerprint}). Each flow moves an amount per day from one state to "
        "another or across the system boundary, so the rate of change of a state is the flows into it minus the "
        "flows out of it. The equations below are generated from the model definition that the solver is compiled "
        "from. Flows are written with the observables (named quantities, listed per component) in place of their "
        "definitions. Doses (lymphodepletion, infusions, injections, rescue medication) are events that add to "
        "states at their times; between events the states follow these equations. Parameter values: see "
        "<a href='#parameters'>Parameters</a>.</p>")
    return Section("methods", "Methods: model equations", text + Markup('<div class="equations">')
                   + equations_html(model) + Markup("</div>"))


def _value(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.6g}"


def _omega(r: ParameterRecord) -> str:
    """A parameter's IIV cell: its omega, and where the omega's provenance differs from the value's, that too."""
    if not r.iiv_omega:
        return "–"
    return f"{r.iiv_omega:g}" + (f" ({r.iiv_kind}: {r.iiv_source})" if r.iiv_kind else "")


def parameter_table(data: ReportData) -> Section:
    model = _model(data)
    derived = {n for n, _ in model.derived}
    rows, attrs = [], []
    for r in model.table:     # every parameter, used by the equations or by a scenario
        value: str | Markup = _value(r.value)
        if r.value is None:
            value = Markup(f'<a href="#eq-{escape(r.name)}">derived</a>') if r.name in derived else "derived"
        rows.append([r.name, value, r.unit, r.component, r.kind, r.source, r.description,
                     _omega(r)])
        attrs.append(f'id="param-{escape(r.name)}"')
    table = _table(["name", "value", "unit", "component", "kind", "source", "description", "IIV ω"], rows, attrs)
    text = Markup(f"<p>Every parameter of the cartsim parameter table ({len(model.table)}), with its provenance: "
                  "<em>literature</em> (read in a publication), <em>derived</em> (computed from others, see the "
                  "equations), <em>calibrated</em> (fitted to the published targets) or <em>assumed</em>. IIV ω: "
                  "standard deviation of the log-normal inter-individual variability (– none), with its own "
                  "provenance where it differs from the value's. The same table: "
                  "<code>cartsim parameters</code>.</p>")
    arm_rows = []
    for arm_name, scenario in data.scenarios:
        parts = scenario.by_course()
        for sc, share in parts:     # a population mixing disease courses: the values of each course
            name = arm_name if len(parts) == 1 else f"{arm_name} ({sc.course}, {100 * share:.0f}% of patients)"
            prov, values = sc.parameter_provenance(), sc.parameter_values(model.table)
            for key in dict.fromkeys([*prov, *values]):
                rec = model.table[key] if key in model.table else None
                p = prov.get(key, {})
                arm_rows.append([name, key, _value(rec.value) if rec else "n/a", _value(values.get(key)),
                                 rec.unit if rec else "", p.get("kind", "–"), p.get("set_by", ""),
                                 p.get("source", "")])
    arms = Markup("<h3 id='arm-parameters'>Values set by each arm</h3>"
                  "<p>The disease, CAR-T product or antibody of an arm replaces these table values for its patients "
                  "(typical values; antibody parameters keep each patient's random effect). Every other parameter "
                  "has its table value.</p>")
    arms += _table(["arm", "parameter", "table value", "arm value", "unit", "kind", "set by", "source"], arm_rows) \
        if arm_rows else Markup("<p>No arm changes a table value.</p>")
    return Section("parameters", "Parameters", text + table + arms)


DURABILITY_EVIDENCE = (
    "Which half-life is right is unknown in MS: there are no data yet. In lupus, drug-free remissions have lasted "
    "more than two years after B cells came back (Mueller et al., NEJM 2024), which supports a half-life of at "
    "least about 2 years there. The model's default, 5 years, is an assumption (kind 'assumed' in "
    "cartsim parameters).")


def _years(v: float) -> str:
    return f"{v:.1f}"


def durability(data: ReportData) -> Section:
    """The CAR-T arms across reset half-lives over their own horizon (cartsim.trial.durability)."""
    table = data.durability
    horizon = (float(table["horizon_years"].iloc[0]) if table is not None and "horizon_years" in table
               and len(table) else None)
    over = f"over {horizon:g} years" if horizon is not None else "over several years"
    text = Markup(
        "<p>After CD19 CAR-T the autoreactive B-cell clones are removed and new B cells return naive: the "
        "<em>reset</em>. How long it lasts before new autoreactive clones are recruited is set in cartsim by the "
        "parameter <code>reset_halflife</code> (default 5 years, with wide variability between patients). "
        f"{escape(DURABILITY_EVIDENCE)}</p>"
        f"<p>A trial of one or two years cannot show the difference, so each CAR-T arm was re-run {over} "
        "(<code>[durability] horizon_years</code> in the trial file) with its first patients at each half-life "
        "below; everything else is unchanged. Autoreactive clones are back when autoreactive memory B cells reach "
        "10% of their baseline. Relapse rates in the first year and later are the model's expected rates; the "
        "other columns are drawn events over the whole horizon.</p>")
    if table is None or table.empty:
        return Section("durability", "How long the reset lasts", text + Markup(
            "<p>Not run: the trial has no CD19 CAR-T arm (a BCMA CAR-T removes plasma cells but not the "
            "autoreactive memory B cells, so it makes no reset), or the range was not asked for.</p>"))
    late = f"relapses / patient-year, year 5 to {horizon:g}" if horizon is not None else "relapses, later years"
    cols = [("arm", "arm", str), ("reset_halflife_years", "reset half-life (years)", lambda v: f"{v:g}"),
            ("n", "patients", lambda v: f"{int(v)}"),
            ("autoreactive_return_fraction", f"autoreactive clones back {over}", lambda v: f"{100 * v:.0f}%"),
            ("autoreactive_return_median_years", "median years to their return (Kaplan–Meier)", _years),
            ("relapse_rate_year1", "relapses / patient-year, year 1", lambda v: f"{v:.2g}"),
            ("relapse_rate_late", late, lambda v: f"{v:.2g}"),
            ("gd_lesions_per_scan", "active MRI lesions / scan", lambda v: f"{v:.2g}"),
            ("cdp12_fraction", f"12-week confirmed worsening {over}", lambda v: f"{100 * v:.0f}%"),
            ("edss_change", "mean EDSS change", lambda v: f"{v:+.1f}")]
    cols = [c for c in cols if c[0] in table]
    missing = {"autoreactive_return_median_years": "not reached"}
    rows = [[fmt(r[k]) if r[k] == r[k] else missing.get(k, "n/a") for k, _, fmt in cols] for _, r in table.iterrows()]
    return Section("durability", "How long the reset lasts", text + _table([h for _, h, _ in cols], rows))


UNCERTAINTY_STATISTIC = {"mean": "mean", "value": "", "fraction_any": "any grade", "fraction_grade2plus": "grade ≥2",
                         "km_median": "Kaplan–Meier median", "event_share": "share with the event"}


def parameter_uncertainty(data: ReportData) -> Section:
    """Which part of the spread is between patients and which is what is not known about the biology."""
    title = "Patients differ, and the biology is uncertain"
    meta = data.summary.get("parameter_uncertainty")
    lead = ("The ranges in the endpoint table (5–95% of patients) are differences between patients: the model's "
            "between-patient variability. They do not include what is not yet known about the biology itself: "
            "the values of the parameters labelled assumed or calibrated in the parameter table. ")
    if not meta:
        return Section("uncertainty", title, Markup("<p>") + escape(lead) + Markup(
            "This run did not vary them; <code>cartsim trial CONFIG --uncertainty K</code> re-runs the same "
            "patients over K parameter sets drawn from the table's uncertainty ranges and shows here how much "
            "each answer moves.</p>"))
    names = ", ".join(p["name"] for p in meta["parameters"])
    text = Markup("<p>") + escape(lead) + escape(
        f"Here the same patients were re-run over {meta['sets']} parameter sets (Latin hypercube sampling over "
        f"the uncertainty ranges of {len(meta['parameters'])} parameters). The last column of each arm is the "
        "2.5–97.5% range of the arm's result over those sets: “we do not know the biology yet”. Where it is "
        "wide, the answer depends on values nobody has measured; where it is narrow, the answer holds whatever "
        "their true values.") + Markup("</p>")
    defaults = int(meta.get("default_ranges", 0))
    if defaults:
        text += Markup("<p><strong>") + escape(
            f"{'All' if defaults == len(meta['parameters']) else defaults} of these "
            f"{len(meta['parameters'])} ranges {'is' if defaults == 1 else 'are'} cartsim's stated default (2-fold either side of the value, "
            "fractions kept inside 0–1), an assumption rather than evidence") + Markup("</strong>") + escape(
            ": varying so many values that far at once can give combinations no patient shows, so read the "
            "intervals as how fragile an answer is, not as a probability.") + Markup("</p>")
    if defaults < len(meta["parameters"]):
        text += Markup("<p>") + escape(
            f"{'All' if not defaults else len(meta['parameters']) - defaults} of these ranges "
            f"{'comes' if len(meta['parameters']) - defaults == 1 and defaults else 'come'} from the "
            "parameter table (its uncertainty column), each with the reason it states: a calibration's search "
            "grid, a published span, or a stated assumption.") + Markup("</p>")
    text += Markup(f"<p class='note'>Parameters varied: {escape(names)}.</p>")
    arms = _arms(data)
    header = ["endpoint", "measure"] + [h for a in arms for h in (f"{a['name']}: this run",
                                                                 f"{a['name']}: over parameter sets")]
    rows = []
    for name in arms[0]["endpoints"]:
        stats = [s for s in UNCERTAINTY_STATISTIC if any(s in a["endpoints"][name].get("parameter_uncertainty", {})
                                                         for a in arms)]
        for stat in stats:
            row = [label(name), UNCERTAINTY_STATISTIC[stat] or "value"]
            for a in arms:
                e = a["endpoints"][name]
                u = e.get("parameter_uncertainty", {}).get(stat)
                share = stat in ("fraction_any", "fraction_grade2plus", "event_share") or \
                    (stat == "value" and e["kind"] == "binary") or (stat == "mean" and _is_share(name))
                unit, scale = ("%", 100) if share else ("", 1)
                base = _base_value(e, stat)
                row.append("n/a" if base is None else _two(base * scale, unit))
                row.append(_over_sets(u, scale, unit, stat == "km_median"))
            if any(c != "n/a" for c in row[2:]):
                rows.append(row)
    return Section("uncertainty", title, text + _table(header, rows))


def _over_sets(u: dict | None, scale: float, unit: str, median: bool) -> str:
    """An arm statistic's 2.5-97.5% range over the parameter sets, rounded like the patients' spread
    (``median``: a Kaplan-Meier median, which a set may not reach)."""
    if u is None or u["n_sets"] == 0:
        return "not reached in any set" if median and u and u.get("n_sets_undefined") else "n/a"
    low, high = _two(u["p025"] * scale, unit), _two(u["p975"] * scale, unit)
    text = "the same in every set" if low == high else f"{low}{' to ' if u['p025'] < 0 else '–'}{high}"
    missing = u.get("n_sets_undefined", 0)
    return text + (f" ({missing} set{'s' if missing != 1 else ''} not reached)" if median and missing else "")


def _base_value(e: dict, stat: str) -> float | None:
    if stat == "event_share":
        total = e.get("n_events", 0) + e.get("n_censored", 0)
        return e["n_events"] / total if total else None
    return e.get(stat)


def sensitivity(data: ReportData) -> Section | None:
    """The parameters that move the headline endpoints most (``cartsim sensitivity``); only with its
    ``sensitivity.json``."""
    doc = data.sensitivity
    if not doc or doc.get("config") != data.summary.get("trial"):     # none, or of another trial
        return None
    from cartsim.outputs.sensitivity import panels

    sobol = doc["method"]["name"] == "sobol"
    rank, measure = ("ST", "total-order Sobol index") if sobol else ("mu_star", "Morris mu*")
    text = Markup("<p>") + escape(
        f"cartsim sensitivity varied {len(doc['parameters'])} parameters over their uncertainty ranges "
        f"({len(doc['default_ranges'])} with the default 2-fold range) in {doc['n_rows']} parameter sets, each "
        + ("the typical patient" if doc["outcome"] == "typical" else "the mean of a virtual cohort")
        + f". For each headline endpoint, the five parameters that move it most, by {measure} with its 95% "
        "interval; sensitivity.json, sensitivity.parquet and sensitivity.png hold every endpoint.") + Markup("</p>")
    rows = []
    for e in panels(doc, data.summary.get("config", {}).get("trial", {}).get("primary_endpoint")):
        best = "; ".join(f"{p} {_two(v[rank]['value'])}" + _interval(v[rank]["ci95"])
                         for p, v in list(e["indices"].items())[:5])
        rows.append([e["arm"], e["label"], best + (f" ({e['warning']})" if "warning" in e else "")])
    return Section("sensitivity", "Which parameters matter", text + _scroll(_table(["arm", "endpoint",
                                                                                   "parameters"], rows)))


def _interval(ci: list[float] | None) -> str:
    return f" ({_two(max(ci[0], 0.0))}–{_two(ci[1])})" if ci else ""


SECTIONS: tuple[Callable[[ReportData], Section | None], ...] = (
    configuration, endpoint_table, parameter_uncertainty, trajectories, event_curves, toxicity, durability,
    sensitivity, failures, validation_table, methods, parameter_table)


def render(data: ReportData) -> str:
    env = Environment(autoescape=select_autoescape(default=True))
    template = env.from_string(resources.files("cartsim.outputs").joinpath("report.html.j2").read_text())
    sections = [s for s in (build(data) for build in SECTIONS) if s is not None]
    return template.render(summary=data.summary, disclaimer=DISCLAIMER, sections=sections)


def write_report(path: Path, data: ReportData) -> None:
    """Render the report and write it atomically to ``path`` (with the sensitivity section when ``path``'s
    folder holds a ``sensitivity.json``)."""
    found = Path(path).parent / "sensitivity.json"
    if data.sensitivity is None and found.is_file():
        data = replace(data, sensitivity=json.loads(found.read_text()))
    write_text_atomic(path, render(data))
