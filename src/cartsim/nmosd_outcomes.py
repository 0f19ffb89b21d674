"""NMOSD attacks drawn from the model's intensity, and the disability they leave.

The model (``cartsim.model.nmosd``) gives each patient's expected cumulative
attacks ``attack_cum``. Attacks are an inhomogeneous Poisson process with that
cumulative intensity, drawn with the patient's own random stream (as MS relapses,
``cartsim.ms_outcomes``). Each attack leaves a lasting EDSS step (1.0 up to 5.5,
then 0.5) with probability ``nmosd_attack_edss``, the mean residual EDSS increase
per attack of the Oxford cohort (Chen 2025), so the mean increase per attack
matches it below EDSS 5.5.
"""

from __future__ import annotations

import numpy as np

from cartsim.ms_outcomes import YEAR, _event_times, edss_step


def draw(times: np.ndarray, attack_cum: np.ndarray, edss0: np.ndarray, rngs: list[np.random.Generator],
         edss_probability: float, horizon: float) -> dict[str, np.ndarray]:
    """Per-patient NMOSD endpoints: attack rate, day of the first attack (censored at the horizon), EDSS change."""
    n = attack_cum.shape[0]
    out = {k: np.full(n, np.nan) for k in ("annualized_attack_rate", "first_attack_day", "edss_change")}
    censored = np.zeros(n, bool)
    for i in range(n):
        cum = attack_cum[i] - attack_cum[i, 0]
        if not np.all(np.isfinite(cum)):
            continue
        attacks = _event_times(rngs[i], times, cum)
        out["annualized_attack_rate"][i] = attacks.size / (horizon / YEAR)
        out["first_attack_day"][i] = attacks[0] if attacks.size else horizon
        censored[i] = attacks.size == 0
        edss = float(edss0[i])
        for _ in range(int((rngs[i].random(attacks.size) < edss_probability).sum())):
            edss = edss_step(edss)
        out["edss_change"][i] = edss - edss0[i]
    out["first_attack_censored"] = censored
    return out


def attack_free(times: np.ndarray, attack_cum: np.ndarray, day: float) -> np.ndarray:
    """Each patient's probability of no attack by ``day`` (no random draws): used by calibration."""
    return np.exp(-np.array([np.interp(day, times, c - c[0]) for c in attack_cum]))
