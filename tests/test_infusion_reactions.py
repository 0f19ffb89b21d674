"""Infusion-related reactions to ocrelizumab: drawn per infusion from each patient's own stream."""

from __future__ import annotations


import numpy as np
import pytest
from scipy.stats import binomtest

from cartsim import endpoints
from cartsim.model import build_model
from cartsim.population import sample
from cartsim.scenario import Scenario
from cartsim.therapy.antibodies import antibodies
from cartsim.validate import CALIBRATED, OPERA_DAYS, OPERA_OCRELIZUMAB

from bench_scripts import bench_module



@pytest.fixture(scope="module")
def model():
    return build_model()


def test_risks_follow_the_regimen():
    ocr = antibodies()["ocrelizumab"].with_regimen(OPERA_OCRELIZUMAB)
    first, later = ocr.infusion_reactions
    assert ocr.infusion_reaction_risks(OPERA_DAYS) == [first] + [later] * 4     # days 0, 14, 168, 336, 504
    assert ocr.infusion_reaction_risks(10.0) == [first]
    assert antibodies()["ofatumumab"].infusion_reaction_risks(365.0) is None     # no data: not applicable


def test_fraction_with_a_reaction_is_the_closed_form(model):
    """1 - prod(1 - p_i) over the infusions, within the binomial 99.9% interval of 4000 patients."""
    risks = [0.275, 0.05, 0.05, 0.05]
    pop = sample(model, Scenario.make("ocrelizumab", "ms", 30).disease, 4000, 3)
    got = endpoints.infusion_reactions(pop, risks)
    expected = 1 - np.prod(1 - np.asarray(risks))
    ci = binomtest(int(got.sum()), got.size).proportion_ci(0.999)
    assert ci.low <= expected <= ci.high
    assert np.array_equal(got, endpoints.infusion_reactions(pop, risks))      # the same seed, the same draws


def test_ocrelizumab_arm_reports_reactions_and_car_t_does_not(model):
    """Regression: the comparison showed no infusion-related reactions for ocrelizumab (a silent 0%)."""
    def arm(therapy: str):
        sc = Scenario.make(therapy, "ms", 200.0)
        pop = sample(model, sc.disease, 200, 5, course=sc.course)
        sol = sc.run(pop, columns=endpoints.COLUMNS)
        return endpoints.compute(sol, model.table, sc.last_dose_day(), pop,
                                 infusion_risks=sc.infusion_reaction_risks())
    ocr, cart = arm("ocrelizumab"), arm("kyv-101")
    assert 0.2 < ocr.infusion_reaction_any.mean() < 0.5
    assert cart.infusion_reaction_any.isna().all()


def test_reaction_draws_leave_the_clinical_event_draws_alone(model):
    """The reactions have their own stream: relapses and progression are the same with or without them."""
    sc = Scenario.make("ocrelizumab", "ms", 336.0, course="rrms")
    pop = sample(model, sc.disease, 50, 9, course=sc.course)
    sol = sc.run(pop, columns=endpoints.COLUMNS)
    with_irr = endpoints.compute(sol, model.table, None, pop, infusion_risks=sc.infusion_reaction_risks())
    without = endpoints.compute(sol, model.table, None, pop)
    for col in ("annualized_relapse_rate", "edss_change", "gd_lesions_per_scan"):
        assert np.array_equal(with_irr[col].to_numpy(float), without[col].to_numpy(float))


def test_calibration_matches_the_table_and_its_target_is_labelled():
    calibrate_irr = bench_module("calibrate_irr")
    ocr = antibodies()["ocrelizumab"].with_regimen(OPERA_OCRELIZUMAB)
    first, later = ocr.infusion_reactions
    n = len(ocr.infusion_reaction_risks(OPERA_DAYS))
    observed = calibrate_irr.TARGETS[("ocrelizumab_infusion_reactions", "pop_opera")]
    assert round(calibrate_irr.fitted_later(first, observed, n), 4) == later
    assert 1 - (1 - first) * (1 - later) ** (n - 1) == pytest.approx(observed, abs=1e-3)
    assert set(calibrate_irr.TARGETS) <= CALIBRATED


def test_inebilizumab_reactions_give_the_labels_first_course_and_the_trials_share():
    """Regression: the NMOSD page said infusion reactions were 'not applicable' to inebilizumab, whose label reports
    them in 9.3% of patients with the first course; 12.9% had one by the end of N-MOmentum (about 8 infusions)."""
    risks = np.array(antibodies()["inebilizumab"].infusion_reaction_risks(4 * 365.0))
    assert 1 - np.prod(1 - risks[:2]) == pytest.approx(0.093, abs=5e-4)        # days 0 and 14
    assert 1 - np.prod(1 - risks[:8]) == pytest.approx(0.129, abs=5e-4)
    assert risks[0] > 10 * risks[1]                                              # most with the first infusion


@pytest.mark.parametrize("entry, field", [
    ({"first": 1.2, "later": 0.01, "kind": "derived", "source": "x"}, "'first'"),
    ({"first": 0.1, "later": "often", "kind": "derived", "source": "x"}, "'later'"),
    ({"first": 0.1, "kind": "derived", "source": "x"}, "'later'"),
    ({"first": 0.1, "later": 0.01, "kind": "guessed", "source": "x"}, "kind"),
    ({"first": 0.1, "later": 0.01, "kind": "derived", "source": " "}, "source"),
])
def test_bad_infusion_reaction_data_names_the_entry_and_the_field(entry, field):
    from cartsim.therapy.antibodies import infusion_reaction_data
    with pytest.raises(ValueError, match=field) as err:
        infusion_reaction_data("antibodies.toml [x.infusion_reactions]", entry)
    assert "antibodies.toml [x.infusion_reactions]" in str(err.value)
