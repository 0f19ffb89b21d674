"""Complement C5 inhibition (model/complement.py) and its effect on myasthenia gravis (model/mg.py)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from cartsim.disease import diseases
from cartsim.model import build_model
from cartsim.model.parameters import ParameterTable
from cartsim.population import sample, typical
from cartsim.scenario import Scenario
from cartsim.validate import champion_mg


@pytest.fixture(scope="module")
def model():
    return build_model()


def _run(model, therapy, days, columns, **kw):
    sc = Scenario.make(therapy, "mg", days, **kw)
    times = np.arange(0.0, days + 1e-9, 0.5)
    return times, sc.run(typical(model, sc.disease), columns=columns, times=times)


def test_inhibitor_level_falls_with_its_half_life_between_doses(model):
    """One compartment, first-order elimination: between the infusions of days 14 and 70 the ravulizumab level
    halves every c5i_halflife days (to solver tolerance), and the dose lands in the table's volume."""
    t, sol = _run(model, "ravulizumab", 60.0, ("c5i_conc",))
    c = sol.column("c5i_conc")[0]
    half = model.table.value("c5i_halflife")
    a, b = np.searchsorted(t, 20.0), np.searchsorted(t, 60.0)
    assert c[b] / c[a] == pytest.approx(2 ** (-(t[b] - t[a]) / half), rel=1e-5)
    # just after the 2-hour loading infusion: 2,700 mg in the volume, less what 2 hours of elimination took
    assert c[np.searchsorted(t, 0.5)] == pytest.approx(2700 / model.table.value("c5i_v") * 2 ** (-0.5 / half),
                                                       rel=0.02)


def test_blocking_complement_changes_nothing_where_it_does_no_damage(model):
    """With no complement-mediated share of the damage, ravulizumab's full block leaves every score as on
    placebo (the antibody is not touched)."""
    t, placebo = _run(model, "placebo", 120.0, ("mg_adl", "mg_junction", "autoantibody"))
    _, drug = _run(model, "ravulizumab", 120.0, ("mg_adl", "mg_junction", "autoantibody", "c5_block"),
                   parameters={"mg_complement_odds": 0.0})
    assert drug.column("c5_block")[0][-1] > 0.99
    for c in ("mg_adl", "mg_junction", "autoantibody"):
        assert drug.column(c)[0] == pytest.approx(placebo.column(c)[0], rel=1e-12, abs=1e-12)


def test_full_block_lowers_the_junction_damage_to_the_unspared_share(model):
    """With C5 blocked completely (a negligible half-blocking level) and the antibody unchanged, the damage
    settles at exactly 1 - mg_complement_share of its untreated level, with the junction's half-life."""
    odds = model.table.value("mg_complement_odds")
    share = odds / (1 + odds)
    t, sol = _run(model, "ravulizumab", 182.0, ("mg_junction", "autoantibody_level", "c5_block"),
                  parameters={"c5i_ec50": 1e-9})
    j = sol.column("mg_junction")[0]
    assert sol.column("c5_block")[0][-1] == pytest.approx(1.0, abs=1e-9)
    # 1 but for the numerical floor added to the untreated level (1e-12 g/L against about 1e-3)
    assert sol.column("autoantibody_level")[0] == pytest.approx(1.0, rel=1e-8)
    assert j[-1] == pytest.approx(1 - share, rel=1e-6)
    k = math.log(2) / model.table.value("mg_junction_halflife")
    i = np.searchsorted(t, 10.0)
    assert j[i] == pytest.approx(1 - share + share * math.exp(-k * t[i]), rel=2e-3)   # from day 0 (block within hours)


def test_champion_difference_is_the_drug_alone():
    """The two arms share patients and draws, so the difference is the drug's effect: none without a share."""
    none = champion_mg({"mg_complement_odds": 0.0})
    assert none["pop_mg_adl_difference_week_26"] == pytest.approx(0.0, abs=1e-12)
    assert none["pop_qmg_difference_week_26"] == pytest.approx(0.0, abs=1e-12)
    assert champion_mg()["pop_mg_adl_difference_week_26"] < -1.0


def test_the_complement_share_is_logit_normal_and_leaves_the_other_random_effects_alone(model):
    """Each patient's share lies in (0, 1) with log odds of SD ``iiv_omega`` around the typical odds, and adding
    that spread changes no other parameter of any patient (its draw comes after theirs)."""
    disease = diseases()["mg"]
    pop = sample(model, disease, 400, 7)
    odds = pop.column("mg_complement_odds")
    record = model.table["mg_complement_odds"]
    share = odds / (1 + odds)
    assert np.all((share > 0) & (share < 1))
    z = np.log(odds / record.value) / record.iiv_omega
    assert abs(z.mean()) < 0.15 and abs(z.std() - 1) < 0.1
    fixed = replace(model, table=ParameterTable([replace(r, iiv_omega=0.0) if r.name == record.name else r
                                                 for r in model.table]))
    other = sample(fixed, disease, 400, 7)
    keep = [i for i, n in enumerate(model.parameters) if n != record.name]
    assert np.array_equal(pop.params[:, keep], other.params[:, keep])
    assert np.all(other.column("mg_complement_odds") == record.value)


def test_eculizumab_reaches_its_labelled_week_26_peak_and_trough(model):
    """Its half-life and volume were read off the label's week-26 peak and trough in gMG (783 and 341 ug/mL on
    1,200 mg every 2 weeks): the labelled regimen reproduces the trough, and the peak less the infusion's spread."""
    t, sol = _run(model, "eculizumab", 182.0, ("c5i_conc",))
    c = sol.column("c5i_conc")[0]
    window = (t >= 168.0) & (t <= 182.0)
    assert c[window].min() == pytest.approx(341.0, rel=0.03)
    assert 700.0 < c[window].max() <= 783.0 * 1.02
