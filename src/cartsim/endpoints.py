"""Per-patient endpoints, named as in the endpoint dictionary (reference/endpoints.md).

Every function takes sampled trajectories of shape (patients, times) and
returns one value per patient. Time-to-event endpoints return the event day
and a censoring flag (True = no event by the horizon, value = horizon).
A return (B-cell reappearance and repletion, autoreactive cells coming back)
applies only to a patient whose count fell below the limit first, and the
course of CAR-T cells (peak day, persistence) only to a patient in whom they
were detected: for the others the day is NaN and not censored, and an arm
reports them as ``n_not_applicable`` instead of as returns on the day after
their lowest value, or CAR-T cells persisting until day 0.
Day 0 is the CAR-T infusion; only days >= 0 count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cartsim import endpoint_dictionary as dictionary
from cartsim import mg_outcomes, ms_outcomes, nmosd_outcomes
from cartsim.ms_outcomes import MRI_INTERVAL_WEEKS
from cartsim.engine import Solution
from cartsim.model.parameters import ParameterTable
from cartsim.population import INFUSION_STREAM, Population

REAPPEARANCE_LIMIT = dictionary.B_DETECTION.value       # cells/uL, flow-cytometry detection limit
REPLETION_LIMIT = dictionary.B_LOWER_NORMAL.value        # cells/uL, lower limit of normal
CART_DETECTION_LIMIT = dictionary.CART_DETECTION.value   # cells/uL, about the qPCR limit
label = dictionary.label                                 # the human name of an endpoint

COLUMNS = ("b_blood_per_uL", "naive_fraction_blood", "car_blood_per_uL", "il6_signal", "icans_signal",
           "igg", "autoantibody", "toci_central", "cns_plasma_cells", "intrathecal_igg", "relapse_cum", "pira_cum",
           "gd_active", "autoreactive_level", "attack_cum", "mg_adl", "qmg")
AUTOREACTIVE_RETURN = dictionary.AUTOREACTIVE_RETURN.value   # autoreactive memory B cells back to 10% of baseline
HYPOGAMMA_G_PER_L = dictionary.HYPOGAMMA.value               # total IgG below 4 g/L: hypogammaglobulinaemia
MRI_INTERVAL_DAYS = 7.0 * MRI_INTERVAL_WEEKS                 # scheduled MRI every 24 weeks unless configured


def _after_nadir(times: np.ndarray, b: np.ndarray, limit: np.ndarray | float,
                 start: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """First time after the nadir (from ``start`` on) at which ``b`` reaches ``limit`` (per patient), and censoring.

    A return needs a fall first: where ``b`` never went below ``limit`` from ``start`` on, the endpoint does not
    apply (time NaN, not censored), instead of counting the day after the lowest value as a return.
    """
    post = times >= start
    bt, tt = b[:, post], times[post]
    lim = np.asarray(limit)[:, None] if np.ndim(limit) else limit
    nadir_idx = np.argmin(bt, axis=1)
    reached = bt >= lim
    fell = ~reached.all(axis=1)
    reached &= np.arange(tt.size)[None, :] > nadir_idx[:, None]
    has = reached.any(axis=1)
    first = np.where(has, np.argmax(reached, axis=1), tt.size - 1)
    day = np.where(has, tt[first], tt[-1])
    return np.where(fell, day, np.nan), fell & ~has


def first_reaching(times: np.ndarray, signal: np.ndarray, limit: float) -> np.ndarray:
    """First time at which ``signal`` (patients x times) reaches ``limit``, interpolated linearly between the output
    times around the first one at or above it (so it does not move by a whole output step between solvers); the
    first output time where the signal starts there; NaN where it never reaches it."""
    hit = signal >= limit
    i = np.argmax(hit, axis=1)
    j = np.maximum(i - 1, 0)
    rows = np.arange(signal.shape[0])
    below, above = signal[rows, j], signal[rows, i]
    rise = np.where(above > below, above - below, 1.0)
    frac = np.where(i > 0, np.clip((limit - below) / rise, 0.0, 1.0), 0.0)
    return np.where(hit.any(axis=1), times[j] + frac * (times[i] - times[j]), np.nan)


def grade(peak: np.ndarray, thresholds: list[float]) -> np.ndarray:
    """ASTCT grade 0-4 from the peak of a signal and the grade thresholds."""
    return np.sum(peak[:, None] >= np.asarray(thresholds)[None, :], axis=1)


def persistence_halflives(times: np.ndarray, car: np.ndarray, tmax: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Contraction half-life (days tmax+3..tmax+14) and persistence half-life (days 180..365) of CAR-T."""
    def slope(t_a: np.ndarray, t_b: np.ndarray) -> np.ndarray:
        ia = np.clip(np.searchsorted(times, t_a), 0, times.size - 1)
        ib = np.clip(np.searchsorted(times, t_b), 0, times.size - 1)
        rows = np.arange(car.shape[0])
        ya, yb = car[rows, ia], car[rows, ib]
        with np.errstate(divide="ignore", invalid="ignore"):
            k = (np.log(ya) - np.log(yb)) / (times[ib] - times[ia])
            return np.where(k > 0, np.log(2) / k, np.inf)
    return slope(tmax + 3, tmax + 14), slope(np.full_like(tmax, 180.0), np.full_like(tmax, 365.0))


def _fraction_on(t: np.ndarray, values: np.ndarray, day: float) -> np.ndarray:
    """``values`` on ``day`` as a fraction of day 0 (NaN if the horizon ends before)."""
    if day > t[-1]:
        return np.full(values.shape[0], np.nan)
    i0 = np.searchsorted(t, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.array([np.interp(day, t, v) for v in values]) / values[:, i0]


def _from_day0(sol: Solution, population: Population, *columns: str
               ) -> tuple[np.ndarray, list[np.ndarray], list[np.random.Generator]]:
    """The output times from day 0 on, ``columns`` over them, and each patient's clinical-event stream."""
    post = sol.times >= 0
    return (sol.times[post], [sol.column(c)[:, post] for c in columns],
            [population.event_rng(k) for k in range(len(population))])


def ms_events(sol: Solution, table: ParameterTable, population: Population,
              mri_interval_days: float = MRI_INTERVAL_DAYS) -> dict[str, np.ndarray]:
    """Relapse, MRI and disability endpoints (``cartsim.ms_outcomes``), from day 0 to the horizon."""
    t, (relapses, pira, gd), rngs = _from_day0(sol, population, "relapse_cum", "pira_cum", "gd_active")
    x = ms_outcomes.Intensities(t, relapses, pira, gd)
    edss0 = population.covariates["edss"].to_numpy(float)
    return ms_outcomes.draw(x, edss0, rngs, table.value("ms_raw_probability"), float(t[-1]), mri_interval_days)


def nmosd_events(sol: Solution, table: ParameterTable, population: Population) -> dict[str, np.ndarray]:
    """NMOSD attack and disability endpoints (``cartsim.nmosd_outcomes``), from day 0 to the horizon."""
    t, (attacks,), rngs = _from_day0(sol, population, "attack_cum")
    edss0 = population.covariates["edss"].to_numpy(float)
    return nmosd_outcomes.draw(t, attacks, edss0, rngs, table.value("nmosd_attack_edss"), float(t[-1]))


def mg_events(sol: Solution, table: ParameterTable, population: Population) -> dict[str, np.ndarray]:
    """MG-ADL and QMG endpoints at weekly visits (``cartsim.mg_outcomes``), from day 0 to the horizon."""
    t, (adl, qmg), rngs = _from_day0(sol, population, "mg_adl", "qmg")
    return mg_outcomes.draw(t, adl, qmg, rngs, table.value("mg_placebo_mean"), table.value("mg_placebo_sd"),
                            float(t[-1]), table.value("mg_qmg_placebo_share"), table.value("mg_visit_sd"))


def infusion_reactions(population: Population, risks: list[float]) -> np.ndarray:
    """Whether each patient had an infusion-related reaction, one draw per infusion from the patient's own stream."""
    return np.array([bool((population.event_rng(k, INFUSION_STREAM).random(len(risks)) < np.asarray(risks)).any())
                     for k in range(len(population))])


# endpoints of the CNS compartment: a trial reports them only in a disease that lives in the CNS (Disease.cns)
CNS_ENDPOINTS = ("cns_plasma_cell_fraction_day_90", "intrathecal_igg_fraction_day_180")


def compute(sol: Solution, table: ParameterTable, last_dose_day: float | None = None,
            population: Population | None = None, mri_interval_days: float = MRI_INTERVAL_DAYS,
            infusion_risks: list[float] | None = None) -> pd.DataFrame:
    """One row per patient with every endpoint the model can compute.

    ``last_dose_day``: the last dose of a repeated antibody regimen, from which
    ``bcell_repletion_after_last_dose_week`` counts (NaN without one). ``population``: the
    patients (their covariates and random streams); the MS endpoints (relapses, lesions,
    disability) are computed for patients with an MS course. ``infusion_risks``: the probability of an
    infusion-related reaction at each antibody infusion (``Scenario.infusion_reaction_risks``); without it
    ``infusion_reaction_any`` does not apply (NaN).
    """
    t = sol.times
    post = t >= 0
    b = sol.column("b_blood_per_uL")
    car = sol.column("car_blood_per_uL")
    out: dict[str, np.ndarray] = {}
    out["bcell_baseline_per_uL"] = b[:, 0]
    out["bcell_nadir_per_uL"] = b[:, post].min(axis=1)
    day, cens = _after_nadir(t, b, REAPPEARANCE_LIMIT)
    out["bcell_reappearance_day"], out["bcell_reappearance_censored"] = day, cens
    rows = np.arange(b.shape[0])
    idx = np.clip(np.searchsorted(t, np.nan_to_num(day)), 0, t.size - 1)
    out["naive_fraction_at_reappearance"] = np.where(np.isnan(day) | cens, np.nan,
                                                     sol.column("naive_fraction_blood")[rows, idx])
    repl = np.minimum(b[:, 0], REPLETION_LIMIT)
    out["bcell_repletion_day"], out["bcell_repletion_censored"] = _after_nadir(t, b, repl)
    if last_dose_day is not None and last_dose_day < t[-1]:
        day, cens = _after_nadir(t, b, repl, start=last_dose_day)
        out["bcell_repletion_after_last_dose_week"] = (day - last_dose_day) / 7.0
        out["bcell_repletion_after_last_dose_censored"] = cens
    else:
        out["bcell_repletion_after_last_dose_week"] = np.full(b.shape[0], np.nan)
        out["bcell_repletion_after_last_dose_censored"] = np.zeros(b.shape[0], bool)
    carp = car[:, post]
    out["cart_peak_per_uL"] = carp.max(axis=1)
    above = carp >= CART_DETECTION_LIMIT
    seen = above.any(axis=1)   # the course of CAR-T cells (peak day, persistence) needs them detected at all
    out["cart_tmax_day"] = np.where(seen, t[post][np.argmax(carp, axis=1)], np.nan)
    out["cart_persistence_day"] = np.where(seen, t[post][carp.shape[1] - 1 - np.argmax(above[:, ::-1], axis=1)],
                                           np.nan)
    out["cart_persistence_censored"] = above[:, -1]
    crs_thr = [table.value(f"crs_il6_grade{g}") for g in range(1, 5)]
    icans_thr = [table.value(f"icans_grade{g}") for g in range(1, 5)]
    fired = np.isfinite(sol.trigger_times) if sol.trigger_times.size else np.zeros((b.shape[0], 1, 1), bool)
    out["tocilizumab_given"] = fired[:, 0].any(axis=1)        # the rescue is always the first trigger
    crs = grade(sol.column("il6_signal")[:, post].max(axis=1), crs_thr)
    # tocilizumab is given the moment the signal reaches grade 2 and cuts it at once: a crossing that short
    # can fall between output times, but the rescue dose marks it
    out["crs_max_grade"] = np.where(out["tocilizumab_given"], np.maximum(crs, 2), crs)
    # where no output time shows the grade-1 crossing (a rescue can cut the signal between two of them), the first
    # rescue marks it
    rescue = (np.where(fired[:, 0], sol.trigger_times[:, 0], np.inf).min(axis=1) if sol.trigger_times.size
              else np.full(b.shape[0], np.inf))
    onset = first_reaching(t[post], sol.column("il6_signal")[:, post], crs_thr[0])
    out["crs_onset_day"] = np.where(np.isnan(onset) & np.isfinite(rescue), rescue, onset)
    out["icans_max_grade"] = grade(sol.column("icans_signal")[:, post].max(axis=1), icans_thr)
    out["infusion_reaction_any"] = (infusion_reactions(population, infusion_risks).astype(float)
                                    if population is not None and infusion_risks is not None
                                    else np.full(b.shape[0], np.nan))
    if fired.shape[1] > 1:                                       # re-treatment: day of the second infusion
        retreated = fired[:, 1, 0]
        out["retreatment_day"] = np.where(retreated, sol.trigger_times[:, 1, 0], t[-1])
        out["retreatment_censored"] = ~retreated
    else:                                                        # not applicable (no re-treatment rule)
        out["retreatment_day"] = np.full(b.shape[0], np.nan)
        out["retreatment_censored"] = np.zeros(b.shape[0], bool)
    igg = sol.column("igg")
    out["igg_nadir_fraction"] = igg[:, post].min(axis=1) / igg[:, 0]
    out["igg_below_4_g_per_L"] = igg[:, post].min(axis=1) < HYPOGAMMA_G_PER_L
    aab = sol.column("autoantibody")
    for day in (90, 180, 365):      # share of the level before any treatment (lymphodepletion included)
        i = np.searchsorted(t, float(day))
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"autoantibody_fraction_day_{day}"] = aab[:, i] / aab[:, 0] if i < t.size else np.full(b.shape[0],
                                                                                                       np.nan)
    out["autoreactive_return_day"], out["autoreactive_return_censored"] = _after_nadir(
        t, sol.column("autoreactive_level"), AUTOREACTIVE_RETURN)
    out["cns_plasma_cell_fraction_day_90"] = _fraction_on(t, sol.column("cns_plasma_cells"), 90.0)
    out["intrathecal_igg_fraction_day_180"] = _fraction_on(t, sol.column("intrathecal_igg"), 180.0)
    if population is not None and "ms_course" in population.covariates:
        out |= ms_events(sol, table, population, mri_interval_days)
    if population is not None and "nmosd_attack_rate" in population.parameter_names \
            and (population.column("nmosd_attack_rate") > 0).any():
        out |= nmosd_events(sol, table, population)
    if population is not None and "mg_adl0" in population.parameter_names and (population.column("mg_adl0") > 0).any():
        out |= mg_events(sol, table, population)
    df = pd.DataFrame(out)
    df = df.astype({c: "boolean" for c in df.columns if df[c].dtype == bool})
    df = df.astype({c: "Int64" for c in ("crs_max_grade", "icans_max_grade")})
    df.loc[sol.status != 0, :] = pd.NA   # failed patients have no endpoints (see failures)
    return df
