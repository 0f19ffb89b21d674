"""MuSK-antibody myasthenia gravis (disease ``mg-musk``): a form of MG with its own antibody biology."""

from __future__ import annotations

import numpy as np
import pytest

from cartsim.disease import _with_base, diseases
from cartsim.model import build_model
from cartsim.population import typical
from cartsim.scenario import Scenario
from cartsim.validate import MUSK_RITUXIMAB


@pytest.fixture(scope="module")
def model():
    return build_model()


def _typical(model, therapy, disease, days, columns, **kw):
    sc = Scenario.make(therapy, disease, days, **kw)
    times = np.arange(0.0, days + 1e-9, 1.0)
    return times, sc.run(typical(model, sc.disease), columns=columns, times=times)


def test_musk_mg_is_mg_with_its_own_values_on_top():
    """Every value of MG that MuSK MG does not set is MG's, with MG's provenance; its own replace MG's."""
    mg, musk = diseases()["mg"], diseases()["mg-musk"]
    own = {"mg_complement_odds", "pc_auto_death"}
    assert {k: v for k, v in musk.overrides.items() if k not in own} == \
        {k: v for k, v in mg.overrides.items() if k not in own}
    assert musk.overrides["mg_complement_odds"] == 0.0
    assert musk.overrides["pc_auto_death"] > mg.overrides["pc_auto_death"]
    assert musk.provenance["mg_adl0"] == mg.provenance["mg_adl0"]
    assert musk.female_share == 0.9 and musk.autoantibody == "anti-MuSK antibody"


def test_a_base_that_is_not_a_disease_is_refused_with_the_allowed_names():
    raw = {"mg": {"overrides": {}}, "x": {"base": "myasthenia", "overrides": {}}}
    with pytest.raises(ValueError, match=r"disease 'x': base 'myasthenia' .*\(mg\)"):
        _with_base("x", raw["x"], raw)


def test_untreated_anti_musk_stays_at_its_baseline(model):
    """Without therapy the antibody, the junction and the scores stay at their steady state."""
    _, sol = _typical(model, "placebo", "mg-musk", 365.0, ("autoantibody", "mg_junction", "mg_adl"))
    for c in ("autoantibody", "mg_junction", "mg_adl"):
        x = sol.column(c)[0]
        assert x == pytest.approx(x[0], rel=1e-6)


def test_a_complement_inhibitor_does_nothing_in_musk_mg(model):
    """IgG4 does not fix complement: ravulizumab leaves every MuSK MG score as on placebo."""
    _, placebo = _typical(model, "placebo", "mg-musk", 182.0, ("mg_adl", "qmg"))
    _, drug = _typical(model, "ravulizumab", "mg-musk", 182.0, ("mg_adl", "qmg", "c5_block"))
    assert drug.column("c5_block")[0][-1] > 0.99
    for c in ("mg_adl", "qmg"):
        assert drug.column(c)[0] == pytest.approx(placebo.column(c)[0], rel=1e-12)


def test_anti_musk_falls_faster_than_anti_achr_after_rituximab(model):
    """Short-lived antibody-secreting cells: once rituximab removes the B cells that renew them, anti-MuSK falls
    at about the antibody's own catabolism, well ahead of anti-AChR (made by cells living for weeks)."""
    level = {}
    for disease in ("mg-musk", "mg"):
        t, sol = _typical(model, "rituximab", disease, 120.0, ("autoantibody",), regimen=MUSK_RITUXIMAB)
        a = sol.column("autoantibody")[0]
        level[disease] = a / a[0]
    day = np.searchsorted(t, 90.0)
    assert level["mg-musk"][day] < 0.2 < level["mg"][day]
    assert np.all(level["mg-musk"][1:] <= level["mg"][1:] + 1e-9)
