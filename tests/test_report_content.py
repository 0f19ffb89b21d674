"""What report.html draws and says: Kaplan-Meier panels, detection limits, the durability range, the equations'
constants, human endpoint names, and a page that reads on a phone."""

import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sympy as sp

from cartsim.endpoints import CART_DETECTION_LIMIT, REAPPEARANCE_LIMIT, REPLETION_LIMIT, label
from cartsim.errors import CartsimInputError
from cartsim.model import build_model
from cartsim.outputs import report
from cartsim.outputs.equations import equations_html, model_equations
from cartsim.outputs.report import ReportData
from cartsim.trial import durability
from cartsim.trial.config import parse_config

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[1]

ARMS = ("CAR-T", "Antibody")
TTE = ("bcell_reappearance_day", "cart_persistence_day", "autoreactive_return_day",
       "bcell_repletion_after_last_dose_week")


def _tte(applicable: bool = True, **more) -> dict:
    stats = {"km_median": None, "km_median_ci95": [None, None], "n_events": 1, "n_censored": 3}
    return {"kind": "time_to_event", **({"applicable": False} if not applicable else stats), **more}


def synthetic() -> ReportData:
    """Two arms of four patients: reappearance in both, CAR-T persistence in the CAR-T arm only, no autoreactive
    return in either (all censored), repletion after the last dose in the antibody arm only, all censored."""
    n = 4
    rows = []
    for a in range(2):
        for k in range(n):
            rows.append({"arm": a, "status": "ok",
                         "bcell_reappearance_day": 100.0 + 10 * k + 50 * a, "bcell_reappearance_censored": k == 3,
                         "cart_persistence_day": 150.0 + 20 * k if a == 0 else np.nan,
                         "cart_persistence_censored": False,
                         "autoreactive_return_day": 365.0, "autoreactive_return_censored": True,
                         "bcell_repletion_after_last_dose_week": 4.0 if a == 1 else np.nan,
                         "bcell_repletion_after_last_dose_censored": a == 1})
    eps = {"bcell_reappearance_day": [_tte(), _tte()], "cart_persistence_day": [_tte(), _tte(False)],
           "autoreactive_return_day": [_tte(), _tte()],
           "bcell_repletion_after_last_dose_week": [_tte(False), _tte()],
           "crs_max_grade": [{"kind": "ordinal", "fractions": {"0": 0.25, "1": 0.75, "2": 0, "3": 0, "4": 0},
                           "fraction_any": 0.75, "fraction_grade3plus": 0.0}] * 2}
    summary = {"arms": [{"name": name, "n": n, "n_failed": 0, "endpoints": {e: v[a] for e, v in eps.items()}}
                        for a, name in enumerate(ARMS)]}
    day = np.array([-5.0, 0.0, 7.0, 28.0, 100.0, 200.0, 365.0])
    zero = np.zeros_like(day)
    b = np.array([300.0, 250.0, 1e-4, 1e-6, 0.5, 40.0, 120.0])
    car = np.array([0.0, 0.2, 300.0, 50.0, 0.05, 1e-5, 0.0])
    bands = {ARMS[0]: pd.DataFrame({"day": day} | {f"b_blood_per_uL_{q}": b * f for q, f in
                                                   (("p05", 0.1), ("median", 1), ("p95", 10))}
                                   | {f"car_blood_per_uL_{q}": car * f for q, f in (("p05", 0.1), ("median", 1),
                                                                                   ("p95", 10))}
                                   | {f"igg_{q}": zero + 10 for q in ("p05", "median", "p95")}),
             ARMS[1]: pd.DataFrame({"day": day} | {f"b_blood_per_uL_{q}": zero + 2 for q in ("p05", "median", "p95")}
                                   | {f"car_blood_per_uL_{q}": zero for q in ("p05", "median", "p95")}
                                   | {f"igg_{q}": zero + 10 for q in ("p05", "median", "p95")})}
    return ReportData(summary, pd.DataFrame(rows), bands, n)


# ---- 1. Kaplan-Meier panels ----------------------------------------------------------------------

def test_km_panels_leave_out_endpoints_no_arm_can_show_and_say_which():
    body = str(report.event_curves(synthetic()).body)
    assert body.count("<img") == 2                         # reappearance (both arms), persistence (CAR-T only)
    assert f"{label('autoreactive_return_day')} (no patient had the event within the horizon)" in body
    assert label("bcell_repletion_after_last_dose_week") in body.split("Not drawn:")[1].split("</p>")[0]
    assert (f"{label('cart_persistence_day')}: drawn only for CAR-T; it applies to no patient of Antibody"
            in body)
    assert '<div class="panels">' in body


def test_km_curve_only_for_the_arms_it_applies_to_with_human_title():
    data = synthetic()
    fig = report.event_figure(data, "cart_persistence_day", report._event_arms(data, "cart_persistence_day"))
    ax = fig.axes[0]
    assert ax.get_title() == label("cart_persistence_day")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["CAR-T"]
    fig = report.event_figure(data, "bcell_reappearance_day", report._event_arms(data, "bcell_reappearance_day"))
    line = fig.axes[0].get_lines()[0]
    assert line.get_xdata()[-1] == 130.0                    # drawn to the last follow-up (a censored patient)


def test_panels_at_most_three_to_a_row():
    css = (ROOT / "src/cartsim/outputs/report.html.j2").read_text()
    assert re.search(r"\.panels \{[^}]*grid-template-columns: repeat\(3, minmax\(0, 1fr\)\)", css)


# ---- 2. detection limits -------------------------------------------------------------------------

def _data_lines(ax):
    return [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 2]


def _hlines(ax) -> set[float]:
    return {float(ln.get_ydata()[0]) for ln in ax.get_lines()
            if len(ln.get_ydata()) == 2 and ln.get_ydata()[0] == ln.get_ydata()[1]}


@pytest.mark.parametrize("col, limit", [("car_blood_per_uL", CART_DETECTION_LIMIT),
                                        ("b_blood_per_uL", REAPPEARANCE_LIMIT)])
def test_undetectable_values_are_not_drawn_as_a_floor(col, limit):
    fig = report.trajectory_figure(synthetic(), col, "t", True)
    ax = fig.axes[0]
    for ln in _data_lines(ax):
        y = np.asarray(ln.get_ydata(), float)
        assert np.all(y[np.isfinite(y)] >= limit)                # nothing under the assay limit (old: 1e-3)
    for coll in ax.collections:                                  # the 90% bands stop at the limit too
        for path in coll.get_paths():
            ys = path.vertices[:, 1]
            assert ys[np.isfinite(ys)].min() >= limit * (1 - 1e-12)
    assert limit in _hlines(ax)
    assert any("below detection limit" in t.get_text() for t in ax.texts)
    assert ax.get_ylim()[0] < limit                              # the undetectable range is on the axis, shaded
    assert any(p.get_facecolor()[:3] == pytest.approx((0.85, 0.85, 0.85)) for p in ax.patches)


def test_detection_limits_come_from_the_endpoint_constants():
    data = synthetic()
    b = report.trajectory_figure(data, "b_blood_per_uL", "t", True).axes[0]
    assert {REAPPEARANCE_LIMIT, REPLETION_LIMIT} <= _hlines(b)
    car = report.trajectory_figure(data, "car_blood_per_uL", "t", True).axes[0]
    legend = [t.get_text() for t in car.get_legend().get_texts()]
    assert "Antibody: below the limit throughout" in legend     # no CAR-T cells: said, not drawn as a line


# ---- 3. durability -------------------------------------------------------------------------------

DURABLE = """\
[trial]
name = "durability"
seed = 11
horizon_days = 365

[population]
n = 40
disease = "ms"
ms_course = "rrms"

[[arm]]
name = "KYV-101"
therapy = "kyv-101"
n = 12

[[arm]]
name = "Ocrelizumab"
therapy = "ocrelizumab"
"""


def test_durability_range_is_for_cd19_car_t_arms_only():
    """Regression: a BCMA CAR-T arm (Descartes-08 in MG, eque-cel) was re-run across reset half-lives and the report
    tabulated 'n/a' at every half-life: BCMA CAR-T leaves autoreactive memory B cells, so there is no reset."""
    bcma = DURABLE.replace('therapy = "kyv-101"', 'therapy = "eque-cel"')
    assert durability.car_t_arms(parse_config(DURABLE)) == [0]
    assert durability.car_t_arms(parse_config(bcma)) == []


def test_durability_horizon_is_its_own_field_with_clear_errors():
    assert parse_config(DURABLE).durability.horizon_years == 10.0
    assert parse_config(DURABLE + "\n[durability]\nhorizon_years = 4\n").durability.horizon_years == 4.0
    for bad in ("0.5", "100", "'ten'"):
        with pytest.raises(CartsimInputError) as err:
            parse_config(DURABLE + f"\n[durability]\nhorizon_years = {bad}\n", "d.toml")
        text = str(err.value)
        assert text.startswith("durability.horizon_years:") and "d.toml line 21" in text and "1 to 50" in text
        assert "\n" not in text


@pytest.fixture(scope="module")
def durable_table():
    return durability.durability_range(parse_config(DURABLE), n=8)


def test_durability_table_differs_between_half_lives_over_ten_years(durable_table):
    t = durable_table
    assert list(t["reset_halflife_years"]) == list(durability.HALFLIFE_YEARS)
    assert set(t["horizon_years"]) == {10.0} and set(t["n"]) == {8}        # capped below the arm's 12
    back = t["autoreactive_return_fraction"].to_numpy()
    late = t["relapse_rate_late"].to_numpy()
    # a longer reset: fewer autoreactive returns and fewer late relapses (over one year all rows were equal)
    assert np.all(np.diff(back) <= 0) and back[0] > back[-1]
    assert np.all(np.diff(late) < 0)
    median = t["autoreactive_return_median_years"].to_numpy()
    finite = median[np.isfinite(median)]
    assert finite.size and np.all(np.diff(finite) > 0)


def test_durability_uses_the_arms_own_smaller_n():
    t = durability.durability_range(parse_config(DURABLE.replace("n = 12", "n = 3")), years=(5.0,), n=8,
                                    horizon_years=2)
    assert list(t["n"]) == [3] and list(t["horizon_years"]) == [2.0]


def test_durability_section_states_the_evidence(durable_table):
    data = ReportData({"arms": []}, pd.DataFrame(), {}, 0, durability=durable_table)
    body = str(report.durability(data).body)
    assert "unknown in MS" in body and "Mueller et al., NEJM 2024" in body and "more than two years" in body
    assert "default, 5 years, is an assumption" in body and "over 10 years" in body
    rows = re.findall(r"<tr><td>KYV-101</td>(.*?)</tr>", body)
    assert len(rows) == 4 and len(set(rows)) == 4                        # four different rows


# ---- 4. equations --------------------------------------------------------------------------------

def test_no_rendered_equation_has_a_long_float():
    html = str(equations_html(build_model()))
    numbers = re.findall(r"<mn>([^<]*)</mn>", html)
    for n in numbers:
        digits = re.sub(r"[^0-9]", "", n.split("e")[0]).lstrip("0")
        assert len(digits) <= 6, n
    assert "<mi>days_per_year</mi>" in html and 'id="eq-days_per_year"' in html


def test_named_conversion_constant_leaves_the_model_unchanged():
    """``days_per_year`` is a name for display only: the model's expressions are those with the literal
    365.25, so the compiled model, its cache key and every solution are the same as before the name."""
    model = build_model()
    obs = {o.name: o.expr for o in model.observables}
    act = sp.Symbol("ms_b_activity")
    ifn = obs["ifn_effect"]
    p = sp.Symbol
    old = p("ms_relapse_rate") / 365.25 * (1 - p("ms_relapse_imax") + p("ms_relapse_imax") * act) \
        * (1 - p("ifn_relapse_effect") * ifn)
    assert obs["relapse_rate"] == old
    cns = obs["cns_inflammation"]
    assert obs["pira_rate"] == p("ms_pira_rate") / 365.25 * (1 - p("ms_pira_imax") + p("ms_pira_imax") * cns)
    assert "days_per_year" not in model.fingerprint()
    eqs = model_equations(model)
    shown = next(d.shown for c in eqs.components for d in c.observables if d.name == "relapse_rate")
    assert sp.Symbol("days_per_year") in shown.free_symbols
    point = {s: sp.Float(1.3) for s in old.free_symbols}
    assert float(eqs.unfold(shown).xreplace(point)) == float(old.xreplace(point))


# ---- endpoint names and numbers ------------------------------------------------------------------

def test_endpoint_tables_use_human_names():
    data = synthetic()
    body = str(report.endpoint_table(data).body)
    cells = re.findall(r"<tr[^>]*><td>([^<]*)</td>", body)
    assert cells == [label(n) for n in data.summary["arms"][0]["endpoints"]]
    assert not [c for c in cells if "_" in c]
    tox = report.toxicity_figure(data, "crs_max_grade")
    assert tox.axes[0].get_title() == label("crs_max_grade")


def _ci(e: dict, n_ok: int) -> dict:
    """The intervals the summarize stage computes for an arm with these statistics."""
    from cartsim.stats import mean_interval, wilson

    if e["kind"] == "ordinal":
        return {k: wilson(round(e[k] * n_ok), n_ok)[1] for k in ("fraction_any", "fraction_grade3plus")}
    return {"mean": mean_interval(e["mean"], e["sd"], e["n"])} if "mean" in e else {}


def test_numbers_are_written_out_and_intervals_of_counts_stay_non_negative():
    assert report._num(1640.2) == "1,640" and report._num(0.0334) == "0.0334"
    assert report._num(1.24e-7) == "<0.001" and report._num(0.0) == "0"
    e = {"kind": "continuous", "mean": 1640.0, "sd": 8000.0, "n": 60, "median": 355.0, "p05": 8.45, "p95": 6730.0}
    cell = report._cell("bcell_baseline_per_uL", e, _ci(e, 60))
    assert "e+" not in cell and "-" not in cell.split("[")[0] and "95% CI 0–" in cell
    assert report._cell("x", {"kind": "continuous", "n": 0}, {}) == "not applicable"
    assert report._cell("x", {"kind": "binary", "value": None, "ci95": None}, {}) == "not applicable"


def test_no_digit_finer_than_the_interval_can_tell():
    """Regression: "mean 0.823 (95% CI 0.788–0.858)" for a share of baseline, "70% (95% CI 39.7–89.2%)", and a
    rate with no events as "0 (95% CI 0–0)"."""
    share = {"kind": "continuous", "mean": 0.823, "sd": 0.078, "n": 20, "median": 0.83, "p05": 0.70, "p95": 0.95}
    assert report._cell("igg_nadir_fraction", share, _ci(share, 20)).startswith("mean 82% (95% CI 79–86%); median 83% ")
    crs = {"kind": "ordinal", "fraction_any": 0.7, "fraction_grade3plus": 0.0}
    assert report._cell("crs_max_grade", crs, _ci(crs, 10)) == "any 70% (95% CI 40–89%); grade ≥3 0% (95% CI 0–28%)"
    assert report._cell("annualized_relapse_rate", {"kind": "rate", "value": 0.0, "ci95": [0.0, 0.0]}, {}) \
        == "0 (no events)"
    arr = report._cell("annualized_relapse_rate", {"kind": "rate", "value": 0.2234, "ci95": [0.171, 0.279]}, {})
    assert arr == "0.22 (95% CI 0.17–0.28)"
    counts = {"kind": "continuous", "mean": 1643.0, "sd": 300.0, "n": 20, "median": 1612.0, "p05": 1190.0,
              "p95": 2150.0}
    assert report._cell("bcell_baseline_per_uL", counts, _ci(counts, 20)).startswith("mean 1,600 (95% CI 1,500–1,800)")
    # negative bounds read as a range, not a subtraction; equal patients get no interval
    edss = {"kind": "continuous", "mean": -0.05, "sd": 0.4, "n": 20, "median": 0.0, "p05": -0.5, "p95": 0.5}
    assert report._cell("edss_change", edss, _ci(edss, 20)) == "mean −0.05 (95% CI −0.24 to 0.14); median 0 [5–95%: −0.50 to 0.50]"
    same = {"kind": "continuous", "mean": 0.0, "sd": 0.0, "n": 20, "median": 0.0, "p05": 0.0, "p95": 0.0}
    assert report._cell("edss_change", same, _ci(same, 20)) == "mean 0; 0 in every patient"


def test_median_and_spread_keep_their_own_digits():
    """Regression (kysa7 report): a median of 45 CAR-T cells/uL under a mean of 2,000 was shown as "median 0", a
    B-cell nadir spread of 2e-10 to 3e-5 as "0 in every patient", and IgG under ocrelizumab as
    "96.42% (95% CI 96.41–96.43%)"."""
    peak = {"kind": "continuous", "mean": 2034.0, "sd": 3800.0, "n": 60, "median": 45.3, "p05": 0.12, "p95": 7012.0}
    assert report._cell("cart_peak_per_uL", peak, _ci(peak, 60)) == "mean 2,000 (95% CI 1,100–3,000); median 45 [5–95%: 0.12–7,000]"
    nadir = {"kind": "continuous", "mean": 1.3e-4, "sd": 6e-4, "n": 60, "median": 1e-7, "p05": 1.9e-10, "p95": 2.8e-5}
    cell = report._cell("bcell_nadir_per_uL", nadir, _ci(nadir, 60))
    assert "every patient" not in cell and cell.endswith("median <0.001 [5–95%: all below 0.001]")
    igg = {"kind": "continuous", "mean": 0.9642, "sd": 0.0003, "n": 60, "median": 0.96424, "p05": 0.96357,
           "p95": 0.9647}
    assert report._cell("igg_nadir_fraction", igg, _ci(igg, 60)) == \
        "mean 96% (95% CI within ±0.5 points); median 96% [5–95%: all about 96%]"
    edss = {"kind": "continuous", "mean": 0.117, "sd": 0.33, "n": 60, "median": 0.0, "p05": 0.0, "p95": 1.0}
    assert report._cell("edss_change", edss, _ci(edss, 60)) == "mean 0.12 (95% CI 0.03–0.20); median 0 [5–95%: 0–1.0]"


def test_an_interval_below_a_thousandth_is_not_written_out():
    """Regression (kysa7 report): the lowest B-cell count after KYV-101 read "mean 0.0000002 (95% CI
    0.0000001–0.0000003)", digits no count of cells per microlitre supports."""
    nadir = {"kind": "continuous", "mean": 2e-7, "sd": 3e-7, "n": 60, "median": 1e-7, "p05": 1e-9, "p95": 6e-7}
    assert report._cell("bcell_nadir_per_uL", nadir, _ci(nadir, 60)) == \
        "mean <0.001 (95% CI all below 0.001); median <0.001 [5–95%: all below 0.001]"


def test_intervals_are_the_libraries_t_and_wilson():
    """The table's intervals are computed by the summarize stage from the patients' own values with scipy's t and
    Wilson intervals (5 patients: t = 2.776, not z = 1.96), not re-derived by the report from rounded numbers."""
    from cartsim.trial.summary import intervals

    peaks = 100.0 + 10.0 * np.array([-1.2649, -0.6325, 0.0, 0.6325, 1.2649])      # mean 100, sd 10
    rows = pd.DataFrame({"status": ["ok"] * 10, "cart_peak_per_uL": np.r_[peaks, [np.nan] * 5],
                         "crs_max_grade": [0, 0, 0, 0, 0, 0, 0, 1, 2, 3]})
    ci = intervals(rows, ["cart_peak_per_uL", "crs_max_grade"])
    e = {"kind": "continuous", "mean": 100.0, "sd": 10.0, "n": 5, "median": 100.0, "p05": 85.0, "p95": 115.0}
    # t: 100 -+ 2.776 x 10 / sqrt(5) = 87.6-112.4, rounded to tens; z would give 91.2-108.8, "91–109"
    assert report._cell("cart_peak_per_uL", e, ci["cart_peak_per_uL"]).startswith("mean 100 (95% CI 90–110)")
    crs = {"kind": "ordinal", "fraction_any": 0.3, "fraction_grade3plus": 0.1}
    assert report._cell("crs_max_grade", crs, ci["crs_max_grade"]) == \
        "any 30% (95% CI 11–60%); grade ≥3 10% (95% CI 2–40%)"
    assert report._cell("crs_max_grade", crs, {}) == "any 30%; grade ≥3 10%"    # no interval given: none shown


# ---- 5. the page on a phone and a desktop ---------------------------------------------------------

@pytest.fixture(scope="module")
def page_html(tmp_path_factory):
    """A report of a small trial (two patients per arm, no validation)."""
    from cartsim.trial.run import execute, prepare

    out = tmp_path_factory.mktemp("phone") / "out"
    execute(prepare(parse_config(DURABLE.replace("n = 12\n", "").replace("n = 40", "n = 2")), out,
                    validation=False))
    return out / "report.html"


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


MEASURE = """() => {
  const W = document.documentElement.clientWidth;
  const box = e => e.getBoundingClientRect();
  const maths = [...document.querySelectorAll('math')].map(m => box(m).width);
  const imgs = [...document.querySelectorAll('section img')];
  const rows = {};
  for (const i of imgs) { const t = Math.round(box(i).top); rows[t] = (rows[t] || 0) + 1; }
  return {W, scroll: document.documentElement.scrollWidth, widest_math: Math.max(...maths),
          widest_img: Math.max(...imgs.map(i => box(i).right)), per_row: Math.max(...Object.values(rows)),
          viewport: !!document.querySelector('meta[name=viewport]')};
}"""


@pytest.mark.parametrize("width", [390, 1400])
def test_report_fits_the_screen(page_html, browser, width):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(page_html.as_uri())
    m = page.evaluate(MEASURE)
    page.close()
    assert m["viewport"]
    assert m["scroll"] <= m["W"]                       # no horizontal page scroll (tables scroll in their box)
    assert m["widest_img"] <= m["W"]                   # figures scale to the width
    assert m["widest_math"] <= m["W"] - 16             # long equations wrap
    assert m["per_row"] <= (1 if width < 800 else 3)
    assert math.isfinite(m["widest_math"])


def test_report_draws_the_disease_course_where_it_has_one(tmp_path, page_html):
    """Regression: the report of a myasthenia gravis trial drew B cells, CAR-T cells and IgG only, not the
    anti-AChR antibody or the MG-ADL score its endpoints come from; an MS report gets neither panel."""
    from cartsim.trial.run import execute, prepare

    mg = (ROOT / "examples" / "descartes08-mg.toml").read_text().replace("n = 15", "n = 2")
    execute(prepare(parse_config(mg), tmp_path / "mg", validation=False))
    html = (tmp_path / "mg" / "report.html").read_text()
    assert "anti-AChR antibody, share of the untreated level" in html and "MG-ADL score (0 none" in html
    assert "NMOSD attacks expected" not in html
    ms = page_html.read_text()
    assert "MG-ADL score (0 none" not in ms and "share of the untreated level" not in ms
    from cartsim.outputs import report as rep
    from cartsim.trial import stages
    plan = prepare(parse_config(mg), tmp_path / "mg2", validation=False)
    data = rep.ReportData(summary={}, patients=pd.DataFrame(), bands=stages.simulate(plan).bands, band_patients=2,
                          scenarios=tuple((a.name, plan.config.scenario(i)) for i, a in enumerate(plan.config.arm)))
    for col, title, log in rep._disease_panels(data):
        fig = rep.trajectory_figure(data, col, title, log)
        assert fig.axes[0].get_ylim()[0] == 0, col        # a share or a score starts at 0, not at its lowest value


def test_product_figure_stays_legible_on_a_phone(tmp_path, browser, monkeypatch):
    """The figure of CAR-T products against their windows was shrunk to a 390 px phone's width, where its labels
    could not be read: it keeps its own width in a box that scrolls sideways, and the page does not."""
    from dataclasses import replace

    from cartsim.outputs.validation import Validation
    from cartsim.validate import Check

    checks = (Check("zuma1_cart_peak", "pop_median", 731.0, [12.08, 65.76], False),
              Check("zuma1_crs_icans", "pop_crs_any", 0.9, [0.75, 1.0], True))
    path = tmp_path / "report.html"
    monkeypatch.setattr(report, "SECTIONS", (report.validation_table,))     # the validation section alone
    data = replace(synthetic(), summary={"trial": "t", "seed": 1, "cartsim_version": "test", "arms": [],
                                         "config": {"trial": {"horizon_days": 60}}},
                   validation=Validation(checks, 1.0, False))
    report.write_report(path, data)
    page = browser.new_page(viewport={"width": 390, "height": 900})
    page.goto(path.as_uri())
    m = page.evaluate("""() => {
      const img = document.querySelector('#validation .scroll img.wide');
      return {W: document.documentElement.clientWidth, scroll: document.documentElement.scrollWidth,
              img: img ? img.getBoundingClientRect().width : 0,
              box: img ? img.parentElement.getBoundingClientRect().width : 0};
    }""")
    page.close()
    assert m["scroll"] <= m["W"] and m["box"] <= m["W"]      # the page itself does not scroll sideways
    assert m["img"] >= 900                                    # the figure is not shrunk to the phone's width


def test_people_facing_labels_write_microlitres_with_mu():
    """Regression (KYSA-6 report): the endpoint table and figures read 'cells/uL' where the web page read
    'cells/µL'; every endpoint label now writes µL."""
    from cartsim.endpoint_dictionary import ENDPOINTS

    labels = [e.label for e in ENDPOINTS.values()]
    assert not [x for x in labels if "uL" in x]
    assert "Blood B cells at baseline (cells/µL)" in labels
