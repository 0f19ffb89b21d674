"""Endpoint definitions on hand-made trajectories, where every answer is known exactly."""

import numpy as np
import pytest

from cartsim import endpoints
from cartsim.engine import Solution
from cartsim.model import build_model
from cartsim.trial.summary import endpoint

DAYS = np.arange(0.0, 366.0)


def _solution(b_cells: list[np.ndarray], naive: float = 0.9, car: list[np.ndarray] | None = None) -> Solution:
    """Patients with the given blood B-cell (and CAR-T) counts; every other column flat at 1."""
    n, cols = len(b_cells), endpoints.COLUMNS
    values = np.ones((n, DAYS.size, len(cols)))
    for k, b in enumerate(b_cells):
        values[k, :, cols.index("b_blood_per_uL")] = b
    for k, c in enumerate(car or []):
        values[k, :, cols.index("car_blood_per_uL")] = c
    values[:, :, cols.index("naive_fraction_blood")] = naive
    return Solution(DAYS, cols, values, np.full((n, 1, 1), np.nan), np.zeros(n, np.int64), np.zeros(n, np.int64))


def _dip(low: float, back_on: float, level: float = 100.0) -> np.ndarray:
    """``level`` on day 0, ``low`` from day 10, ``level`` again from day ``back_on``."""
    return np.where((DAYS >= 10) & (DAYS < back_on), low, level)


@pytest.fixture(scope="module")
def table():
    return build_model().table


def test_reappearance_and_repletion_days_of_a_depleted_patient(table):
    ep = endpoints.compute(_solution([_dip(0.01, 200)]), table).iloc[0]
    assert ep["bcell_nadir_per_uL"] == 0.01
    assert ep["bcell_reappearance_day"] == 200 and not ep["bcell_reappearance_censored"]
    assert ep["bcell_repletion_day"] == 200 and not ep["bcell_repletion_censored"]
    assert ep["naive_fraction_at_reappearance"] == pytest.approx(0.9)


def test_depleted_to_the_horizon_is_censored_there(table):
    ep = endpoints.compute(_solution([_dip(0.01, 1000)]), table).iloc[0]
    assert ep["bcell_reappearance_day"] == DAYS[-1] and ep["bcell_reappearance_censored"]
    assert ep["bcell_repletion_day"] == DAYS[-1] and ep["bcell_repletion_censored"]
    assert np.isnan(ep["naive_fraction_at_reappearance"])


def test_never_depleted_patient_has_no_reappearance(table):
    """Regression: a patient whose B cells never fell below the detection limit used to 'reappear' on the day
    after their lowest count (half the ocrelizumab arm of a KYSA-7-like trial, on days 20-24 or near day 350)."""
    partial, untouched = _dip(30.0, 200), np.full(DAYS.size, 100.0)
    ep = endpoints.compute(_solution([partial, untouched]), table)
    assert ep["bcell_reappearance_day"].isna().all()
    assert not ep["bcell_reappearance_censored"].any()
    assert ep["naive_fraction_at_reappearance"].isna().all()
    # repletion (back to min(baseline, 80)) applies to the partial dip, not to the untouched patient
    assert ep["bcell_repletion_day"].iloc[0] == 200 and np.isnan(ep["bcell_repletion_day"].iloc[1])
    assert not ep["bcell_repletion_censored"].iloc[1]


def test_arm_counts_patients_the_endpoint_does_not_apply_to(table):
    ep = endpoints.compute(_solution([_dip(0.01, 100), _dip(0.01, 1000), _dip(30.0, 200),
                                      np.full(DAYS.size, 100.0)]), table)
    e = endpoint(ep, "bcell_reappearance_day", "time_to_event")
    assert (e["n_events"], e["n_censored"], e["n_not_applicable"]) == (1, 1, 2)
    assert e["median"] == 100
    # nobody depleted: the endpoint does not apply to the arm at all
    none = endpoints.compute(_solution([np.full(DAYS.size, 100.0)] * 3), table)
    assert endpoint(none, "bcell_reappearance_day", "time_to_event") == {"kind": "time_to_event",
                                                                         "applicable": False}


def test_cart_course_of_a_patient_without_detectable_cart(table):
    """Peak day and persistence describe CAR-T cells that were there: none detected (an antibody arm) gives no
    value, not a peak and a last detection on day 0; the peak itself is a measurement (0)."""
    expanding = np.where(DAYS <= 12, 10.0 * 2.0 ** (DAYS / 2), 10.0 * 64 * 0.5 ** ((DAYS - 12) / 10))
    ep = endpoints.compute(_solution([_dip(0.01, 200)] * 2, car=[expanding, np.zeros(DAYS.size)]), table)
    assert ep["cart_tmax_day"].iloc[0] == 12 and ep["cart_peak_per_uL"].iloc[0] == 640
    # 640 * 0.5 ** ((d - 12) / 10) >= 0.1  <=>  d <= 12 + 10 log2(6400) = 138.4
    assert ep["cart_persistence_day"].iloc[0] == 138 and not ep["cart_persistence_censored"].iloc[0]
    assert ep["cart_peak_per_uL"].iloc[1] == 0
    assert np.isnan(ep["cart_tmax_day"].iloc[1]) and np.isnan(ep["cart_persistence_day"].iloc[1])
    assert not ep["cart_persistence_censored"].iloc[1]


def test_crs_onset_is_the_first_day_the_signal_reaches_grade_1_and_absent_without_crs(table):
    """Three patients: CRS signal at grade 1 from day 4, at grade 3 from day 2, never above grade 0."""
    thr = [table.value(f"crs_il6_grade{g}") for g in (1, 3)]
    b = [np.full(DAYS.size, 100.0)] * 3
    sol = _solution(b)
    col = endpoints.COLUMNS.index("il6_signal")
    sol.values[0, :, col] = np.where((DAYS >= 4) & (DAYS < 9), thr[0], 0.5 * thr[0])
    sol.values[1, :, col] = np.where((DAYS >= 2) & (DAYS < 5), thr[1], 0.5 * thr[0])
    sol.values[2, :, col] = 0.5 * thr[0]
    ep = endpoints.compute(sol, table)
    # the crossing is interpolated between the output times around it: exactly day 4 where the signal reaches the
    # threshold itself, a share of the day before day 2 where it jumps past it
    assert ep.crs_onset_day.iloc[0] == 4
    assert ep.crs_onset_day.iloc[1] == pytest.approx(1 + 0.5 * thr[0] / (thr[1] - 0.5 * thr[0]), rel=1e-12)
    assert np.isnan(ep.crs_onset_day.iloc[2])
    assert list(ep.crs_max_grade) == [1, 3, 0]


def test_crs_onset_is_the_crossing_even_where_a_rescue_is_marked_earlier(table):
    """Regression: a rescue recorded without its time (the benchmark's peers mark it at 0) set the onset to day 0
    although the signal reached grade 1 on day 3; the rescue time counts only where no output time shows CRS."""
    thr = table.value("crs_il6_grade1")
    sol = _solution([np.full(DAYS.size, 100.0)] * 2)
    col = endpoints.COLUMNS.index("il6_signal")
    sol.values[0, :, col] = np.where((DAYS >= 3) & (DAYS < 6), 20 * thr, 0.5 * thr)
    sol.values[1, :, col] = 0.5 * thr                 # the crossing fell between output times: only the rescue shows it
    marked = Solution(sol.times, sol.columns, sol.values, np.array([[[0.0]], [[1.5]]]), sol.status, sol.steps)
    ep = endpoints.compute(marked, table)
    assert 2 < ep.crs_onset_day.iloc[0] < 3 and ep.crs_onset_day.iloc[1] == 1.5
    assert list(ep.tocilizumab_given) == [True, True]
