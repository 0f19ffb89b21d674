"""``cartsim validate``: the model against published targets (data/targets.yaml).

Each target is simulated in its own clinical context, the typical patient or a
seeded virtual population of 200, and every acceptance key of the target is
one check. Nothing here adjusts the model: a target the model misses fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from typing import Callable

import numpy as np
import pandas as pd
import sympy as sp
import yaml

from cartsim import endpoints, mg_outcomes, nmosd_outcomes
from cartsim.engine import Solution
from cartsim.model import Model, build_model
from cartsim.model.ir import substitute_derived
from cartsim.population import Population, sample, typical
from cartsim.scenario import Scenario

POP_N = 200
SEED = 20221
HORIZON = 365


@dataclass(frozen=True)
class Check:
    id: str
    metric: str
    predicted: float
    accept: list[float]
    passed: bool
    calibrated: bool = False   # the model was fitted to this number (it checks the fit, it is no prediction)

    def as_json(self) -> dict:
        d = asdict(self)
        d["pass"] = d.pop("passed")
        return d


@lru_cache(maxsize=1)
def targets() -> dict[str, dict]:
    text = resources.files("cartsim.data").joinpath("targets.yaml").read_text()
    return {t["id"]: t for t in yaml.safe_load(text)}


def _frozen(values: dict[str, float] | None) -> tuple[tuple[str, float], ...]:
    """``values`` as a sorted tuple: a key of the cached population runs below."""
    return tuple(sorted((values or {}).items()))


@lru_cache(maxsize=16)
def _population_run(therapy: str, disease: str, days: float = HORIZON, regimen: str | None = None,
                    course: str | None = None, n: int = POP_N, dose: str | None = None,
                    parameters: tuple[tuple[str, float], ...] = (),
                    iiv: tuple[tuple[str, float], ...] = (),
                    lymphodepletion: str | None = None) -> tuple[pd.DataFrame, Solution]:
    model = build_model()
    sc = Scenario.make(therapy, disease, days, dose=dose, regimen=regimen, course=course,
                       parameters=dict(parameters) or None, iiv=dict(iiv) or None, lymphodepletion=lymphodepletion)
    pop = sample(model, sc.disease, n, SEED, course=sc.course)
    sol = sc.run(pop, columns=endpoints.COLUMNS)
    return endpoints.compute(sol, model.table, sc.last_dose_day(), pop,
                             infusion_risks=sc.infusion_reaction_risks()), sol


@lru_cache(maxsize=8)
def _typical_run(therapy: str, disease: str, days: float = HORIZON,
                 course: str | None = None) -> tuple[pd.DataFrame, Solution]:
    model = build_model()
    sc = Scenario.make(therapy, disease, days, course=course)
    pop = typical(model, sc.disease, sc.course)
    sol = sc.run(pop, columns=endpoints.COLUMNS)
    return endpoints.compute(sol, model.table, population=pop), sol


def _grades(series: pd.Series) -> dict[str, float]:
    g = series.dropna().astype(int)
    return {"pop_fraction_any": float((g >= 1).mean()), "pop_fraction_grade2plus": float((g >= 2).mean()),
            "pop_fraction_grade3plus": float((g >= 3).mean())}


def _toxicity(ep: pd.DataFrame, crs: tuple[str, ...] = (), icans: tuple[str, ...] = ()) -> dict[str, float]:
    """The shares of patients with CRS and ICANS at the grades named (``any``, ``grade2plus``, ``grade3plus``), as
    the checks name them: ``pop_crs_any``, ``pop_icans_grade3plus``, ..."""
    out = {}
    for name, grades in (("crs", crs), ("icans", icans)):
        if grades:
            shares = _grades(ep[f"{name}_max_grade"])
            out |= {f"pop_{name}_{g}": shares[f"pop_fraction_{g}"] for g in grades}
    return out


def _sle() -> tuple[pd.DataFrame, Solution]:
    return _population_run("mb-cart19", "sle")


def bcell_reappearance() -> dict[str, float]:
    d = _sle()[0].bcell_reappearance_day.astype(float)
    return {"pop_mean": float(d.mean()), "pop_sd": float(d.std(ddof=1))}


def naive_return() -> dict[str, float]:
    return {"pop_median_naive_fraction_at_reappearance":
            float(_sle()[0].naive_fraction_at_reappearance.astype(float).median())}


def crs() -> dict[str, float]:
    return _grades(_sle()[0].crs_max_grade)


def icans() -> dict[str, float]:
    return {"pop_fraction_any": _grades(_sle()[0].icans_max_grade)["pop_fraction_any"]}


def cart_tmax() -> dict[str, float]:
    return {"pop_median": float(_sle()[0].cart_tmax_day.astype(float).median())}


def depletion_onset() -> dict[str, float]:
    _, sol = _sle()
    b = sol.column("b_blood_per_uL")[:, np.searchsorted(sol.times, 7.0)]
    return {"pop_fraction_below_1_per_uL_at_day_7": float(np.mean(b < 1.0))}


KYMRIAH_AUC_DAYS = 28.0


def kymriah_ball_spread(iiv: dict[str, float] | None = None) -> dict[str, float]:
    """Tisagenlecleucel in B-ALL: how much the CAR-T peak and the exposure over the first 28 days differ between
    patients (SD of their logarithms; the label gives geometric CVs), and the median peak day (``iiv``:
    between-patient SDs a calibration tries)."""
    ep, sol = _population_run("tisa-cel", "b-all", iiv=_frozen(iiv))
    car, t = sol.column("car_blood_per_uL"), sol.times
    i = int(np.searchsorted(t, KYMRIAH_AUC_DAYS))
    auc = np.trapezoid(car[:, :i + 1], t[:i + 1], axis=1)
    peak = ep.cart_peak_per_uL.to_numpy(float)
    return {"pop_log_sd_cmax": float(np.log(peak[peak > 0]).std(ddof=1)),
            "pop_log_sd_auc_0_28": float(np.log(auc[auc > 0]).std(ddof=1)),
            "pop_median_tmax": float(np.median(ep.cart_tmax_day.to_numpy(float)))}


# JULIET (tisagenlecleucel in DLBCL): the middle of its dose range (1-5e8 CAR+ cells) and its lymphodepletion
JULIET_DOSE, JULIET_LYMPHODEPLETION = "3e8 cells", "lymphoma-flu25-cy250"


def _juliet() -> pd.DataFrame:
    """Endpoints of tisagenlecleucel in lymphoma as in JULIET (its dose and lymphodepletion)."""
    return _population_run("tisa-cel", "lbcl", dose=JULIET_DOSE, lymphodepletion=JULIET_LYMPHODEPLETION)[0]


def tisacel_dlbcl_vs_ball() -> dict[str, float]:
    """Tisagenlecleucel's median CAR-T peak in DLBCL (JULIET's dose and lymphodepletion) over that in B-ALL."""
    dlbcl = _juliet()
    ball = _population_run("tisa-cel", "b-all")[0]
    return {"pop_median_cart_peak_ratio_dlbcl_to_ball":
            float(dlbcl.cart_peak_per_uL.median() / ball.cart_peak_per_uL.median())}


def lbcl_tisacel_axicel_expansion() -> dict[str, float]:
    """Tisagenlecleucel's median CAR-T peak in lymphoma (JULIET's dose and lymphodepletion) over axicabtagene
    ciloleucel's (ZUMA-1's)."""
    axi = _population_run("axi-cel", "lbcl")[0]
    return {"pop_median_cart_peak_ratio_tisacel_to_axicel":
            float(_juliet().cart_peak_per_uL.median() / axi.cart_peak_per_uL.median())}


TRANSCEND_DOSE = "1e8 cells"      # dose level 2, the dose of 177 of TRANSCEND's 269 patients (the product's)


def transcend_liso_cel() -> dict[str, float]:
    """Lisocabtagene maraleucel in lymphoma (TRANSCEND's dose level 2 and lymphodepletion, the product's own)."""
    ep = _population_run("liso-cel", "lbcl", dose=TRANSCEND_DOSE)[0]
    return _toxicity(ep, ("any", "grade3plus")) | {
        "pop_median_tmax": float(ep.cart_tmax_day.astype(float).median())}


def lbcl_axicel_vs_tisacel_crs() -> dict[str, float]:
    """Whether CRS of any grade is more frequent after axi-cel (ZUMA-1's setting) than after tisa-cel (JULIET's)
    in lymphoma; 1 = true."""
    axi = _toxicity(_population_run("axi-cel", "lbcl")[0], ("any",))["pop_crs_any"]
    tisa = _toxicity(_juliet(), ("any",))["pop_crs_any"]
    return {"axicel_crs_more_frequent": float(axi > tisa)}


def crs_onset_lymphoma() -> dict[str, float]:
    """Median day CRS starts, in the patients with CRS, after axi-cel (ZUMA-1's setting), tisa-cel (JULIET's) and
    liso-cel (TRANSCEND's) in lymphoma."""
    runs = {"axicel": _population_run("axi-cel", "lbcl")[0], "tisacel": _juliet(),
            "lisocel": _population_run("liso-cel", "lbcl", dose=TRANSCEND_DOSE)[0]}
    return {f"pop_median_crs_onset_{name}": float(ep.crs_onset_day.astype(float).median()) for name, ep in runs.items()}


def stein_kinetics() -> dict[str, float]:
    ep, sol = _typical_run("tisa-cel", "b-all")
    tmax = ep.cart_tmax_day.to_numpy(float)
    contraction, persistence = endpoints.persistence_halflives(sol.times, sol.column("car_blood_per_uL"), tmax)
    return {"typical_tmax_day": float(tmax[0]), "typical_contraction_halflife_day": float(contraction[0]),
            "typical_persistence_halflife_day": float(persistence[0])}


def healthy_counts() -> dict[str, float]:
    model = build_model()
    sc = Scenario.make("untreated", "healthy", 1)
    sol = sc.run(sample(model, sc.disease, 1000, SEED), columns=("b_blood_per_uL",), times=np.array([0.0]))
    b = sol.column("b_blood_per_uL")[:, 0]
    return {"pop_median": float(np.median(b)), "pop_p025": float(np.percentile(b, 2.5)),
            "pop_p975": float(np.percentile(b, 97.5))}


def bcell_turnover(model: Model | None = None) -> dict[str, float]:
    """New mature B cells made per day (from precursors and self-renewal) over the mature pool, at steady state."""
    model = model or build_model()
    pools = {"b_naive_blood", "b_naive_tissue", "b_mem_blood", "b_mem_tissue"}
    values = {sp.Symbol(n): model.table.value(n) for n in model.parameters}
    states = {sp.Symbol(s.name): substitute_derived(model, s.initial).xreplace(values) for s in model.states}
    production = sum(f.rate for f in model.flows if f.target in pools and f.source not in pools)
    rate = float(substitute_derived(model, production).xreplace(values).xreplace(states))
    size = float(sum(states[sp.Symbol(p)] for p in pools))
    return {"typical_all_b_turnover": rate / size}


# ocrelizumab: the label regimen; exposure is read at steady state (the 600 mg dose of year 3)
OCR_STEADY_DOSE_DAY = 5 * 168.0
OCR_STOPPED = "300 mg IV over 2.5 h on days 0 and 14, then 600 mg IV over 3.5 h every 24 weeks for 4 doses"


def ocrelizumab_pk() -> dict[str, float]:
    model = build_model()
    sc = Scenario.make("ocrelizumab", "ms", OCR_STEADY_DOSE_DAY + 168.0)
    t0 = OCR_STEADY_DOSE_DAY
    times = np.unique(np.concatenate([np.arange(t0, t0 + 1, 1 / 96), np.arange(t0, t0 + 168.0 + 1e-9, 0.25)]))
    sol = sc.run(typical(model, sc.disease, sc.course), columns=("mab_conc",), times=times)
    c = sol.column("mab_conc")[0]
    late = times >= t0 + 84.0          # terminal phase: last 12 weeks of the interval
    slope = np.polyfit(times[late], np.log(c[late]), 1)[0]
    return {"typical_cmax_600mg": float(c.max()), "typical_auc_24wk": float(np.trapezoid(c, times)),
            "typical_terminal_halflife": float(np.log(2) / -slope)}


def ocrelizumab_depletion_onset() -> dict[str, float]:
    _, sol = _population_run("ocrelizumab", "ms", 28.0)
    i = np.searchsorted(sol.times, 14.0)   # just before the second 300 mg infusion
    return {"pop_fraction_below_80_at_day_14": float(np.mean(sol.column("b_blood_per_uL")[:, i] < 80.0))}


def ocrelizumab_repletion() -> dict[str, float]:
    ep, _ = _population_run("ocrelizumab", "ms", 4 * 168.0 + 260 * 7.0, OCR_STOPPED)
    w = ep.bcell_repletion_after_last_dose_week.to_numpy(float)
    # censored patients (no repletion within 5 years) count as late, as in a percentile of event times
    return {"pop_median": float(np.median(w)), "pop_p05": float(np.percentile(w, 5)),
            "pop_p95": float(np.percentile(w, 95))}


def ofatumumab_depletion() -> dict[str, float]:
    _, sol = _population_run("ofatumumab", "ms", 28.0)
    return {"pop_median_day_11": float(np.median(sol.column("b_blood_per_uL")[:, np.searchsorted(sol.times, 11.0)]))}


def zuma1_toxicity() -> dict[str, float]:
    return _toxicity(_population_run("axi-cel", "lbcl")[0], ("any", "grade3plus"), ("any", "grade3plus"))


def autoimmune_vs_cancer() -> dict[str, float]:
    """The same product and lymphodepletion (MB-CART19.1, Erlangen regimen) in SLE and in lymphoma; 1 = true."""
    sle, lbcl = _population_run("mb-cart19", "sle")[0], _population_run("mb-cart19", "lbcl")[0]
    crs = [_grades(d.crs_max_grade)["pop_fraction_grade2plus"] for d in (sle, lbcl)]
    repl = [float(d.bcell_reappearance_day.astype(float).median()) for d in (sle, lbcl)]
    peak = [float(d.cart_peak_per_uL.median()) for d in (sle, lbcl)]
    # clearance from blood; a patient still carrying CAR-T cells at the horizon counts at the horizon
    persist = [float(d.cart_persistence_day.astype(float).median()) for d in (sle, lbcl)]
    return {"sle_crs_grade2plus_lower": float(crs[0] < crs[1]), "sle_bcell_recovery_faster": float(repl[0] < repl[1]),
            "sle_cart_persistence_shorter": float(persist[0] < persist[1]),
            "pop_median_cart_peak_ratio_lymphoma_to_sle": peak[1] / peak[0]}


IGG_LOWER_LIMIT = 7.0     # g/L: the lower limit of normal adult serum IgG, read as "recovery" (an assumption)
BCMA_MYELOMA_DOSE = "1e6 cells/kg"   # given for the myeloma series' anti-BCMA CAR-Ts (their doses not read; assumed)


def bcma_cart_igg_recovery(parameters: dict[str, float] | None = None) -> dict[str, float]:
    """Polyclonal IgG one year after an anti-BCMA CAR-T (eque-cel at 1e6 cells/kg, its own lymphodepletion) in
    people without a plasma-cell cancer: the share back at the lower limit of normal (``parameters``: values a
    calibration tries)."""
    _, sol = _population_run("eque-cel", "healthy", 366.0, dose=BCMA_MYELOMA_DOSE,
                             parameters=_frozen(parameters))
    igg = sol.column("igg")[:, np.searchsorted(sol.times, 365.0)]
    return {"pop_fraction_igg_recovered_day_365": float(np.mean(igg >= IGG_LOWER_LIMIT))}


def bcma_cart_pms() -> dict[str, float]:
    """Eque-cel in progressive MS (secondary progressive, as four of the five patients)."""
    ep = _population_run("eque-cel", "ms", course="spms")[0]
    typ = _typical_run("eque-cel", "ms", course="spms")[0].iloc[0]
    return _toxicity(ep, ("grade2plus",), ("any",)) | {
        "typical_cns_plasma_cell_reduction_day_90": 1 - float(typ.cns_plasma_cell_fraction_day_90),
        "typical_intrathecal_igg_reduction_day_180": 1 - float(typ.intrathecal_igg_fraction_day_180)}


YEAR = 365.25


def _typical_course(therapy: str, disease: str, days: float, columns: tuple[str, ...],
                    parameters: dict[str, float] | None = None) -> tuple[np.ndarray, Solution]:
    """Daily values of ``columns`` for the typical patient (``parameters``: values a calibration tries)."""
    model = build_model()
    sc = Scenario.make(therapy, disease, days, parameters=parameters)
    times = np.arange(0.0, days + 1e-9, 1.0)
    return times, sc.run(typical(model, sc.disease, sc.course), columns=columns, times=times)


def _fraction_at(times: np.ndarray, values: np.ndarray, day: float) -> float:
    return float(np.interp(day, times, values) / values[0])


def ocrelizumab_igg(parameters: dict[str, float] | None = None) -> dict[str, float]:
    """Total IgG of the typical relapsing-MS patient on ocrelizumab every 24 weeks, after 1 and 5 years."""
    t, sol = _typical_course("ocrelizumab", "ms", 5 * YEAR, ("igg",), parameters)
    igg = sol.column("igg")[0]
    return {"typical_year_1": _fraction_at(t, igg, YEAR), "typical_year_5": _fraction_at(t, igg, 5 * YEAR)}


def cd19_cart_igg(parameters: dict[str, float] | None = None) -> dict[str, float]:
    """After a 4-1BB CD19 CAR-T in B-cell lymphoma: total IgG at month 9 (the middle of the 6-12 months of the
    samples) and the CD19- long-lived plasma cells that make measles IgG, at month 12."""
    t, sol = _typical_course("tisa-cel", "lbcl", YEAR, ("igg", "pc"), parameters)
    return {"typical_total_igg_month_9": _fraction_at(t, sol.column("igg")[0], 0.75 * YEAR),
            "typical_cd19neg_plasma_cells_month_12": _fraction_at(t, sol.column("pc")[0], YEAR)}


ADAPT_CYCLE_DAYS = 56.0     # one efgartigimod cycle (4 weekly infusions) and 4 weeks after the last


def efgartigimod_igg(parameters: dict[str, float] | None = None) -> dict[str, float]:
    """Largest fall of total IgG over one efgartigimod cycle (10 mg/kg IV weekly x4), typical adult."""
    t, sol = _typical_course("efgartigimod", "healthy", ADAPT_CYCLE_DAYS, ("igg",), parameters)
    igg = sol.column("igg")[0]
    return {"typical_igg_max_reduction": float(1 - igg.min() / igg[0])}


def sle_vaccine_titres() -> dict[str, float]:
    """CD19- long-lived plasma cells (the source of vaccine titres) one year after MB-CART19.1 in lupus."""
    t, sol = _typical_course("mb-cart19", "sle", YEAR, ("pc",))
    return {"typical_cd19neg_plasma_cells_year_1": _fraction_at(t, sol.column("pc")[0], YEAR)}


ORATORIO_DAYS = 120 * 7.0
ORATORIO_OCRELIZUMAB = "300 mg IV over 2.5 h on days 0, 14, 168, 182, 336, 350, 504, 518, 672, 686"


def opera_irr() -> dict[str, float]:
    """Patients with an infusion-related reaction to ocrelizumab: OPERA (96 weeks) and ORATORIO (120 weeks,
    two 300 mg infusions every 24 weeks)."""
    oratorio = _population_run("ocrelizumab", "ms", ORATORIO_DAYS, ORATORIO_OCRELIZUMAB, "ppms")[0]
    return {"pop_opera": float(_opera("ocrelizumab").infusion_reaction_any.mean()),
            "pop_oratorio": float(oratorio.infusion_reaction_any.mean())}


OPERA_DAYS = 96 * 7.0
OPERA_N = 1000          # per arm: relapses and lesions are counts, so the arm rates need a large cohort
OPERA_OCRELIZUMAB = "300 mg IV over 2.5 h on days 0 and 14, then 600 mg IV over 3.5 h every 24 weeks"


def _opera(therapy: str) -> pd.DataFrame:
    regimen = OPERA_OCRELIZUMAB if therapy == "ocrelizumab" else None
    return _population_run(therapy, "ms", OPERA_DAYS, regimen, "rrms", OPERA_N)[0]


def opera_arr() -> dict[str, float]:
    """Relapsing MS, 96 weeks: arm relapse rate = total relapses / total patient-years."""
    ocr, ifn = (float(_opera(t).annualized_relapse_rate.mean()) for t in ("ocrelizumab", "interferon-beta-1a"))
    return {"pop_ocrelizumab": ocr, "pop_ratio_ocrelizumab_to_interferon": ocr / ifn}


def opera_gd_lesions() -> dict[str, float]:
    return {f"pop_{arm}": float(_opera(t).gd_lesions_per_scan.mean())
            for arm, t in (("ocrelizumab", "ocrelizumab"), ("interferon", "interferon-beta-1a"))}


def opera_cdp12() -> dict[str, float]:
    return {f"pop_{arm}": float(_opera(t).cdp12_fraction.astype(float).mean())
            for arm, t in (("ocrelizumab", "ocrelizumab"), ("interferon", "interferon-beta-1a"))}


# --- NMOSD (N-MOmentum, CT103A) and myasthenia gravis (ADAPT, Descartes-08) ---

N_MOMENTUM_DAYS = 197.0      # the randomised controlled period: up to 197 days
# the doses of that period: 300 mg on days 1 and 15 and none after (the six-monthly doses began in the open-label
# period; Cree 2019), so B cells at week 28 are those of the first course, not of a re-dose at week 26
N_MOMENTUM_REGIMEN = "300 mg IV over 1.5 h on days 0 and 14"
AUTOIMMUNE_N = 1000          # per arm: attack-free fractions and responder rates need a large cohort


def _autoimmune_run(therapy: str, disease: str, days: float, parameters: dict[str, float] | None = None,
                    n: int = AUTOIMMUNE_N, iiv: dict[str, float] | None = None,
                    regimen: str | None = None) -> tuple[Solution, Population]:
    """A seeded population of ``n`` (``parameters``, ``iiv``: values and between-patient SDs a calibration
    tries; ``regimen``: an antibody's doses, if not its default)."""
    model = build_model()
    sc = Scenario.make(therapy, disease, days, parameters=parameters, iiv=iiv, regimen=regimen)
    pop = sample(model, sc.disease, n, SEED, course=sc.course)
    times = np.arange(0.0, days + 1e-9, 1.0)
    cols = ("attack_cum", "autoantibody", "b_blood_per_uL", "mg_adl", "qmg", "il6_signal")
    return sc.run(pop, columns=cols, times=times), pop


def n_momentum_aqp4_igg(parameters: dict[str, float] | None = None) -> dict[str, float]:
    """Share of inebilizumab patients whose AQP4-IgG fell at least 2-fold by the end of the controlled period."""
    sol, _ = _autoimmune_run("inebilizumab", "nmosd", N_MOMENTUM_DAYS, parameters, regimen=N_MOMENTUM_REGIMEN)
    aab = sol.column("autoantibody")
    return {"pop_fraction_2fold_fall_day_197": float(np.mean(aab[:, -1] <= 0.5 * aab[:, 0]))}


def n_momentum_attacks(parameters: dict[str, float] | None = None) -> dict[str, float]:
    """Attack-free probability by day 197 (expected over patients, no draws) on placebo and inebilizumab, and
    the hazard ratio under proportional hazards, log S(inebilizumab) / log S(placebo)."""
    free = {}
    for arm in ("placebo", "inebilizumab"):
        sol, _ = _autoimmune_run(arm, "nmosd", N_MOMENTUM_DAYS, parameters,
                                 regimen=N_MOMENTUM_REGIMEN if arm == "inebilizumab" else None)
        free[arm] = float(nmosd_outcomes.attack_free(sol.times, sol.column("attack_cum"), N_MOMENTUM_DAYS).mean())
    return {"pop_attack_free_placebo": free["placebo"], "pop_attack_free_inebilizumab": free["inebilizumab"],
            "pop_hazard_ratio": float(np.log(free["inebilizumab"]) / np.log(free["placebo"]))}


def inebilizumab_pk() -> dict[str, float]:
    """The typical patient's serum level: peak after the second 300 mg dose, and exposure over 26 weeks."""
    model = build_model()
    sc = Scenario.make("inebilizumab", "nmosd", 182.0)
    times = np.arange(0.0, 182.0 + 1e-9, 1 / 24)
    c = sc.run(typical(model, sc.disease), columns=("mab_conc",), times=times).column("mab_conc")[0]
    return {"typical_cmax": float(c.max()), "typical_auc_26wk": float(np.trapezoid(c, times))}


def inebilizumab_bcells(parameters: dict[str, float] | None = None) -> dict[str, float]:
    """Blood B cells on inebilizumab in N-MOmentum (two doses, none after): below the lower limit of normal at
    weeks 4 and 28, at most 4/uL at week 28."""
    sol, _ = _autoimmune_run("inebilizumab", "nmosd", 28 * 7.0, parameters, n=POP_N, regimen=N_MOMENTUM_REGIMEN)
    b = sol.column("b_blood_per_uL")
    at = lambda week: b[:, np.searchsorted(sol.times, 7.0 * week)]  # noqa: E731
    return {"pop_fraction_below_lln_week_4": float(np.mean(at(4) < endpoints.REPLETION_LIMIT)),
            "pop_fraction_below_lln_week_28": float(np.mean(at(28) < endpoints.REPLETION_LIMIT)),
            "pop_fraction_at_most_4_per_uL_week_28": float(np.mean(at(28) <= 4.0))}


CT103A_FOLLOW_UP_DAYS = 167.0     # median follow-up 5.5 months


def ct103a_nmosd() -> dict[str, float]:
    """Eque-cel (CT103A) in AQP4-IgG+ NMOSD: attack-free by the median follow-up, CRS."""
    ep, sol = _population_run("eque-cel", "nmosd", CT103A_FOLLOW_UP_DAYS)
    post = sol.times >= 0
    free = nmosd_outcomes.attack_free(sol.times[post], sol.column("attack_cum")[:, post], CT103A_FOLLOW_UP_DAYS)
    return {"pop_attack_free": float(free.mean())} | _toxicity(ep, ("any", "grade3plus"))


ADAPT_DAYS = 12 * 7.0     # the responder window (a run of 4 weekly visits starting by week 12)


MG_OUTCOME_VALUES = ("mg_placebo_mean", "mg_placebo_sd", "mg_visit_sd", "mg_qmg_placebo_share")


@lru_cache(maxsize=8)
def _mg_run(therapy: str, days: float, model_values: tuple[tuple[str, float], ...],
            iiv: tuple[tuple[str, float], ...] = ()) -> tuple[Solution, Population]:
    """A seeded MG population, kept for the outcome values a calibration tries on the same solution."""
    return _autoimmune_run(therapy, "mg", days, dict(model_values), iiv=dict(iiv) or None)


def _mg_endpoints(therapy: str, days: float, parameters: dict[str, float] | None = None,
                  iiv: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """MG endpoints of a seeded population; ``parameters`` may hold model values and the outcome values
    ``MG_OUTCOME_VALUES`` (which only the visit draws use); ``iiv``: between-patient SDs that replace the
    table's."""
    values = dict(parameters or {})
    table = build_model().table
    outcome = {name: values.pop(name, table.value(name)) for name in MG_OUTCOME_VALUES}
    sol, pop = _mg_run(therapy, days, _frozen(values), _frozen(iiv))
    rngs = [pop.event_rng(k) for k in range(len(pop))]
    return mg_outcomes.draw(sol.times, sol.column("mg_adl"), sol.column("qmg"), rngs, outcome["mg_placebo_mean"],
                            outcome["mg_placebo_sd"], days, outcome["mg_qmg_placebo_share"], outcome["mg_visit_sd"])


def adapt_mg(parameters: dict[str, float] | None = None) -> dict[str, float]:
    """ADAPT, AChR-antibody positive, cycle 1, efgartigimod and placebo: MG-ADL and QMG responders, and the
    shares 6 or more MG-ADL points better and with minimal symptom expression at a visit in weeks 1-8."""
    arms = {t: _mg_endpoints(t, ADAPT_DAYS, parameters) for t in ("efgartigimod", "placebo")}
    names = {"mg_adl_responders": "mg_adl_responder", "qmg_responders": "qmg_responder",
             "mg_adl_improved_6": "mg_adl_improved_6", "mg_adl_mse": "mg_adl_mse"}
    return {f"pop_{metric}_{arm}": float(ep[endpoint].mean())
            for metric, endpoint in names.items() for arm, ep in arms.items()}


def adapt_anti_achr() -> dict[str, float]:
    """Largest fall of the anti-AChR antibody over the first efgartigimod cycle, typical patient."""
    t, sol = _typical_course("efgartigimod", "mg", ADAPT_CYCLE_DAYS, ("autoantibody",))
    aab = sol.column("autoantibody")[0]
    return {"typical_anti_achr_max_reduction": float(1 - aab.min() / aab[0])}


def descartes08_mg() -> dict[str, float]:
    """Descartes-08 (six weekly infusions, no lymphodepletion) in MG: MG-ADL change at month 12."""
    ep = _mg_endpoints("descartes-08", 365.0)
    return {"pop_mg_adl_change_week_52": float(np.nanmean(ep["mg_adl_change_week_52"]))}


KYSA6_DAYS = 24 * 7.0    # KYSA-6's interim read-out: week 24


def kysa6_mg_adl(parameters: dict[str, float] | None = None) -> dict[str, float]:
    """KYV-101 in generalised MG (KYSA-6): the mean MG-ADL change at week 24 (``parameters``: values a
    calibration tries)."""
    ep = _mg_endpoints("kyv-101", KYSA6_DAYS, parameters)
    return {"pop_mg_adl_change_week_24": float(np.nanmean(ep["mg_adl_change_week_24"]))}


def kysa6_mg() -> dict[str, float]:
    """KYV-101 (CD19 CAR-T, CD28) in generalised MG, KYSA-6 phase 2 interim: MG-ADL change at week 24 and
    high-grade CRS."""
    return kysa6_mg_adl() | _toxicity(_population_run("kyv-101", "mg", 30)[0], ("grade3plus",))


CHAMPION_DAYS = 182.0     # CHAMPION MG's primary read-out: week 26
QMG_BIG_IMPROVEMENT = 5   # points: CHAMPION MG's QMG responder threshold


def champion_mg(parameters: dict[str, float] | None = None, iiv: dict[str, float] | None = None) -> dict[str, float]:
    """Ravulizumab against placebo in AChR+ generalised MG (CHAMPION MG): the difference of the mean MG-ADL and
    QMG changes at week 26, and the placebo arm's own MG-ADL change. The same seeded patients in both arms, so
    the difference is the drug's effect on each patient's expected scores: the placebo improvement and visit
    swings of ``cartsim.mg_outcomes`` are the same in both arms and cancel. The placebo arm's change, and the
    shares of each arm with QMG 5 or more points better, are read at the weekly visit of week 24 (the trial's
    is at week 26) from the drawn visit scores. ``parameters`` and ``iiv``: values and between-patient SDs a
    calibration tries."""
    values = dict(parameters or {})
    model_values = _frozen({k: v for k, v in values.items() if k not in MG_OUTCOME_VALUES})
    spread = _frozen(iiv)
    at = {}
    for arm in ("ravulizumab", "placebo"):
        sol, _ = _mg_run(arm, CHAMPION_DAYS, model_values, spread)
        i = int(np.searchsorted(sol.times, CHAMPION_DAYS))
        at[arm] = {c: sol.column(c)[:, i] for c in ("mg_adl", "qmg")}
    out = {f"pop_{c}_difference_week_26": float(np.mean(at["ravulizumab"][c] - at["placebo"][c]))
           for c in ("mg_adl", "qmg")}
    drawn = {arm: _mg_endpoints(arm, CHAMPION_DAYS, values, iiv) for arm in ("ravulizumab", "placebo")}
    improved = {f"pop_qmg_improved_5_week_26_{arm}": float(np.mean(ep["qmg_change_week_24"] <= -QMG_BIG_IMPROVEMENT))
                for arm, ep in drawn.items()}
    placebo_change = float(np.nanmean(drawn["placebo"]["mg_adl_change_week_24"]))
    return out | {"pop_mg_adl_change_week_24_placebo": placebo_change} | improved


def regain_mg(parameters: dict[str, float] | None = None, iiv: dict[str, float] | None = None) -> dict[str, float]:
    """Eculizumab against placebo in refractory AChR+ generalised MG (REGAIN): the share of patients with minimal
    symptom expression (MG-ADL 0 or 1) at week 26, read at the model's weekly visit of week 24 (``parameters``
    and ``iiv``: model values and between-patient SDs a calibration tries)."""
    values = dict(parameters or {})
    out = {}
    for arm in ("eculizumab", "placebo"):
        sol, _ = _mg_run(arm, CHAMPION_DAYS, _frozen(values), _frozen(iiv))
        start = np.clip(np.rint(sol.column("mg_adl")[:, 0]), 0, mg_outcomes.ADL_MAX)
        week_24 = start + _mg_endpoints(arm, CHAMPION_DAYS, values, iiv)["mg_adl_change_week_24"]
        out[f"pop_mse_week_26_{arm}"] = float(np.mean(week_24 <= mg_outcomes.MSE_MAX))
    return out


MUSK_RITUXIMAB_DAYS = 930.0      # Diaz-Manera 2012: last follow-up, a mean of 31 months after rituximab
MUSK_RITUXIMAB = "1000 mg IV over 4.25 h on days 0 and 14"     # one induction course, no reinfusions


def musk_rituximab() -> dict[str, float]:
    """Anti-MuSK antibody after one course of rituximab in MuSK myasthenia gravis: the share of patients whose
    titre fell by 80% or more (or became undetectable) by the last follow-up."""
    model = build_model()
    sc = Scenario.make("rituximab", "mg-musk", MUSK_RITUXIMAB_DAYS, regimen=MUSK_RITUXIMAB)
    pop = sample(model, sc.disease, AUTOIMMUNE_N, SEED)
    aab = sc.run(pop, columns=("autoantibody",), times=np.array([0.0, MUSK_RITUXIMAB_DAYS])).column("autoantibody")
    return {"pop_fraction_fall_80_month_31": float(np.mean(aab[:, -1] <= 0.2 * aab[:, 0]))}


def muller2024_toxicity() -> dict[str, float]:
    """CD19 CAR-T in 15 autoimmune patients (Erlangen, NEJM 2024): CRS and ICANS, run as SLE."""
    return _toxicity(_sle()[0], ("any", "grade2plus"), ("any",))


DESCARTES08_SAFETY_DAYS = 84.0     # the six weekly infusions and six weeks after the last


def descartes08_safety() -> dict[str, float]:
    """Descartes-08 in MG (MG-001): CRS and ICANS of any grade."""
    return _toxicity(_population_run("descartes-08", "mg", DESCARTES08_SAFETY_DAYS)[0], ("any",), ("any",))


def zuma1_cart_peak() -> dict[str, float]:
    return {"pop_median": float(_population_run("axi-cel", "lbcl")[0].cart_peak_per_uL.median())}


def axicel_bcell_recovery(parameters: dict[str, float] | None = None) -> dict[str, float]:
    """B cells detectable (>= 1/uL, the flow-cytometry limit) after axi-cel in lymphoma (``parameters``: values a
    calibration tries)."""
    _, sol = _population_run("axi-cel", "lbcl", parameters=_frozen(parameters))
    b = sol.column("b_blood_per_uL")
    return {f"pop_fraction_detectable_day_{d}": float(np.mean(b[:, np.searchsorted(sol.times, d)]
                                                              >= endpoints.REAPPEARANCE_LIMIT)) for d in (30, 365)}


KYSA1_DOSE = "0.5e8 cells"


def kysa1_crs() -> dict[str, float]:
    """KYV-101 at KYSA-1's dose in lupus (run as SLE)."""
    return _toxicity(_population_run("kyv-101", "sle", 60.0, dose=KYSA1_DOSE)[0], ("any", "grade2plus"))


def kyv101_autoimmune_safety() -> dict[str, float]:
    """KYV-101 at its dose in autoimmune disease (the first 30 patients of several diseases, run as SLE)."""
    return _toxicity(_population_run("kyv-101", "sle", 60.0)[0], ("grade3plus",), ("any",))


YTB323_DOSE = "12.5e6 cells"


def ytb323_kinetics() -> dict[str, float]:
    """A 4-1BB CD19 CAR-T at YTB323's low flat dose in SLE (run as MB-CART19.1 at that dose)."""
    ep = _population_run("mb-cart19", "sle", dose=YTB323_DOSE)[0]
    return {"pop_median_tmax": float(ep.cart_tmax_day.astype(float).median()),
            "pop_median_persistence": float(ep.cart_persistence_day.astype(float).median())}


def ytb323_crs() -> dict[str, float]:
    """CRS and ICANS at YTB323's low flat dose of a 4-1BB CD19 CAR-T in SLE (run as MB-CART19.1 at that dose)."""
    return _toxicity(_population_run("mb-cart19", "sle", dose=YTB323_DOSE)[0], ("any", "grade2plus"), ("any",))


CHECKS: dict[str, Callable[[], dict[str, float]]] = {
    "mackensen2022_bcell_reappearance": bcell_reappearance,
    "mackensen2022_naive_return": naive_return,
    "mackensen2022_crs": crs,
    "mackensen2022_icans": icans,
    "autoimmune_cart_tmax": cart_tmax,
    "autoimmune_bcell_depletion_onset": depletion_onset,
    "stein2019_multiphasic_kinetics": stein_kinetics,
    "healthy_bcell_counts": healthy_counts,
    "bcell_turnover": bcell_turnover,
    "ocrelizumab_pk": ocrelizumab_pk,
    "ocrelizumab_depletion_onset": ocrelizumab_depletion_onset,
    "ocrelizumab_repletion": ocrelizumab_repletion,
    "ofatumumab_depletion": ofatumumab_depletion,
    "zuma1_crs_icans": zuma1_toxicity,
    "autoimmune_vs_cancer_toxicity": autoimmune_vs_cancer,
    "bcma_cart_pms": bcma_cart_pms,
    "bcma_cart_igg_recovery": bcma_cart_igg_recovery,
    "opera_arr": opera_arr,
    "opera_gd_lesions": opera_gd_lesions,
    "opera_cdp12": opera_cdp12,
    "ocrelizumab_infusion_reactions": opera_irr,
    "ocrelizumab_igg": ocrelizumab_igg,
    "cd19_cart_igg": cd19_cart_igg,
    "cd19_cart_sle_vaccine_titres": sle_vaccine_titres,
    "adapt_efgartigimod_igg": efgartigimod_igg,
    "inebilizumab_pk": inebilizumab_pk,
    "inebilizumab_bcells": inebilizumab_bcells,
    "n_momentum_aqp4_igg": n_momentum_aqp4_igg,
    "n_momentum_attacks": n_momentum_attacks,
    "ct103a_nmosd": ct103a_nmosd,
    "adapt_mg": adapt_mg,
    "adapt_anti_achr": adapt_anti_achr,
    "descartes08_mg": descartes08_mg,
    "kysa6_mg": kysa6_mg,
    "champion_mg": champion_mg,
    "regain_mg": regain_mg,
    "musk_rituximab": musk_rituximab,
    "muller2024_autoimmune_toxicity": muller2024_toxicity,
    "descartes08_mg_safety": descartes08_safety,
    "zuma1_cart_peak": zuma1_cart_peak,
    "axicel_bcell_recovery": axicel_bcell_recovery,
    "ytb323_sle_kinetics": ytb323_kinetics,
    "kymriah_ball_spread": kymriah_ball_spread,
    "tisacel_dlbcl_vs_ball_expansion": tisacel_dlbcl_vs_ball,
    "transcend_liso_cel": transcend_liso_cel,
    "lymphoma_crs_onset": crs_onset_lymphoma,
    "lbcl_tisacel_axicel_expansion": lbcl_tisacel_axicel_expansion,
    "lbcl_axicel_vs_tisacel_crs": lbcl_axicel_vs_tisacel_crs,
    "ytb323_sle_crs": ytb323_crs,
    "kysa1_crs": kysa1_crs,
    "kyv101_autoimmune_safety": kyv101_autoimmune_safety,
}


# Targets about one CAR-T product in one setting (its kinetics, B-cell course and toxicity), with a short label
# for the report's figure of products against published data (cartsim.outputs.product_checks)
PRODUCT_TARGETS = {
    "autoimmune_cart_tmax": "MB-CART19.1, SLE (Erlangen): CAR-T peak day",
    "mackensen2022_bcell_reappearance": "MB-CART19.1, SLE (Mackensen 2022): day B cells back",
    "mackensen2022_crs": "MB-CART19.1, SLE (Mackensen 2022): CRS",
    "mackensen2022_icans": "MB-CART19.1, SLE (Mackensen 2022): ICANS",
    "muller2024_autoimmune_toxicity": "MB-CART19.1, SLE+ (Mueller 2024)",
    "ytb323_sle_kinetics": "4-1BB CD19 at 12.5e6, SLE (YTB323)",
    "ytb323_sle_crs": "4-1BB CD19 at 12.5e6, SLE (YTB323): CRS",
    "stein2019_multiphasic_kinetics": "tisa-cel, B-ALL (Stein 2019)",
    "kymriah_ball_spread": "tisa-cel, B-ALL (Kymriah label): spread",
    "tisacel_dlbcl_vs_ball_expansion": "tisa-cel, DLBCL (JULIET) vs B-ALL",
    "transcend_liso_cel": "liso-cel, lymphoma (TRANSCEND)",
    "lymphoma_crs_onset": "CAR-T in lymphoma: day CRS starts",
    "lbcl_tisacel_axicel_expansion": "tisa-cel vs axi-cel, lymphoma: peak",
    "lbcl_axicel_vs_tisacel_crs": "axi-cel vs tisa-cel, lymphoma (Spain)",
    "autoimmune_vs_cancer_toxicity": "MB-CART19.1, lymphoma vs SLE",
    "zuma1_cart_peak": "axi-cel, lymphoma (ZUMA-1): CAR-T peak (cells/µL)",
    "zuma1_crs_icans": "axi-cel, lymphoma (ZUMA-1)",
    "axicel_bcell_recovery": "axi-cel, lymphoma: B cells",
    "ct103a_nmosd": "eque-cel, NMOSD (CT103A)",
    "bcma_cart_pms": "eque-cel, progressive MS",
    "bcma_cart_igg_recovery": "anti-BCMA CAR-T (myeloma; run as eque-cel): IgG",
    "descartes08_mg_safety": "Descartes-08, MG (MG-001)",
    "kysa1_crs": "KYV-101, lupus nephritis (KYSA-1)",
    "kyv101_autoimmune_safety": "KYV-101, autoimmune (first 30)",
    "kysa6_mg": "KYV-101, MG (KYSA-6)",
}


# Checks whose observed value a calibration objective uses (bench/calibrate*.py, each script's TARGETS or
# CHECKS_FITTED; tests/test_validate.py holds this set equal to theirs); the others are predictions.
CALIBRATED = {
    # bench/calibrate.py: CAR-T kinetics and B-cell recovery
    ("mackensen2022_bcell_reappearance", "pop_mean"), ("mackensen2022_bcell_reappearance", "pop_sd"),
    ("autoimmune_bcell_depletion_onset", "pop_fraction_below_1_per_uL_at_day_7"), ("autoimmune_cart_tmax", "pop_median"),
    ("stein2019_multiphasic_kinetics", "typical_tmax_day"),
    ("stein2019_multiphasic_kinetics", "typical_contraction_halflife_day"),
    ("stein2019_multiphasic_kinetics", "typical_persistence_halflife_day"), ("zuma1_cart_peak", "pop_median"),
    ("autoimmune_vs_cancer_toxicity", "pop_median_cart_peak_ratio_lymphoma_to_sle"),
    ("ytb323_sle_kinetics", "pop_median_persistence"),   # and bench/calibrate_anti_car.py (the same objective)
    ("lbcl_tisacel_axicel_expansion", "pop_median_cart_peak_ratio_tisacel_to_axicel"),
    ("transcend_liso_cel", "pop_median_tmax"),
    # bench/calibrate_crs.py: CRS and ICANS across products, one rule for all (Mackensen's 5 are among Mueller's 15)
    ("mackensen2022_crs", "pop_fraction_any"),
    ("zuma1_crs_icans", "pop_crs_any"), ("zuma1_crs_icans", "pop_crs_grade3plus"),
    ("zuma1_crs_icans", "pop_icans_any"), ("zuma1_crs_icans", "pop_icans_grade3plus"),
    ("muller2024_autoimmune_toxicity", "pop_crs_any"), ("muller2024_autoimmune_toxicity", "pop_crs_grade2plus"),
    ("muller2024_autoimmune_toxicity", "pop_icans_any"), ("ct103a_nmosd", "pop_crs_any"),
    ("ct103a_nmosd", "pop_crs_grade3plus"), ("descartes08_mg_safety", "pop_crs_any"),
    ("descartes08_mg_safety", "pop_icans_any"), ("kysa1_crs", "pop_crs_any"), ("kysa1_crs", "pop_crs_grade2plus"),
    ("kyv101_autoimmune_safety", "pop_crs_grade3plus"), ("kyv101_autoimmune_safety", "pop_icans_any"),
    # bench/calibrate_ocrelizumab.py, bench/calibrate_ms.py
    ("ocrelizumab_repletion", "pop_median"), ("opera_arr", "pop_ocrelizumab"),
    ("opera_gd_lesions", "pop_ocrelizumab"), ("opera_cdp12", "pop_interferon"),
    # bench/calibrate_irr.py, bench/calibrate_igg.py
    ("ocrelizumab_infusion_reactions", "pop_opera"), ("ocrelizumab_igg", "typical_year_1"),
    ("ocrelizumab_igg", "typical_year_5"), ("cd19_cart_igg", "typical_total_igg_month_9"),
    # bench/calibrate_plasma.py
    ("bcma_cart_igg_recovery", "pop_fraction_igg_recovered_day_365"),
    # bench/calibrate_fcrn.py
    ("adapt_efgartigimod_igg", "typical_igg_max_reduction"),
    # bench/calibrate_autoimmune.py
    ("inebilizumab_bcells", "pop_fraction_at_most_4_per_uL_week_28"),
    ("n_momentum_aqp4_igg", "pop_fraction_2fold_fall_day_197"), ("n_momentum_attacks", "pop_attack_free_placebo"),
    ("n_momentum_attacks", "pop_hazard_ratio"), ("adapt_mg", "pop_mg_adl_responders_efgartigimod"),
    ("adapt_mg", "pop_mg_adl_responders_placebo"), ("adapt_mg", "pop_qmg_responders_placebo"),
    ("adapt_mg", "pop_qmg_responders_efgartigimod"), ("adapt_mg", "pop_mg_adl_improved_6_efgartigimod"),
    ("adapt_mg", "pop_mg_adl_improved_6_placebo"), ("adapt_mg", "pop_mg_adl_mse_efgartigimod"),
    ("adapt_mg", "pop_mg_adl_mse_placebo"),
    ("champion_mg", "pop_mg_adl_change_week_24_placebo"), ("kysa6_mg", "pop_mg_adl_change_week_24"),
    # bench/calibrate_lymphoma.py
    ("axicel_bcell_recovery", "pop_fraction_detectable_day_365"),
    # bench/calibrate_complement.py
    ("champion_mg", "pop_mg_adl_difference_week_26"), ("regain_mg", "pop_mse_week_26_eculizumab"),
    # bench/calibrate_spread.py
    ("kymriah_ball_spread", "pop_log_sd_cmax")}


def _accept_window(target: dict, metric: str) -> list[float]:
    accept = target["accept"]
    key = metric if metric in accept else metric.replace("_day", "")
    window = accept[key]
    if isinstance(window, bool):       # a qualitative direction: the check's value is 1 (true) or 0
        return [float(window), float(window)]
    return [float(v) for v in window]


def run_checks(ids: list[str] | None = None) -> list[Check]:
    out = []
    for tid in ids or list(CHECKS):
        target = targets()[tid]
        for metric, value in CHECKS[tid]().items():
            lo, hi = _accept_window(target, metric)
            ok = bool(np.isfinite(value) and lo <= value <= hi)
            out.append(Check(tid, metric, round(float(value), 6), [lo, hi], ok, (tid, metric) in CALIBRATED))
    return out
