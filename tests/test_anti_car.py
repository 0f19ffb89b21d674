"""Immunity against the CAR: primed as a patient's own T cells recover, so it clears CAR-T cells from an
immune-competent lupus patient within months and barely touches them in a lymphopenic cancer patient."""

from __future__ import annotations

import numpy as np
import pytest

from cartsim.model import build_model
from cartsim.population import typical
from cartsim.scenario import Scenario

COLUMNS = ("t_blood_per_uL", "anti_car_competence", "anti_car", "car_blood_per_uL")


@pytest.fixture(scope="module")
def model():
    return build_model()


def _typical(model, product: str, disease: str, days: float = 365.0):
    sc = Scenario.make(product, disease, days)
    return sc.run(typical(model, sc.disease), columns=COLUMNS)


def test_competence_is_a_hill_function_of_the_t_cell_count_half_at_its_threshold(model):
    """The simulated competence equals (T/T_ref)^n / (1 + (T/T_ref)^n) at every output time, and crosses 1/2
    where the T-cell count crosses anti_car_t_ref."""
    sol = _typical(model, "mb-cart19", "sle")
    t_cells, competence = sol.column("t_blood_per_uL")[0], sol.column("anti_car_competence")[0]
    ratio = (t_cells / model.table.value("anti_car_t_ref")) ** model.table.value("anti_car_competence_hill")
    np.testing.assert_allclose(competence, ratio / (1 + ratio), rtol=1e-10)
    above = t_cells > model.table.value("anti_car_t_ref")
    assert above.any() and (~above).any()               # the lupus patient's T cells recover through it
    assert np.all((competence > 0.5) == above)


def test_immune_competent_lupus_patients_clear_car_t_cells_and_lymphopenic_ones_keep_them(model):
    """Typical patients: in lupus the anti-CAR response is fully primed by day 90 (from 1e-4 of a primed response) and
    the CAR-T cells are gone; after tisa-cel in B-ALL it is still below 1% at day 180 and the CAR-T cells stay
    above 0.1/uL from day 90 to the end of the year (it builds up slowly, as the lymphopenic patient's T cells
    recover)."""
    sle = _typical(model, "mb-cart19", "sle")
    ball = _typical(model, "tisa-cel", "b-all")
    d90, d180 = (int(np.searchsorted(sle.times, d)) for d in (90.0, 180.0))
    assert sle.column("anti_car")[0, d90] > 1.0
    assert sle.column("car_blood_per_uL")[0, d90] < 1e-3
    assert ball.column("anti_car")[0, d180] < 0.01
    assert ball.column("car_blood_per_uL")[0, d90:].min() > 0.1


def test_without_car_t_cells_no_anti_car_response_is_primed(model):
    """Ocrelizumab in lupus: no CAR to recognise, so the response stays at its precursor frequency."""
    sc = Scenario.make("ocrelizumab", "sle", 365.0)
    sol = sc.run(typical(model, sc.disease), columns=("anti_car",))
    np.testing.assert_allclose(sol.column("anti_car")[0], model.table.value("anti_car0"), rtol=1e-9)
