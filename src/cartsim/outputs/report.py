"""``report.html``: one self-contained page per trial (figures embedded as base64 PNG).

The page is a list of sections; each is built by one function of
:data:`SECTIONS` from the :class:`ReportData`. New sections (model equations,
parameter table, validation results) are new functions added to that list.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from jinja2 import Environment, select_autoescape  # noqa: E402
from markupsafe import Markup, escape  # noqa: E402

from cartsim.outputs.files import write_text_atomic  # noqa: E402
from cartsim.outputs.plots import FLOOR, FOOTER  # noqa: E402
from cartsim.trial.stats import Z95, kaplan_meier, wilson  # noqa: E402
from cartsim.trial.summary import censoring  # noqa: E402

DISCLAIMER = ("cartsim is research software. Its results are simulations of a mathematical model, not "
              "predictions for any patient, and not medical advice. CAR T-cell therapy for multiple sclerosis "
              "and other autoimmune diseases is investigational.")
COVARIATE_NOTE = ("Age eligibility, baseline EDSS and MS course are drawn and recorded as patient covariates "
                  "(patients.parquet); they do not yet change the simulation: no model parameter depends on "
                  "age, and the MS disease-activity model (relapses, lesions, EDSS) is not yet part of cartsim.")
TRAJECTORY_PANELS = (("b_blood_per_uL", "CD19+ B cells, blood (cells/uL)", True),
                     ("car_blood_per_uL", "CAR-T cells, blood (cells/uL)", True),
                     ("igg", "total IgG (g/L)", False))


@dataclass(frozen=True)
class ReportData:
    summary: dict                        # summary.json
    patients: pd.DataFrame               # arm, status and the time-to-event columns of every patient
    bands: dict[str, pd.DataFrame]       # arm name -> day, <column>_p05, _median, _p95
    band_patients: int                   # patients per arm behind the bands


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    body: Markup


# ---- small HTML and figure helpers ------------------------------------------------------------

def _table(header: list[str], rows: list[list[str | Markup]]) -> Markup:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return Markup(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _figure(fig: plt.Figure, alt: str) -> Markup:
    buf = io.BytesIO()
    fig.text(0.99, 0.005, FOOTER, ha="right", va="bottom", fontsize=7, color="grey")
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return Markup(f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">')


def _num(x: float | None, unit: str = "") -> str:
    return "n/a" if x is None else f"{x:.3g}{unit}"


def _ci(ci: Sequence[float | None] | None, scale: float = 1.0, unit: str = "") -> str:
    if not ci:
        return ""
    lo, hi = (None if v is None else v * scale for v in ci)
    return f" (95% CI {_num(lo)}–{_num(hi) if hi is not None else 'not reached'}{unit})"


def _arms(data: ReportData) -> list[dict]:
    return data.summary["arms"]


# ---- sections ---------------------------------------------------------------------------------

def configuration(data: ReportData) -> Section:
    cfg = data.summary["config"]
    rows = [[f"trial.{k}", str(v)] for k, v in cfg["trial"].items()]
    rows += [[f"population.{k}", str(v)] for k, v in cfg["population"].items() if v is not None]
    for i, arm in enumerate(cfg["arm"]):
        rows += [[f"arm[{i}].{k}", str(v)] for k, v in arm.items() if v is not None]
    note = Markup(f"<p class='note'>{escape(COVARIATE_NOTE)}</p>")
    return Section("configuration", "Configuration", _table(["setting", "value"], rows) + note)


def trajectories(data: ReportData) -> Section:
    fig, axes = plt.subplots(1, len(TRAJECTORY_PANELS), figsize=(15, 4.2))
    for ax, (col, label, log) in zip(axes, TRAJECTORY_PANELS):
        for name, b in data.bands.items():
            lo, mid, hi = (b[f"{col}_{q}"].to_numpy(float) for q in ("p05", "median", "p95"))
            if log:
                lo, mid, hi = (np.clip(v, FLOOR, None) for v in (lo, mid, hi))
            line, = ax.plot(b["day"], mid, label=name)
            ax.fill_between(b["day"], lo, hi, color=line.get_color(), alpha=0.2, lw=0)
        ax.set_yscale("log" if log else "linear")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("day (0 = infusion or first dose)")
        ax.grid(alpha=0.25)
    axes[0].legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    text = Markup(f"<p>Median (line) and 90% band (5th–95th percentile, shaded) over the first "
                  f"{data.band_patients} patients of each arm (failed simulations left out).</p>")
    return Section("trajectories", "Trajectories", text + _figure(fig, "trajectory bands per arm"))


def _of_kind(data: ReportData, kind: str) -> list[str]:
    """Endpoints of ``kind`` that apply to at least one arm."""
    arms = _arms(data)
    return [n for n, e in arms[0]["endpoints"].items()
            if e["kind"] == kind and any(a["endpoints"][n].get("applicable", True) for a in arms)]


def event_curves(data: ReportData) -> Section:
    names = _of_kind(data, "time_to_event")
    if not names:
        return Section("events", "Time to event", Markup("<p>No time-to-event endpoints.</p>"))
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), squeeze=False)
    ok = data.patients[data.patients["status"] == "ok"]
    for ax, name in zip(axes[0], names):
        for a, arm in enumerate(_arms(data)):
            if not arm["endpoints"][name].get("applicable", True):
                continue
            rows = ok[ok["arm"] == a]
            censored = rows[censoring(name, list(rows.columns))].to_numpy(bool)
            km = kaplan_meier(rows[name].to_numpy(float), ~censored)
            t = np.concatenate([[0.0], km.time])
            line, = ax.step(t, np.concatenate([[1.0], km.survival]), where="post", label=arm["name"])
            ax.fill_between(t, np.concatenate([[1.0], km.lower]), np.concatenate([[1.0], km.upper]),
                            step="post", color=line.get_color(), alpha=0.15, lw=0)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("week" if name.endswith("_week") else "day")
        ax.set_ylabel("fraction without the event")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.25)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    text = Markup("<p>Kaplan–Meier curves with pointwise 95% bands (Greenwood, log-log), censored at the "
                  "horizon.</p>")
    return Section("events", "Time to event", text + _figure(fig, "Kaplan-Meier curves"))


def toxicity(data: ReportData) -> Section:
    names = _of_kind(data, "ordinal")
    if not names:
        return Section("toxicity", "CRS and ICANS", Markup("<p>No graded endpoints.</p>"))
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 3.6), squeeze=False)
    width = 0.8 / len(_arms(data))
    for ax, name in zip(axes[0], names):
        for a, arm in enumerate(_arms(data)):
            fr = arm["endpoints"][name]["fractions"]
            ax.bar(np.arange(5) + (a - (len(_arms(data)) - 1) / 2) * width,
                   [100 * (fr[str(g)] or 0) for g in range(5)], width, label=arm["name"])
        ax.set_xticks(range(5))
        ax.set_xlabel("highest grade (ASTCT)")
        ax.set_ylabel("% of patients")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.25, axis="y")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return Section("toxicity", "CRS and ICANS", _figure(fig, "CRS and ICANS grade distribution"))


def _cell(e: dict, n_ok: int) -> str:
    kind = e["kind"]
    if not e.get("applicable", True):
        return "not applicable"
    if kind == "time_to_event":
        return (f"KM median {_num(e['km_median']) if e['km_median'] is not None else 'not reached'}"
                f"{_ci(e['km_median_ci95'])}; events {e['n_events']}/{e['n_events'] + e['n_censored']}")
    if kind == "ordinal":
        parts = []
        for key, label in (("fraction_any", "any"), ("fraction_grade3plus", "grade ≥3")):
            p = e[key]
            parts.append(f"{label} {_num(None if p is None else 100 * p, '%')}"
                         f"{_ci(wilson(round(p * n_ok), n_ok)[1] if p is not None else None, 100, '%')}")
        return "; ".join(parts)
    if kind in ("binary", "rate"):
        scale, unit = (100, "%") if kind == "binary" else (1, "")
        return f"{_num(None if e['value'] is None else scale * e['value'], unit)}{_ci(e['ci95'], scale, unit)}"
    if e["n"] == 0:
        return "n/a"
    half = Z95 * e["sd"] / np.sqrt(e["n"]) if e["sd"] is not None else None
    ci = [e["mean"] - half, e["mean"] + half] if half is not None else None
    return f"mean {_num(e['mean'])}{_ci(ci)}; median {_num(e['median'])} [5–95%: {_num(e['p05'])}–{_num(e['p95'])}]"


def endpoint_table(data: ReportData) -> Section:
    arms = _arms(data)
    header = ["endpoint", "kind", *(f"{a['name']} (n={a['n']}, failed {a['n_failed']})" for a in arms)]
    rows = [[name, e["kind"], *(_cell(a["endpoints"][name], a["n"] - a["n_failed"]) for a in arms)]
            for name, e in arms[0]["endpoints"].items()]
    note = Markup("<p class='note'>Continuous endpoints: 95% CI of the mean (normal approximation). "
                  "Fractions: Wilson 95% CI. Definitions: the cartsim endpoint dictionary.</p>")
    return Section("endpoints", "Endpoints", _table(header, rows) + note)


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


SECTIONS: tuple[Callable[[ReportData], Section], ...] = (configuration, endpoint_table, trajectories, event_curves,
                                                         toxicity, failures)


def render(data: ReportData) -> str:
    env = Environment(autoescape=select_autoescape(default=True))
    template = env.from_string(resources.files("cartsim.outputs").joinpath("report.html.j2").read_text())
    return template.render(summary=data.summary, disclaimer=DISCLAIMER, sections=[s(data) for s in SECTIONS])


def write_report(path: Path, data: ReportData) -> None:
    """Render the report and write it atomically to ``path``."""
    write_text_atomic(path, render(data))
