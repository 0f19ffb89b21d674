"""Myasthenia gravis scores at weekly visits, drawn per patient, and the trial endpoints made from them.

The model (``cartsim.model.mg``) gives each patient's expected MG-ADL and QMG
scores over time. Trials also see patients improve on placebo (expectation,
regression to the mean from a severe entry score): each patient has a lasting
non-drug improvement drawn once from their own random stream, Normal with mean
``mg_placebo_mean`` and SD ``mg_placebo_sd`` MG-ADL points. MG also fluctuates
from week to week: each visit after baseline adds a swing, Normal with SD
``mg_visit_sd`` points, drawn from the same stream after the lasting improvement.
On the QMG both are ``mg_qmg_placebo_share`` times the same share of the score:
the QMG is examined by a clinician, the MG-ADL reported by the patient, and in
ADAPT half as many placebo patients responded on the QMG (14.1%) as on the MG-ADL
(29.7%) although the QMG has twice the points. The score seen at a visit is the
model score less the improvement and the swing, rounded to whole points and kept
within the scale (MG-ADL 0-24, QMG 0-39).

A responder improves by at least 2 MG-ADL points (3 QMG points) at 4 or more
consecutive weekly visits, starting within the first 12 weeks: the ADAPT
responder definition (Howard 2021), whose start window (no later than a week
after the last infusion of a 4-week cycle) is widened so that it applies to
longer schedules (six weekly CAR-T infusions). Within a first cycle (weeks 1-8:
four weekly infusions and five weeks of follow-up, as in ADAPT) a patient may be
6 or more points better at a visit (``mg_adl_improved_6``) or reach minimal
symptom expression, an MG-ADL of 0 or 1 (``mg_adl_mse``).
"""

from __future__ import annotations

import numpy as np

ADL_MAX, QMG_MAX = 24, 39
ADL_RESPONSE, QMG_RESPONSE = 2, 3      # points: a meaningful improvement on each scale
RUN_VISITS = 4                          # consecutive weekly visits
START_WEEKS = 12                        # the run starts at a visit in weeks 1-12
CHANGE_WEEKS = (4, 12, 24, 52)          # MG-ADL change from baseline reported at these weeks
CYCLE_WEEKS = 8                         # a first cycle: visits in weeks 1-8
BIG_IMPROVEMENT = 6                     # points: a large MG-ADL improvement
MSE_MAX = 1                             # minimal symptom expression: MG-ADL 0 or 1


def visit_weeks(horizon: float) -> np.ndarray:
    return np.arange(0, int(np.floor(horizon / 7.0 + 1e-9)) + 1)


def responder(change: np.ndarray, threshold: float) -> bool:
    """Improvement of ``threshold`` points or more (change <= -threshold) at RUN_VISITS consecutive visits
    (``change`` from week 0 on), the first of them within weeks 1..START_WEEKS."""
    better = change <= -threshold
    for start in range(1, min(START_WEEKS, better.size - RUN_VISITS) + 1):
        if better[start:start + RUN_VISITS].all():
            return True
    return False


def draw(times: np.ndarray, adl: np.ndarray, qmg: np.ndarray, rngs: list[np.random.Generator],
         placebo_mean: float, placebo_sd: float, horizon: float, qmg_placebo_share: float,
         visit_sd: float) -> dict[str, np.ndarray]:
    """Per-patient MG endpoints from the model scores (rows) on ``times`` (from day 0)."""
    n = adl.shape[0]
    weeks = visit_weeks(horizon)
    after = weeks > 0
    cycle = after & (weeks <= CYCLE_WEEKS)
    out = {f"{score}_change_week_{w}": np.full(n, np.nan) for score in ("mg_adl", "qmg") for w in CHANGE_WEEKS}
    flags = {name: np.zeros(n, bool) for name in ("mg_adl_responder", "qmg_responder", "mg_adl_improved_6",
                                                  "mg_adl_mse")}
    for i in range(n):
        if not (np.all(np.isfinite(adl[i])) and adl[i, 0] > 0):
            continue
        improvement = placebo_mean + placebo_sd * rngs[i].standard_normal()
        drop = (improvement + visit_sd * rngs[i].standard_normal(weeks.size)) * after
        a = np.interp(7.0 * weeks, times, adl[i])
        q = np.interp(7.0 * weeks, times, qmg[i])
        seen_a = np.clip(np.rint(a - drop), 0, ADL_MAX)
        seen_q = np.clip(np.rint(q - qmg_placebo_share * drop * q[0] / a[0]), 0, QMG_MAX)
        change, change_q = seen_a - seen_a[0], seen_q - seen_q[0]
        for week in CHANGE_WEEKS:
            if week < weeks.size:
                out[f"mg_adl_change_week_{week}"][i] = change[week]
                out[f"qmg_change_week_{week}"][i] = change_q[week]
        flags["mg_adl_responder"][i] = responder(change, ADL_RESPONSE)
        flags["qmg_responder"][i] = responder(change_q, QMG_RESPONSE)
        flags["mg_adl_improved_6"][i] = bool(np.any(change[cycle] <= -BIG_IMPROVEMENT))
        flags["mg_adl_mse"][i] = bool(np.any(seen_a[cycle] <= MSE_MAX))
    return out | flags
