"""Plain-language summaries and answers, computed from the simulated numbers.

Every sentence says what the model computed for simulated patients; nothing here predicts
what happens to a real patient. Where the model cannot answer, the text says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cartsim.disease import diseases
from cartsim.endpoints import CART_DETECTION_LIMIT, REAPPEARANCE_LIMIT
from cartsim.therapy import antibodies
from cartsim.web.arms import Arm

MONTH = 365.25 / 12
DISCLAIMER = ("cartsim is a research simulation of a mathematical model, not medical advice and not a prediction "
              "for any patient. CAR T-cell therapy for multiple sclerosis and other autoimmune diseases is "
              "investigational: it is given only within clinical trials.")
MODEL_SCOPE = ("The model simulates blood and tissue B cells, plasma cells, antibodies, CAR-T cells and the "
               "cytokine release behind CRS and ICANS. It does not simulate infections, prolonged low blood "
               "counts, long-term effects of chemotherapy, or secondary cancers.")
MS_OUTCOMES = ("annualized_relapse_rate", "gd_lesions_per_scan", "cdp12_fraction", "cdp24_fraction", "edss_change")
DISEASE_OUTCOMES = ("annualized_attack_rate", "mg_adl_responder")     # NMOSD and myasthenia gravis
MS_COURSE_NAMES = {"rrms": "relapsing-remitting multiple sclerosis",
                   "spms": "secondary progressive multiple sclerosis",
                   "ppms": "primary progressive multiple sclerosis"}
CRS_WORDS = "cytokine release syndrome (CRS: fever and low blood pressure from immune activation)"
ICANS_WORDS = ("immune effector cell-associated neurotoxicity syndrome (ICANS: confusion, trouble speaking, "
               "from the same immune activation reaching the brain)")
IRR_WORDS = ("infusion-related reactions (fever, chills, rash, itching or throat irritation during or soon after "
             "an infusion)")
GLOSSARY = ("CRS is cytokine release syndrome: fever and low blood pressure from immune activation. ICANS is immune "
            "effector cell-associated neurotoxicity syndrome: confusion, trouble speaking, from the same immune "
            "activation reaching the brain. Infusion-related reactions: fever, chills, rash, itching or throat "
            "irritation during or soon after an antibody infusion.")


@dataclass(frozen=True)
class Answer:
    id: str
    question: str
    answer: str


# ---- numbers into words -------------------------------------------------------------------------

def _pct(x: float | None) -> str:
    """A share in whole percent; one that rounds to 0% but is not 0 reads '<1%' (not none)."""
    if x is None:
        return "n/a"
    return "<1%" if 0 < x < 0.005 else f"{100 * x:.0f}%"


def _num(x: float) -> str:
    """A number rounded for people: two significant digits, whole numbers from 10 on (1,200 not 1.2e+03)."""
    if not np.isfinite(x):
        return "n/a"
    if abs(x) >= 10:
        digits = max(int(math.floor(math.log10(abs(x)))) - 1, 0)
        return f"{round(x, -digits):,.0f}"
    return f"{x:.2g}"


def _plural(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def _range_pct(lo: float | None, hi: float | None) -> str:
    """'between 60% and 75%', or 'about 68%' where both ends round to the same percent."""
    return f"about {_pct(lo)}" if _pct(lo) == _pct(hi) else f"between {_pct(lo)} and {_pct(hi)}"


def _month(day: float) -> float:
    return day / MONTH


def _months_between(lo: float, hi: float) -> str:
    a, b = math.floor(_month(lo)), math.ceil(_month(hi))
    a = max(a, 0)
    if b <= a:
        b = a + 1
    return f"between month {a} and month {b}"


def _about_months(day: float) -> str:
    m = _month(day)
    return f"about {m:.0f} month{'s' if round(m) != 1 else ''}" if m >= 1.5 else f"about {day:.0f} days"


def disease_name(name: str, ms_course: str | None = None) -> str:
    """The disease in words; for MS the course (the disease's default course when none is given)."""
    d = diseases().get(name)
    if d is None:
        return name
    course = ms_course or getattr(d, "default_course", None)
    if name == "ms" and course in MS_COURSE_NAMES:
        return MS_COURSE_NAMES[course]
    return d.description


def _col(arm: Arm, name: str) -> np.ndarray:
    return arm.patients[name].to_numpy(float, na_value=np.nan) if name in arm.patients else np.array([])


def _flag(arm: Arm, name: str) -> np.ndarray:
    return arm.patients[name].to_numpy(bool, na_value=True) if name in arm.patients else np.array([], bool)


def _ep(arm: Arm, name: str, key: str) -> float | None:
    v = arm.endpoints.get(name, {}).get(key)
    return v if isinstance(v, (int, float)) else None


def _n_ok(arm: Arm) -> int:
    return len(arm.patients)


# ---- per-arm sentences --------------------------------------------------------------------------------

def dosing_sentence(arm: Arm) -> str:
    cart = [d for d in arm.doses if d.kind == "car-t"]
    ld = [d for d in arm.doses if d.kind == "lymphodepletion"]
    other = [d for d in arm.doses if d.kind == "dose"]
    if cart:
        pre = (f" after lymphodepleting chemotherapy on days {ld[0].day:g} to {ld[-1].day:g}" if len(ld) > 1 else
               f" after lymphodepleting chemotherapy on day {ld[0].day:g}" if ld else "")
        if len(cart) == 1:
            return f"{arm.therapy}: one infusion of CAR-T cells on day {cart[0].day:g}{pre}."
        days = ", ".join(f"{d.day:g}" for d in cart)
        return (f"{arm.therapy}: {len(cart)} infusions of CAR-T cells (days {days})"
                + (pre if pre else ", without lymphodepleting chemotherapy") + ".")
    if other:
        days = ", ".join(f"{d.day:g}" for d in other)
        regimen = antibodies()[arm.therapy].regimen if arm.therapy in antibodies() else None
        last = regimen.last_day if regimen is not None else None
        tail = ("that is the whole regimen" if last is not None and last <= arm.days[-1]
                else "dosing goes on for as long as treatment continues")
        return (f"{arm.therapy}: {len(other)} dose{'s' if len(other) != 1 else ''} within the {arm.days[-1]:.0f} "
                f"simulated days (days {days}); {tail}.")
    return f"{arm.therapy}: no treatment."


def bcell_sentence(arm: Arm) -> str | None:
    n = _n_ok(arm)
    if n == 0:
        return None
    nadir, base = _col(arm, "bcell_nadir_per_uL"), _col(arm, "bcell_baseline_per_uL")
    depleted = nadir < REAPPEARANCE_LIMIT
    if np.nanmedian(nadir) > 0.5 * np.nanmedian(base):
        return (f"{arm.therapy}: blood B cells stayed near their starting level (median "
                f"{np.nanmedian(base):.0f} cells/µL) in the simulated patients.")
    low = float(np.nanmedian(nadir))
    low_text = "almost none (under 0.01 cells/µL)" if low < 0.01 else f"{low:.2g} cells/µL"
    text = (f"{arm.therapy}: blood B cells fell from a median {np.nanmedian(base):.0f} cells/µL to a median low of "
            f"{low_text}, below the detection limit of {REAPPEARANCE_LIMIT:g} cell/µL in {int(depleted.sum())} of "
            f"{n} simulated patients.")
    day, cens = _col(arm, "bcell_reappearance_day"), _flag(arm, "bcell_reappearance_censored")
    back = depleted & ~cens
    if back.any():
        lo, hi = np.percentile(day[back], [5, 95])
        within = int((back & (day >= lo - 1e-9) & (day <= hi + 1e-9)).sum())
        text += f" In {within} of {n} they returned {_months_between(lo, hi)}"
        naive = _col(arm, "naive_fraction_at_reappearance")[back]
        if np.isfinite(naive).any():
            share = float(np.nanmedian(naive))
            text += (f", as naive cells (median naive share {_pct(share)})" if share >= 0.5 else
                     f", mostly as memory cells (median naive share {_pct(share)})")
        text += "."
    still = int((depleted & cens).sum())
    if still:
        text += f" In {still} of {n} they had not returned by day {arm.days[-1]:.0f}, the end of the simulation."
    return text


def cart_sentence(arm: Arm) -> str | None:
    if arm.kind != "car-t" or _n_ok(arm) == 0:
        return None
    tmax, peak = _ep(arm, "cart_tmax_day", "median"), _ep(arm, "cart_peak_per_uL", "median")
    pers, cens = _col(arm, "cart_persistence_day"), _flag(arm, "cart_persistence_censored")
    if tmax is None or peak is None:
        return f"{arm.therapy}: no CAR-T cells were detectable in blood."
    text = f"{arm.therapy}: CAR-T cells in blood peaked around day {tmax:.0f} at a median {_num(peak)} cells/µL"
    if (~cens).any():
        text += (f"; they fell below the detection limit ({CART_DETECTION_LIMIT:g} cells/µL) after a median of "
                 f"{_about_months(float(np.median(pers[~cens])))}")
    if cens.any():
        text += f"; in {int(cens.sum())} of {_n_ok(arm)} they were still detectable on day {arm.days[-1]:.0f}"
    return text + "."


def igg_sentence(arm: Arm) -> str | None:
    x = _ep(arm, "igg_nadir_fraction", "median")
    if x is None or arm.kind == "untreated":
        return None
    lo, hi = _ep(arm, "igg_nadir_fraction", "p05"), _ep(arm, "igg_nadir_fraction", "p95")
    if _pct(lo) == _pct(1.0):      # a drug that leaves IgG alone (a complement inhibitor): it did not fall
        return f"{arm.therapy}: total IgG stayed at its starting level in the simulated patients."
    spread = (f", nearly the same in every simulated patient (90% of them at {_range_pct(lo, hi)})"
              if _pct(lo) == _pct(hi) else f" (90% of simulated patients {_range_pct(lo, hi)})")
    return f"{arm.therapy}: total IgG fell to a median low of {_pct(x)} of its starting level{spread}."


def infusion_reaction(arm: Arm) -> dict | None:
    """The arm's ``infusion_reaction_any`` entry where it applies (a value), else None (no data: not 0%)."""
    e = arm.endpoints.get("infusion_reaction_any")
    return e if isinstance(e, dict) and isinstance(e.get("value"), (int, float)) else None


def irr_sentence(arm: Arm) -> str | None:
    e = infusion_reaction(arm)
    if e is None:
        return None
    ci = e.get("ci95")
    ci_text = f" (95% CI {_pct(ci[0])} to {_pct(ci[1])})" if ci and None not in ci else ""
    return (f"{arm.therapy}: {IRR_WORDS} in {_pct(e['value'])} of simulated patients{ci_text}, at least once in "
            f"the {arm.days[-1]:.0f} days.")


def safety_sentence(arm: Arm, lymphoma: Arm | None) -> str | None:
    if arm.kind != "car-t":
        return irr_sentence(arm)
    crs, icans = arm.endpoints.get("crs_max_grade", {}), arm.endpoints.get("icans_max_grade", {})
    text = (f"{arm.therapy} in {disease_name(arm.disease, arm.ms_course)}: {CRS_WORDS} of any grade in "
            f"{_pct(crs.get('fraction_any'))} and grade 2 or higher in {_pct(crs.get('fraction_grade2plus'))} of "
            f"simulated patients; {ICANS_WORDS} in {_pct(icans.get('fraction_any'))}.")
    if lymphoma is not None and lymphoma.disease != arm.disease:
        lc, li = lymphoma.endpoints.get("crs_max_grade", {}), lymphoma.endpoints.get("icans_max_grade", {})
        text += (f" The same product in lymphoma: CRS {_pct(lc.get('fraction_any'))} (grade 2 or higher "
                 f"{_pct(lc.get('fraction_grade2plus'))}), ICANS {_pct(li.get('fraction_any'))}.")
    return text


def arm_summary(arm: Arm, lymphoma: Arm | None) -> list[str]:
    """What the simulation shows for one arm, one sentence per topic."""
    out = [dosing_sentence(arm), bcell_sentence(arm), cart_sentence(arm), igg_sentence(arm),
           autoantibody_sentence(arm), mg_sentence(arm), safety_sentence(arm, lymphoma)]
    if arm.n_failed:
        out.append(f"{arm.therapy}: the simulation of {arm.n_failed} of {arm.n} patients failed; they are left out.")
    return [s for s in out if s]


def comparison_summary(arms: list[Arm]) -> list[str]:
    """Sentences that put the arms side by side."""
    a = arms[0]
    out = [(f"Both arms are the same {a.n} virtual patients with {disease_name(a.disease, a.ms_course)}, "
            f"simulated for {a.days[-1]:.0f} days; bands show the middle 90% of patients, lines the median.")]
    cart = next((x for x in arms if x.kind == "car-t"), None)
    drug = next((x for x in arms if x.kind == "drug"), None)
    if cart is not None and drug is not None:
        k = sum(d.kind == "dose" for d in drug.doses)
        c = sum(d.kind == "car-t" for d in cart.doses)
        out.append(f"{cart.therapy} is {'one infusion' if c == 1 else f'given as {c} infusions'}; {drug.therapy} needed "
                   f"{k} dose{'s' if k != 1 else ''} in the same {drug.days[-1]:.0f} days.")
    for sentence in (relapse_sentence(arms), attack_sentence(arms)):
        if sentence:
            out.append(sentence)
    return out


def attack_sentence(arms: list[Arm]) -> str | None:
    """NMOSD attacks in each arm: the counted rate and the share of patients free of attacks."""
    parts = []
    for x in arms:
        rate, first = _ep(x, "annualized_attack_rate", "value"), x.endpoints.get("first_attack_day", {})
        if rate is None or not isinstance(first.get("n_censored"), int):
            return None
        free = first["n_censored"] / max(1, _n_ok(x))
        parts.append(f"{_num(rate)} with {x.therapy} ({_pct(free)} of patients had none)")
    return f"NMOSD attacks per patient-year counted in the simulation: {' and '.join(parts)}."


def autoantibody_sentence(arm: Arm) -> str | None:
    """The disease's measured autoantibody (AQP4-IgG, anti-AChR, anti-dsDNA) late in the simulation."""
    d = diseases().get(arm.disease)
    if d is None or not d.names_autoantibody or arm.kind == "untreated":
        return None
    for day in (365, 180, 90):
        x = _ep(arm, f"autoantibody_fraction_day_{day}", "median")
        if x is not None:
            return f"{arm.therapy}: {d.autoantibody} on day {day} was a median {_pct(x)} of its starting level."
    return None


def mg_sentence(arm: Arm) -> str | None:
    """Myasthenia gravis: MG-ADL responders and the change of the score."""
    resp = _ep(arm, "mg_adl_responder", "value")
    if resp is None:
        return None
    text = (f"{arm.therapy}: {_pct(resp)} of simulated patients were MG-ADL responders (2 points or more better "
            f"for 4 weeks in a row, on a 0-24 scale of symptoms in daily life)")
    # week 12 for the early effect, week 52 for how long it lasts (a CAR-T's grows; a drug's wears off)
    changes = [(week, _ep(arm, f"mg_adl_change_week_{week}", "mean")) for week in (12, 52)]
    changes = [f"{c:+.1f} points on average by week {week}" for week, c in changes if c is not None]
    if changes:
        text += "; the score changed by " + " and ".join(changes)
    return text + "."


def relapse_sentence(arms: list[Arm]) -> str | None:
    """Relapses in both arms: the counted rate (from the same chance events in the same patients) and the model's
    expected rate, which shows a difference the counts of a small cohort can hide."""
    rates = [_ep(x, "annualized_relapse_rate", "value") for x in arms]
    if len(arms) < 2 or any(r is None for r in rates):
        return None
    counted = " and ".join(f"{_num(r)} with {x.therapy}" for r, x in zip(rates, arms))
    text = f"Relapses per patient-year counted in the simulation: {counted}."
    expected = [x.expected_relapse_rate for x in arms]
    if all(e is not None for e in expected):
        text += (" The model's expected rates, without the chance of who relapses when, are "
                 + " and ".join(f"{e:#.3g}" if _num(expected[0]) == _num(expected[1]) else _num(e)
                                for e in expected) + ".")
        if _num(rates[0]) == _num(rates[1]):
            text += (" Both arms are the same patients with the same chance events, so equal counts mean the two "
                     "therapies gave nearly the same relapse risk in the model over this time.")
    return text


# ---- questions people ask ---------------------------------------------------------------------------

def _reappearance_median(arm: Arm) -> float | None:
    depleted = _col(arm, "bcell_nadir_per_uL") < REAPPEARANCE_LIMIT
    back = depleted & ~_flag(arm, "bcell_reappearance_censored")
    return float(np.median(_col(arm, "bcell_reappearance_day")[back])) if back.any() else None


def _available(cart: Arm | None, short: str = "MS", name: str = "multiple sclerosis") -> str:
    text = (f"No, not as a treatment. CAR T-cell therapy for {name} is investigational: it is given only "
            f"within clinical trials, and whether it works and is safe enough for {short} is not yet known. The "
            "CAR-T products in use outside trials are approved for blood cancers.")
    if cart is not None:
        text += f" {cart.therapy} is simulated here as {cart.description}."
    return text


def _cure(arm: Arm | None, short: str = "MS") -> str:
    text = "Nobody knows, and this simulation cannot tell."
    if arm is None or not any(n in arm.endpoints for n in (*MS_OUTCOMES, *DISEASE_OUTCOMES)):
        text += (" The model simulates the disease's course only for MS, NMOSD and myasthenia gravis; here it "
                 "shows the immune cells and antibodies behind it.")
    if arm is not None:
        reap = _reappearance_median(arm)
        if reap is not None:
            text += (f" In the simulation {arm.therapy} removed blood B cells and they came back after a median of "
                     f"{_about_months(reap)}, as new (naive) cells: the 'immune reset' the idea rests on.")
        cns = _ep(arm, "cns_plasma_cell_fraction_day_90", "median")
        if cns is not None:
            text += f" Plasma cells in the central nervous system were a median {_pct(cns)} of baseline on day 90."
        arr = _ep(arm, "annualized_relapse_rate", "value")
        if isinstance(arr, (int, float)):
            text += f" The model's relapse rate in this arm was {_num(arr)} per patient-year (a model output)."
        aar = _ep(arm, "annualized_attack_rate", "value")
        if isinstance(aar, (int, float)):
            text += f" The model's NMOSD attack rate in this arm was {_num(aar)} per patient-year (a model output)."
        resp = _ep(arm, "mg_adl_responder", "value")
        if isinstance(resp, (int, float)):
            text += f" In the model {_pct(resp)} of patients were MG-ADL responders (a model output)."
    text += (f" Whether a reset stops {short} for good is what the trials are testing; so far few people with "
             f"{short} have been treated, and follow-up is short.")
    return text


def _safer(cart: Arm | None, lymphoma: Arm | None) -> str:
    if cart is None:
        return "Choose a CAR-T therapy to compare its simulated CRS and ICANS with the same product in lymphoma."
    if lymphoma is None:
        return f"For {cart.therapy} the model has no matching cancer to compare with, so it cannot answer this. " + \
            MODEL_SCOPE
    a2, b2 = (_ep(x, "crs_max_grade", "fraction_grade2plus") for x in (cart, lymphoma))
    a1, b1 = (_ep(x, "crs_max_grade", "fraction_any") for x in (cart, lymphoma))
    ia, ib = (_ep(x, "icans_max_grade", "fraction_any") for x in (cart, lymphoma))
    name = disease_name(cart.disease, cart.ms_course)
    text = (f"In the simulation, CRS of grade 2 or higher occurred in {_pct(a2)} of patients with {name} given "
            f"{cart.therapy}, against {_pct(b2)} of patients with lymphoma given the same product, dose and "
            f"lymphodepletion (any CRS: {_pct(a1)} against {_pct(b1)}; ICANS: {_pct(ia)} against {_pct(ib)}).")
    if a1 is not None and b1 is not None and a2 is not None and b2 is not None:
        if a2 <= b2 and a1 < b1:
            text += (" In the model, cytokine release is milder here because there are far fewer target cells "
                     "(B cells rather than a tumour) to activate the CAR-T cells.")
        elif a2 > b2 or a1 > b1:
            text += " Here the model does not show milder cytokine release than in lymphoma."
    return text + " " + MODEL_SCOPE + " Rare harms need far more treated patients than trials have had so far."


def _replace(cart: Arm | None, drug: Arm | None, drug_known: bool, short: str = "MS") -> str:
    text = "Nobody knows yet."
    if not drug_known:
        return text + " Anti-CD20 antibodies such as ocrelizumab (Ocrevus) are not yet part of this model version."
    if cart is None or drug is None:
        return text + " Choose a CAR-T therapy and one of today's antibody treatments to see them side by side."
    k = sum(d.kind == "dose" for d in drug.doses)
    low = _ep(drug, "bcell_nadir_per_uL", "median")
    did = ("kept B cells low with" if low is not None and low < REAPPEARANCE_LIMIT else "was given")
    text += (f" In this simulation {drug.therapy} {did} {k} dose{'s' if k != 1 else ''} in "
             f"{drug.days[-1]:.0f} days, and would need further doses for as long as treatment continues; "
             f"{cart.therapy} was {_infusions_text(cart)}")
    reap = _reappearance_median(cart)
    text += (f", after which B cells came back in a median of {_about_months(reap)}." if reap is not None else ".")
    return text + (f" Whether CAR-T controls {short} as well as years of antibody treatment, and whether its risks "
                   "are worth it, needs trials that compare them directly; none has reported results.")


def _infusions_text(cart: Arm) -> str:
    """'one infusion after lymphodepleting chemotherapy', or '6 infusions without chemotherapy'."""
    n = sum(d.kind == "car-t" for d in cart.doses)
    ld = any(d.kind == "lymphodepletion" for d in cart.doses)
    return (("one infusion" if n == 1 else f"{n} infusions")
            + (" after lymphodepleting chemotherapy" if ld else " without lymphodepleting chemotherapy"))


def _last(cart: Arm | None, drug: Arm | None, short: str = "MS") -> str:
    parts = []
    if cart is not None:
        pers, cens = _col(cart, "cart_persistence_day"), _flag(cart, "cart_persistence_censored")
        reap = _reappearance_median(cart)
        s = f"In the simulation, {cart.therapy} CAR-T cells stayed detectable in blood for a median of "
        s += (_about_months(float(np.median(pers[~cens]))) if (~cens).any() else
              f"more than the {cart.days[-1]:.0f} simulated days")
        s += (f", and B cells were absent for a median of {_about_months(reap)} before new, naive B cells came back."
              if reap is not None else ".")
        parts.append(s + " How long the disease stays quiet after B cells return is not known: early reports in "
                     f"lupus describe remissions that continued after B cells came back; for {short}, follow-up is "
                     "too short to say.")
    if drug is not None:
        weeks = _ep(drug, "bcell_repletion_after_last_dose_week", "median")
        s = f"With {drug.therapy} the effect lasts as long as the doses continue"
        parts.append(s + (f"; in the model B cells recovered a median of {weeks:.0f} weeks after the last dose."
                          if weeks is not None else "."))
    return " ".join(parts) or "Choose a therapy to see how long its simulated effect lasts."


def questions(arms: list[Arm], lymphoma: dict[str, Arm | None], drug_known: bool) -> list[Answer]:
    """The questions people ask about the disease on the page, answered from these simulations where the model can,
    and honestly where not."""
    cart = next((a for a in arms if a.kind == "car-t"), None)
    drug = next((a for a in arms if a.kind == "drug"), None)
    d = diseases().get(arms[0].disease) if arms else None
    short = d.short if d is not None else "MS"
    name = disease_name(arms[0].disease, arms[0].ms_course) if arms and short != "MS" else "multiple sclerosis"
    standard = d.standard if d is not None and d.standard else "the antibody treatments used today"
    return [
        Answer("available", f"Is CAR-T therapy for {short} available?", _available(cart, short, name)),
        Answer("cure", f"Can it cure {short}?", _cure(cart, short)),
        Answer("safety", "Is it safer than in cancer?", _safer(cart, lymphoma.get(cart.therapy) if cart else None)),
        Answer("replace", f"Will it replace {standard}?", _replace(cart, drug, drug_known, short)),
        Answer("duration", "How long would it last?", _last(cart, drug, short)),
    ]
