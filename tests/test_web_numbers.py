"""The numbers of the comparison page: axes that contain their data, peaks after every dose, relapse rates that
are the trial's, labels that follow the MS course, plain language and infusion-related reactions."""

import math

import numpy as np
import pandas as pd
import pytest

from cartsim.endpoints import label
from cartsim.scenario import therapy_names
from cartsim.therapy import antibodies
from cartsim.trial.chunks import Chunk, bands, simulate_chunk
from cartsim.trial.config import parse_config
from cartsim.trial.run import execute, prepare
from cartsim.web import arms as arms_mod
from cartsim.web import text
from cartsim.web.app import _safety, compare, create_app
from cartsim.web.arms import Arm, axis, simulate_arm
from cartsim.web.schemas import DoseOut
from cartsim.web.schemas import Limits

N, DAYS = 12, 365


def _data_max(c, column: str) -> float:
    return max(v for a in c.arms for b in a.panels if b.column == column for s in ("p05", "median", "p95")
               for v in getattr(b, s) if v is not None)


# ---- axes -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("top, log", [(142.0, False), (15.5, False), (100.0, False), (0.97, False), (214.3, False),
                                      (691.5, True), (10723.7, True), (1000.0, True), (1e-3, True)])
def test_axis_ends_at_or_above_the_largest_value(top, log):
    """The old page ended a linear axis at the last tick below the data (100 for a 142 ug/mL peak, 15 for IgG 15.5)."""
    ax = axis([0.5 * top, top, None], log)
    assert ax.hi >= top and ax.ticks[-1] <= ax.hi and ax.ticks[0] >= ax.lo
    assert ax.hi <= (10 * top if log else 1.6 * top)          # and not far above it
    if not log:
        assert ax.lo == 0 and ax.ticks[-1] == ax.hi


def test_every_panel_of_the_default_comparisons_contains_its_data():
    pairs = [("ms", None), ("ms", "ppms"), ("sle", None)]
    for disease, course in pairs:
        c = compare(disease, "kyv-101", "ocrelizumab", N, DAYS, 0, course)
        assert {a.column for a in c.axes} == {b.column for a in c.arms for b in a.panels}
        for ax in c.axes:
            assert ax.hi >= _data_max(c, ax.column), (disease, course, ax)
            assert ax.ticks[-1] <= ax.hi and ax.lo < ax.hi


def test_no_panel_is_empty_and_each_drug_has_its_own_level():
    """Regression: CAR-T against efgartigimod drew an 'Anti-CD20 antibody in serum' panel with a flat zero for
    both arms, and no panel for efgartigimod's own level."""
    c = compare("sle", "mb-cart19", "efgartigimod", N, DAYS, 0)
    columns = [a.column for a in c.axes]
    assert "mab_conc" not in columns and "fcrnb_conc" in columns and "car_blood_per_uL" in columns
    assert {b.column for a in c.arms for b in a.panels} == set(columns)
    level = next(b for b in c.arms[1].panels if b.column == "fcrnb_conc")
    assert max(v for v in level.median if v is not None) > 20                    # ug/mL after each dose
    # regression: a one-cycle regimen was said to go on 'for as long as treatment continues', and the IgG spread
    # sat in parentheses inside parentheses
    summary = " ".join(c.arms[1].summary)
    assert "(days 0, 7, 14, 21); that is the whole regimen." in summary and "))" not in summary
    assert "nearly the same in every simulated patient (90% of them at about 39%)." in summary
    # a dose by weight is labelled as prescribed, not as one patient's milligrams (e.g. '807 mg')
    assert [d.label for d in c.arms[1].doses] == ["efgartigimod 10 mg/kg IV"] * 4
    both = compare("ms", "ocrelizumab", "interferon-beta-1a", N, DAYS, 0)
    assert {a.column for a in both.axes} >= {"mab_conc"} and "car_blood_per_uL" not in {a.column for a in both.axes}


# ---- peaks after doses ------------------------------------------------------------------------------

def test_drawn_peak_after_each_antibody_dose_is_the_models():
    """Weekly samples after day 28 drew the 600 mg ocrelizumab peaks at about 83 instead of about 214 ug/mL."""
    if "ocrelizumab" not in therapy_names():
        pytest.skip("no ocrelizumab in this model")
    n = 6
    arm = simulate_arm("ms", "ocrelizumab", n, float(DAYS), 0)
    doses = [d for d in arm.doses if d.kind == "dose"]
    assert [d.day for d in doses] == [d.day for d in antibodies()["ocrelizumab"].doses(float(DAYS))]
    assert len(doses) >= 4                                   # the peaks of several doses are checked below
    cfg = arms_mod.config("ms", "ocrelizumab", n, float(DAYS), 0)
    fine = np.unique(np.concatenate([np.arange(d.day, min(d.day + 10, DAYS), 0.01) for d in doses]))
    model = bands(simulate_chunk(cfg, Chunk(0, 0, 0, n), tuple(fine), ("mab_conc",)), ("mab_conc",))
    days, drawn = np.asarray(arm.days), np.asarray(arm.bands["mab_conc"]["median"], float)
    for d in doses:
        window = (days >= d.day) & (days < d.day + 10)
        cmax = model.loc[(model["day"] >= d.day) & (model["day"] < d.day + 10), "mab_conc_median"].max()
        assert abs(np.nanmax(drawn[window]) - cmax) <= 0.05 * cmax, (d.day, np.nanmax(drawn[window]), cmax)
        assert any(abs(t - (d.day + d.duration_days)) < 1e-9 for t in arm.days)   # the end of the infusion


# ---- relapses ------------------------------------------------------------------------------------------

def _trial_rate(therapy: str, tmp_path) -> float:
    """The annualized relapse rate of a one-arm ``cartsim trial`` of the web arm's patients."""
    cfg = parse_config(f"""
[trial]
name = "web check"
seed = 0
horizon_days = {DAYS}
[population]
n = {N}
disease = "ms"
[[arm]]
name = "{therapy}"
therapy = "{therapy}"
""")
    result = execute(prepare(cfg, tmp_path / therapy, validation=False))
    return result.summary["arms"][0]["endpoints"]["annualized_relapse_rate"]["value"]


def test_web_relapse_rate_is_the_trials_and_changes_with_the_therapy(tmp_path):
    drug = "ocrelizumab" if "ocrelizumab" in therapy_names() else "interferon-beta-1a"
    web = {t: simulate_arm("ms", t, N, float(DAYS), 0) for t in ("untreated", drug)}
    for t, arm in web.items():
        assert arm.endpoints["annualized_relapse_rate"]["value"] == pytest.approx(_trial_rate(t, tmp_path),
                                                                                   rel=1e-12)
    untreated, treated = web["untreated"], web[drug]
    assert treated.endpoints["annualized_relapse_rate"]["value"] < untreated.endpoints["annualized_relapse_rate"][
        "value"]
    # the model's expected rate has no Poisson chance: the drug lowers it clearly
    assert treated.expected_relapse_rate < 0.7 * untreated.expected_relapse_rate


def _ms_arm(therapy: str, arr: float, expected: float, kind: str = "drug", course: str | None = None) -> Arm:
    return Arm("ms", therapy, kind, "", 100, 0, (0.0, 365.0), {}, (), {"annualized_relapse_rate": {
        "kind": "rate", "value": arr, "ci95": [arr / 2, arr * 1.5]}}, pd.DataFrame(), course, expected)


def test_equal_relapse_counts_are_explained_by_the_expected_rates():
    """0.22 in both arms came from the same patients' chance events under nearly equal model rates; the page
    now says so and gives the expected rates, which differ."""
    s = text.relapse_sentence([_ms_arm("kyv-101", 0.2202, 0.17048, "car-t"), _ms_arm("ocrelizumab", 0.2202, 0.17286)])
    assert "0.22 with kyv-101 and 0.22 with ocrelizumab" in s
    assert "0.170 and 0.173" in s and "same chance events" in s
    s = text.relapse_sentence([_ms_arm("untreated", 0.59, 0.47, "untreated"), _ms_arm("ocrelizumab", 0.22, 0.17)])
    assert "0.47 and 0.17" in s and "same chance events" not in s


# ---- labels -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("course, name", [("ppms", "primary progressive multiple sclerosis"),
                                          ("spms", "secondary progressive multiple sclerosis"),
                                          ("rrms", "relapsing-remitting multiple sclerosis"),
                                          (None, "relapsing-remitting multiple sclerosis")])
def test_disease_name_follows_the_ms_course(course, name):
    assert text.disease_name("ms", course) == name
    arm = _ms_arm("kyv-101", 0.1, 0.1, "car-t", course)
    assert name in text.safety_sentence(arm, None)
    assert _safety(arm).disease_name == name


def test_ppms_comparison_is_labelled_ppms():
    c = compare("ms", "kyv-101", "ocrelizumab", 4, 60, 0, "ppms")
    everything = " ".join([c.disease_name, *c.summary, *(s for a in c.arms for s in a.summary),
                           *(a.safety.disease_name for a in c.arms)])
    assert c.disease_name == "primary progressive multiple sclerosis"
    assert "relapsing unless" not in everything


def test_ms_course_changes_the_model_so_no_note_says_otherwise():
    from fastapi.testclient import TestClient

    assert arms_mod.ms_course_matters()
    with TestClient(create_app(Limits(max_patients=4, default_patients=2, default_days=30), warm_up=False)) as c:
        assert c.get("/api/options").json()["ms_course_note"] is None


# ---- plain language ---------------------------------------------------------------------------------

def _cart_arm(endpoints: dict, patients: pd.DataFrame | None = None) -> Arm:
    patients = patients if patients is not None else pd.DataFrame(
        {"cart_persistence_day": [200.0, 210.0], "cart_persistence_censored": [False, False]})
    return Arm("ms", "kyv-101", "car-t", "", len(patients), 0, (-5.0, 365.0), {},
               (DoseOut(day=0.0, kind="car-t", label="", duration_days=0.0, amount_mg=None),), endpoints, patients)


def test_numbers_are_rounded_for_people():
    arm = _cart_arm({"cart_tmax_day": {"median": 10.05}, "cart_peak_per_uL": {"median": 263.7},
                     "igg_nadir_fraction": {"median": 0.681, "p05": 0.678, "p95": 0.684}})
    s = text.cart_sentence(arm)
    assert "around day 10 at a median 260 cells/µL" in s and "10.05" not in s
    igg = text.igg_sentence(arm)
    assert "between 68% and 68%" not in igg and "about 68%" in igg
    wide = _cart_arm({"igg_nadir_fraction": {"median": 0.8, "p05": 0.7, "p95": 0.9}})
    assert "between 70% and 90%" in text.igg_sentence(wide)


@pytest.mark.parametrize("x, out", [(10.05, "10"), (263.7, "260"), (1640.0, "1,600"), (0.2202, "0.22"),
                                    (0.0192, "0.019"), (5.0, "5")])
def test_num_gives_two_significant_digits(x, out):
    assert text._num(x) == out


def test_crs_and_icans_are_spelled_out_where_first_used():
    arm = _cart_arm({"crs_max_grade": {"fraction_any": 0.7, "fraction_grade2plus": 0.1},
                     "icans_max_grade": {"fraction_any": 0.02}})
    s = text.safety_sentence(arm, None)
    assert s.index("cytokine release syndrome") < s.index("CRS") < s.index("fever and low blood pressure")
    assert s.index("immune effector cell-associated neurotoxicity syndrome") < s.index("ICANS") < s.index(
        "confusion, trouble speaking")
    assert "cytokine release syndrome" in text.GLOSSARY and "neurotoxicity" in text.GLOSSARY


def test_endpoint_tables_get_human_names():
    c = compare("ms", "kyv-101", "ocrelizumab", 4, 60, 0)
    names = {n for a in c.arms for n in a.endpoints}
    assert set(c.endpoint_labels) == names
    assert all(c.endpoint_labels[n] == label(n) and "_" not in c.endpoint_labels[n] for n in names)


# ---- infusion-related reactions ---------------------------------------------------------------------

def _drug_arm(endpoints: dict) -> Arm:
    return Arm("ms", "ocrelizumab", "drug", "", 100, 0, (0.0, 365.0), {}, (), endpoints, pd.DataFrame())


def test_infusion_reactions_are_shown_beside_crs_never_as_zero():
    irr = {"infusion_reaction_any": {"kind": "binary", "value": 0.34, "ci95": [0.255, 0.437]}}
    crs = {"crs_max_grade": {"kind": "ordinal", "fractions": {"0": 1.0, "1": 0.0, "2": 0.0, "3": 0.0, "4": 0.0},
                             "fraction_any": 0.0, "fraction_grade2plus": 0.0, "fraction_grade3plus": 0.0}}
    s = _safety(_drug_arm(irr | crs))
    assert s.infusion_reaction.value == 0.34 and s.infusion_reaction.ci95 == [0.255, 0.437]
    sentence = text.safety_sentence(_drug_arm(irr), None)
    assert "infusion-related reactions" in sentence and "34% of simulated patients (95% CI 26% to 44%)" in sentence
    for missing in ({}, {"infusion_reaction_any": None},
                    {"infusion_reaction_any": {"kind": "binary", "value": None, "ci95": None}}):
        assert _safety(_drug_arm(missing | crs)).infusion_reaction is None       # not applicable, not 0
        assert text.safety_sentence(_drug_arm(missing), None) is None


def test_ocrelizumab_arm_reports_its_infusion_reactions():
    if "ocrelizumab" not in therapy_names():
        pytest.skip("no ocrelizumab in this model")
    c = compare("ms", "kyv-101", "ocrelizumab", N, 60, 0)
    cart, drug = c.arms
    if "infusion_reaction_any" not in drug.endpoints:
        pytest.skip("this model version has no infusion_reaction_any endpoint")
    assert drug.safety.infusion_reaction is not None and drug.safety.infusion_reaction.value > 0
    assert cart.safety.infusion_reaction is None
    assert any("infusion-related reactions" in s for s in drug.summary)
    assert math.isfinite(drug.safety.infusion_reaction.value)


def test_screenshots_script_refuses_a_missing_report_before_starting_anything(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "screenshots.py"
    spec = importlib.util.spec_from_file_location("screenshots", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with pytest.raises(SystemExit) as err:
        mod.main(["--out", str(tmp_path / "shots"), "--report", str(tmp_path / "missing.html")])
    assert err.value.code == 2 and "--report:" in capsys.readouterr().err
    assert not (tmp_path / "shots").exists()
    assert mod.WIDTHS == (1400, 390)
    assert set(mod.PAGES) == {"default", "ppms", "efgartigimod", "nmosd", "mg", "musk", "complement"}


def _mg_arm(therapy: str, kind: str, responders: float, week_12: float, week_52: float | None) -> Arm:
    endpoints = {"mg_adl_responder": {"kind": "binary", "value": responders},
                 "mg_adl_change_week_12": {"kind": "continuous", "mean": week_12}}
    if week_52 is not None:
        endpoints["mg_adl_change_week_52"] = {"kind": "continuous", "mean": week_52}
    return Arm("mg", therapy, kind, "", 100, 0, (0.0, 365.0), {}, (), endpoints, pd.DataFrame())


def test_mg_sentence_says_how_long_the_improvement_lasts():
    """The page gave only the week-12 MG-ADL change, where a CAR-T and a 4-week efgartigimod cycle looked alike
    (69% and 65% responders); the week-52 change shows which improvement lasts. A run shorter than a year has
    no week-52 value and says nothing about it."""
    cart = text.mg_sentence(_mg_arm("kyv-101", "car-t", 0.69, -4.8, -5.6))
    drug = text.mg_sentence(_mg_arm("efgartigimod", "drug", 0.65, -1.7, -0.6))
    assert "-4.8 points on average by week 12 and -5.6 points on average by week 52" in cart
    assert "-1.7 points on average by week 12 and -0.6 points on average by week 52" in drug
    short = text.mg_sentence(_mg_arm("efgartigimod", "drug", 0.65, -1.7, None))
    assert short.endswith("-1.7 points on average by week 12.") and "week 52" not in short


def _igg_arm(therapy: str, p05: float, median: float, p95: float) -> Arm:
    return Arm("mg", therapy, "drug", "", 100, 0, (0.0, 365.0), {}, (), {"igg_nadir_fraction": {
        "kind": "continuous", "p05": p05, "median": median, "p95": p95}}, pd.DataFrame())


def test_igg_that_does_not_fall_is_said_to_stay():
    """Regression: the page said ravulizumab's 'total IgG fell to a median low of 100% of its starting level';
    a drug that leaves IgG alone now reads as such, and one that lowers it keeps its numbers."""
    assert text.igg_sentence(_igg_arm("ravulizumab", 0.999, 1.0, 1.0)) == (
        "ravulizumab: total IgG stayed at its starting level in the simulated patients.")
    s = text.igg_sentence(_igg_arm("efgartigimod", 0.38, 0.39, 0.40))
    assert "fell to a median low of 39%" in s
