"""MS clinical events drawn from the model's intensities: relapses, MRI lesion counts, disability progression.

The model (``cartsim.model.ms_activity``) gives each patient's expected cumulative
relapses ``relapse_cum``, cumulative progression hazard ``pira_cum`` and
expected enhancing lesions ``gd_active``. This observation model turns them
into events, with the patient's own random stream (``Population.event_rng``),
so a patient's events do not depend on chunking or workers:

* relapses: an inhomogeneous Poisson process with that cumulative intensity
  (between-patient overdispersion comes from the random effect on the rate, so
  counts over patients are Poisson-lognormal, close to negative binomial);
* MRI every ``mri_interval_days`` from day 0 (the first scan one interval after
  day 0, as in trials): Poisson counts with mean ``gd_active`` on the scan day;
* disability worsening: progression independent of relapses (a Poisson process
  with cumulative hazard ``pira_cum``), and relapse-associated worsening, each
  relapse with probability ``ms_raw_probability``. A worsening raises the EDSS by
  1.0 (0.5 above 5.5, the steps by which confirmed progression is defined) and
  is permanent. It is seen at the next 12-weekly visit and confirmed 12 (or 24)
  weeks later if that visit falls within the horizon (confirmed disability
  progression, CDP12 / CDP24).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

YEAR = 365.25
VISIT_DAYS = 84.0          # clinical visits every 12 weeks
MRI_INTERVAL_WEEKS = 24.0  # scheduled MRI scans, as in OPERA, unless a trial sets trial.mri_interval_weeks
EDSS_MAX = 9.5


@dataclass(frozen=True)
class Intensities:
    """Per-patient model outputs on days >= 0 (rows = patients)."""

    times: np.ndarray        # (T,), starting at day 0
    relapse_cum: np.ndarray  # (N, T)
    pira_cum: np.ndarray     # (N, T)
    gd_active: np.ndarray    # (N, T)


def _event_times(rng: np.random.Generator, times: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """Event times of a Poisson process with cumulative intensity ``cum`` (from 0) on ``times``."""
    total = float(cum[-1])
    if not np.isfinite(total) or total <= 0:
        return np.empty(0)
    u = np.sort(rng.random(rng.poisson(total))) * total
    return np.interp(u, cum, times)


def edss_step(edss: float) -> float:
    """The EDSS after one confirmed worsening (1.0 up to 5.5, then 0.5), capped at 9.5."""
    return min(EDSS_MAX, edss + (1.0 if edss <= 5.5 else 0.5))


def scan_days(horizon: float, interval: float) -> np.ndarray:
    return np.arange(interval, horizon + 1e-9, interval)


def draw(x: Intensities, edss0: np.ndarray, rngs: list[np.random.Generator], raw_probability: float,
         horizon: float, mri_interval_days: float) -> dict[str, np.ndarray]:
    """Per-patient MS endpoints (names from the endpoint dictionary)."""
    n = x.relapse_cum.shape[0]
    years = horizon / YEAR
    scans = scan_days(horizon, mri_interval_days)
    out = {k: np.full(n, np.nan) for k in ("annualized_relapse_rate", "gd_lesions_per_scan", "edss_change")}
    cdp12, cdp24 = np.zeros(n, bool), np.zeros(n, bool)
    for i in range(n):
        rng = rngs[i]
        rel = x.relapse_cum[i] - x.relapse_cum[i, 0]
        if not np.all(np.isfinite(rel)):
            continue
        relapses = _event_times(rng, x.times, rel)
        out["annualized_relapse_rate"][i] = relapses.size / years
        if scans.size:
            mean = np.interp(scans, x.times, x.gd_active[i])
            out["gd_lesions_per_scan"][i] = rng.poisson(np.maximum(mean, 0.0)).mean()
        pira = _event_times(rng, x.times, x.pira_cum[i] - x.pira_cum[i, 0])
        raw = relapses[rng.random(relapses.size) < raw_probability]
        worsening = np.sort(np.concatenate([pira, raw]))
        edss = float(edss0[i])
        for _ in worsening:
            edss = edss_step(edss)
        out["edss_change"][i] = edss - edss0[i]
        if worsening.size:
            seen = np.ceil(worsening[0] / VISIT_DAYS - 1e-9) * VISIT_DAYS
            cdp12[i] = seen + VISIT_DAYS <= horizon + 1e-9
            cdp24[i] = seen + 2 * VISIT_DAYS <= horizon + 1e-9
    out["cdp12_fraction"], out["cdp24_fraction"] = cdp12, cdp24
    return out


def expected(x: Intensities, raw_probability: float, horizon: float) -> dict[str, np.ndarray]:
    """Expected values of the event endpoints (no random draws): used by calibration.

    ``cdp12_probability``: probability of a first worsening early enough to be seen and confirmed 12
    weeks later within the horizon (worsening before the last visit that still allows confirmation)."""
    t = x.times
    rel = x.relapse_cum - x.relapse_cum[:, :1]
    hazard = x.pira_cum - x.pira_cum[:, :1] + raw_probability * rel
    last12 = (np.floor((horizon + 1e-9) / VISIT_DAYS) - 1) * VISIT_DAYS
    h12 = np.array([np.interp(last12, t, h) for h in hazard]) if last12 > 0 else np.zeros(len(hazard))
    return {"annualized_relapse_rate": rel[:, -1] / (horizon / YEAR), "cdp12_probability": 1 - np.exp(-h12)}
