"""FcRn recycling of IgG and its blocker (model/fcrn.py), and doses by body weight."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cartsim.errors import CartsimInputError
from cartsim.model import build_model
from cartsim.population import sample, typical
from cartsim.scenario import Scenario

DAYS = np.arange(0.0, 31.0)


@pytest.fixture(scope="module")
def model():
    return build_model()


def _igg(model, therapy: str, regimen: str | None = None, **parameters) -> np.ndarray:
    sc = Scenario.make(therapy, "healthy", DAYS[-1], regimen=regimen, parameters=parameters or None)
    pop = typical(model, sc.disease, sc.course)
    return sc.run(pop, columns=("igg", "fcrn_occupancy"), times=DAYS).values[0]


def test_fully_blocked_fcrn_gives_the_published_igg_halflife(model):
    """A blocker that never leaves and saturates FcRn (occupancy 1 - 3e-6): IgG breaks down
    fcrn_igg_catabolism_fold (5) times faster, so its half-life is 21 / 5 = 4.2 days and it falls towards a fifth
    of baseline, as the analytic solution of dIgG/dt = k igg0 - 5 k IgG says."""
    table = model.table
    fold, halflife = table.value("fcrn_igg_catabolism_fold"), table.value("igg_halflife")
    values = _igg(model, "efgartigimod", "1e9 mg IV over 0 h on day 0", fcrnb_halflife=1e12)
    igg, occupancy = values[:, 0], values[:, 1]
    assert occupancy[1:].min() > 1 - 1e-5
    f = 1 + (fold - 1) * occupancy[1]          # breakdown relative to normal, constant from the bolus on
    k = math.log(2) / halflife * f
    assert igg == pytest.approx(igg[0] * (1 / f + (1 - 1 / f) * np.exp(-k * DAYS)), rel=1e-5)
    excess = igg - igg[0] / fold
    slope = np.polyfit(DAYS[5:], np.log(excess[5:]), 1)[0]
    assert math.log(2) / -slope == pytest.approx(halflife / fold, rel=1e-4)     # 4.2 days


def test_blocking_fcrn_without_recycling_changes_nothing(model):
    """With no FcRn recycling to block (fold 1), efgartigimod leaves IgG exactly at its untreated steady state."""
    untreated = _igg(model, "untreated")[:, 0]
    blocked = _igg(model, "efgartigimod", fcrn_igg_catabolism_fold=1.0)[:, 0]
    assert untreated == pytest.approx(np.full(DAYS.size, untreated[0]), rel=1e-9)
    assert blocked == pytest.approx(untreated, rel=1e-9)


def test_one_efgartigimod_cycle_lowers_igg_by_the_adapt_amount_and_it_returns(model):
    """10 mg/kg weekly x4 (the fitted EC50): IgG lowest about a week after the 4th infusion (day 21), 61% below
    baseline (ADAPT 61.3%), and recovering at the normal IgG half-life afterwards."""
    sc = Scenario.make("efgartigimod", "healthy", 140)
    pop = typical(model, sc.disease, sc.course)
    days = np.arange(0.0, 141.0)
    igg = sc.run(pop, columns=("igg",), times=days).column("igg")[0] / model.table.value("igg0")
    assert 1 - igg.min() == pytest.approx(0.613, abs=0.005)
    assert 24 <= days[igg.argmin()] <= 32
    assert 0.8 < igg[21 + 56] < 0.9                     # 8 weeks after the last infusion (README)
    assert igg[-1] > 0.9 and np.all(np.diff(igg[40:]) > 0)


def test_per_kg_doses_follow_body_weight_up_to_the_labelled_cap(model):
    """10 mg/kg: each patient's own weight, with the label's 1200 mg per infusion from 120 kg."""
    sc = Scenario.make("efgartigimod", "healthy", 60)
    pop = sample(model, sc.disease, 50, 3).with_parameters({"weight_kg": np.linspace(45.0, 140.0, 50)})
    _, doses = sc.patient_inputs(model, pop)
    assert doses.amount.shape == (50, 4)
    assert doses.amount[:, 0] == pytest.approx(np.minimum(10 * np.linspace(45.0, 140.0, 50), 1200.0))
    assert np.all(doses.amount == doses.amount[:, :1])
    assert set(doses.time[0]) == {0.0, 7.0, 14.0, 21.0}


def test_efgartigimod_is_refused_a_cart_dose():
    with pytest.raises(CartsimInputError, match="--dose or --lymphodepletion"):
        Scenario.make("efgartigimod", "healthy", 60, dose="1e6 cells/kg")


def test_serum_antibody_observations_are_only_for_anti_cd20_antibodies(model):
    """DVID 5 is the anti-CD20 antibody's serum level: a dataset of efgartigimod or interferon has none (it
    would be a column of zeros), and the drug's own level is what its trajectories carry."""
    from cartsim.exporters.nonmem import observation_types

    for therapy, has in (("ocrelizumab", True), ("efgartigimod", False), ("interferon-beta-1a", False)):
        types = {t.quantity for t in observation_types(model, Scenario.make(therapy, "ms", 60))}
        assert ("mab_conc" in types) is has, therapy
    from cartsim.therapy import antibodies

    assert antibodies()["efgartigimod"].level == "fcrnb_conc" and antibodies()["interferon-beta-1a"].level is None


@pytest.mark.parametrize("disease", ["sle", "ms"])
def test_autoantibody_and_igg_stay_at_baseline_without_therapy(model, disease):
    """The model's baseline is its steady state: untreated, the autoantibody and total IgG of the typical patient
    stay at their starting values for two years."""
    sc = Scenario.make("untreated", disease, 730)
    pop = typical(model, sc.disease, sc.course)
    sol = sc.run(pop, columns=("igg", "autoantibody"), times=np.arange(0.0, 731.0, 30.0))
    igg, auto = sol.column("igg")[0], sol.column("autoantibody")[0]
    assert auto[0] > 0 and igg[0] == pytest.approx(model.table.value("igg0"))
    assert auto == pytest.approx(np.full(auto.size, auto[0]), rel=1e-6)
    assert igg == pytest.approx(np.full(igg.size, igg[0]), rel=1e-6)


def test_the_simulate_figure_draws_efgartigimods_own_level(tmp_path, monkeypatch):
    """Regression: the simulate figure drew only the anti-CD20 antibody's level, so an efgartigimod run showed
    no drug at all, under a flat CAR-T line at the axis floor."""
    import cartsim.outputs.plots as plots
    from cartsim.simulate import simulate

    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **kw: drawn.append(fig))
    r = simulate("efgartigimod", "sle", days=60)
    plots.plot_trajectories(r.trajectories, tmp_path / "f.png", title="t")
    labels = [ax.get_ylabel() for ax in drawn[0].axes]
    assert "FcRn blocker\n(ug/mL)" in labels and "anti-CD20 antibody\n(ug/mL)" not in labels
    level = next(ax for ax in drawn[0].axes if ax.get_ylabel() == "FcRn blocker\n(ug/mL)").get_lines()[0]
    assert max(level.get_ydata()) > 30
    # and no flat CAR-T line at the axis floor where no CAR-T cells were given
    assert "CAR-T cells\n(cells/µL)" not in labels
    plots.plot_trajectories(simulate("untreated", "sle", days=30).trajectories, tmp_path / "u.png", title="u")
    texts = [t.get_text() for t in drawn[1].axes[1].texts]
    assert texts == ["no CAR-T cells and no drug level in this simulation"]
    assert not [ln for ln in drawn[1].axes[1].get_lines() if "CAR-T" in ln.get_label()]
