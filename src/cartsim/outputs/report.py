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

from cartsim.model import Model, build_model  # noqa: E402
from cartsim.outputs.equations import equations_html  # noqa: E402
from cartsim.outputs.files import write_text_atomic  # noqa: E402
from cartsim.outputs.plots import FLOOR, FOOTER  # noqa: E402
from cartsim.outputs.validation import Validation  # noqa: E402
from cartsim.scenario import Scenario  # noqa: E402
from cartsim.trial.stats import kaplan_meier, mean_interval, wilson  # noqa: E402
from cartsim.trial.summary import censoring  # noqa: E402
from cartsim.validate import POP_N, targets  # noqa: E402

DISCLAIMER = ("cartsim is research software. Its results are simulations of a mathematical model, not "
              "predictions for any patient, and not medical advice. CAR T-cell therapy for multiple sclerosis "
              "and other autoimmune diseases is investigational.")
COVARIATE_NOTE = ("Covariates are recorded per patient in patients.parquet. The MS course sets the course's "
                  "relapse, lesion and progression rates and its CNS compartmentalisation; baseline EDSS sets the "
                  "step of a confirmed worsening (1.0, or 0.5 above 5.5); body weight scales weight-based doses "
                  "and antibody pharmacokinetics. No model parameter depends on age: age is an eligibility "
                  "criterion only.")
TRAJECTORY_PANELS = (("b_blood_per_uL", "CD19+ B cells, blood (cells/uL)", True),
                     ("car_blood_per_uL", "CAR-T cells, blood (cells/uL)", True),
                     ("igg", "total IgG (g/L)", False))


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
            rows = ok[(ok["arm"] == a) & ok[name].notna()]   # patients to whom the endpoint applies
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
                f"{_ci(e['km_median_ci95'])}; events {e['n_events']}/{e['n_events'] + e['n_censored']}"
                + (f" ({e['n_not_applicable']} not applicable)" if e.get("n_not_applicable") else ""))
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
    ci = mean_interval(e["mean"], e["sd"], e["n"])
    return f"mean {_num(e['mean'])}{_ci(ci)}; median {_num(e['median'])} [5–95%: {_num(e['p05'])}–{_num(e['p95'])}]"


def endpoint_table(data: ReportData) -> Section:
    arms = _arms(data)
    header = ["endpoint", "kind", *(f"{a['name']} (n={a['n']}, failed {a['n_failed']})" for a in arms)]
    rows = [[name, e["kind"], *(_cell(a["endpoints"][name], a["n"] - a["n_failed"]) for a in arms)]
            for name, e in arms[0]["endpoints"].items()]
    note = Markup("<p class='note'>Continuous endpoints: 95% CI of the mean (normal approximation). "
                  "Fractions: Wilson 95% CI. Definitions: the cartsim endpoint dictionary.</p>")
    return Section("endpoints", "Endpoints", _table(header, rows) + note + _by_course(arms))


def _by_course(arms: list[dict]) -> Markup:
    """The endpoint table again for each disease course, when the population mixes courses."""
    groups = [(a["name"], c, g) for a in arms for c, g in a.get("by_ms_course", {}).items()]
    if not groups:
        return Markup("")
    header = ["endpoint", *(f"{name}: {c} (n={g['n']}, failed {g['n_failed']})" for name, c, g in groups)]
    rows = [[name, *(_cell(g["endpoints"][name], g["n"] - g["n_failed"]) for _, _, g in groups)]
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
    return Markup(f"<table class='validation'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


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
    return Section("validation", title, text + _validation_rows(v))


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


def parameter_table(data: ReportData) -> Section:
    model = _model(data)
    derived = {n for n, _ in model.derived}
    rows, attrs = [], []
    for r in model.table:     # every parameter, used by the equations or by a scenario
        value: str | Markup = _value(r.value)
        if r.value is None:
            value = Markup(f'<a href="#eq-{escape(r.name)}">derived</a>') if r.name in derived else "derived"
        rows.append([r.name, value, r.unit, r.component, r.kind, r.source, r.description,
                     f"{r.iiv_omega:g}" if r.iiv_omega else "–"])
        attrs.append(f'id="param-{escape(r.name)}"')
    table = _table(["name", "value", "unit", "component", "kind", "source", "description", "IIV ω"], rows, attrs)
    text = Markup(f"<p>Every parameter of the cartsim parameter table ({len(model.table)}), with its provenance: "
                  "<em>literature</em> (read in a publication), <em>derived</em> (computed from others, see the "
                  "equations), <em>calibrated</em> (fitted to the published targets) or <em>assumed</em>. IIV ω: "
                  "standard deviation of the log-normal inter-individual variability (– none). The same table: "
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


def durability(data: ReportData) -> Section:
    """The CAR-T arms across reset half-lives (cartsim.trial.durability)."""
    text = Markup(
        "<p>After CD19 CAR-T the autoreactive B-cell clones are removed and new B cells return naive: the "
        "<em>reset</em>. How long it lasts before new autoreactive clones are recruited is not known in MS (in lupus, "
        "drug-free remissions have held for at least two years). In cartsim it is the parameter "
        "<code>reset_halflife</code> (default 5 years, with wide variability between patients). Each CAR-T arm was "
        "re-run with its first patients at the half-lives below; everything else is unchanged. Autoreactive return: "
        "autoreactive memory B cells back to 10% of baseline within the horizon.</p>")
    table = data.durability
    if table is None or table.empty:
        return Section("durability", "How long the reset lasts", text + Markup(
            "<p>Not run: the trial has no CAR-T arm, or the range was not asked for.</p>"))
    cols = [("arm", "arm", str), ("reset_halflife_years", "reset half-life (years)", lambda v: f"{v:g}"),
            ("n", "patients", lambda v: f"{int(v)}"),
            ("autoreactive_return_fraction", "autoreactive return", lambda v: f"{100 * v:.0f}%"),
            ("autoreactive_return_median_day", "median day of return", lambda v: _num(v)),
            ("annualized_relapse_rate", "relapses / patient-year", lambda v: f"{v:.3f}"),
            ("gd_lesions_per_scan", "Gd+ lesions / scan", lambda v: f"{v:.3f}"),
            ("cdp12_fraction", "12-week CDP", lambda v: f"{100 * v:.1f}%"),
            ("edss_change", "mean EDSS change", lambda v: f"{v:+.2f}")]
    cols = [c for c in cols if c[0] in table]
    rows = [[fmt(r[k]) if r[k] == r[k] else "n/a" for k, _, fmt in cols] for _, r in table.iterrows()]
    return Section("durability", "How long the reset lasts", text + _table([h for _, h, _ in cols], rows))


SECTIONS: tuple[Callable[[ReportData], Section], ...] = (configuration, endpoint_table, trajectories, event_curves,
                                                         toxicity, durability, failures, validation_table, methods,
                                                         parameter_table)


def render(data: ReportData) -> str:
    env = Environment(autoescape=select_autoescape(default=True))
    template = env.from_string(resources.files("cartsim.outputs").joinpath("report.html.j2").read_text())
    return template.render(summary=data.summary, disclaimer=DISCLAIMER, sections=[s(data) for s in SECTIONS])


def write_report(path: Path, data: ReportData) -> None:
    """Render the report and write it atomically to ``path``."""
    write_text_atomic(path, render(data))
