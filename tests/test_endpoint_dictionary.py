"""The endpoint dictionary (cartsim/endpoint_dictionary.py) is the one description of the endpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cartsim import endpoint_dictionary as dictionary
from cartsim import endpoints
from cartsim.model import build_model
from cartsim.population import sample
from cartsim.scenario import Scenario

SRC = Path(__file__).resolve().parents[1] / "src" / "cartsim"


@pytest.mark.parametrize("therapy, disease, days", [("mb-cart19", "sle", 200), ("ocrelizumab", "ms", 200),
                                                    ("eque-cel", "nmosd", 200), ("efgartigimod", "mg", 90)])
def test_every_computed_column_is_an_endpoint_or_its_censoring(therapy, disease, days):
    """What endpoints.compute writes is exactly described by the dictionary: each column an endpoint or the
    censoring column of one, and each time-to-event endpoint comes with its censoring column."""
    model = build_model()
    sc = Scenario.make(therapy, disease, days)
    pop = sample(model, sc.disease, 4, 3, course=sc.course)
    ep = endpoints.compute(sc.run(pop, columns=endpoints.COLUMNS), model.table, sc.last_dose_day(), pop,
                           infusion_risks=sc.infusion_reaction_risks())
    columns = set(ep.columns)
    assert columns <= set(dictionary.ENDPOINTS) | dictionary.CENSORING_COLUMNS, columns - set(dictionary.ENDPOINTS)
    for name in columns & set(dictionary.ENDPOINTS):
        e = dictionary.ENDPOINTS[name]
        if e.kind == "time_to_event":
            assert e.censored_by in columns, name
            assert ep[e.censored_by].dropna().isin([True, False]).all()


def test_limits_define_their_endpoints():
    """An endpoint defined by a threshold uses the dictionary's value: B cells reappear at the detection limit."""
    assert dictionary.ENDPOINTS["bcell_reappearance_day"].limit.value == endpoints.REAPPEARANCE_LIMIT == 1.0
    assert dictionary.ENDPOINTS["bcell_repletion_day"].limit.value == endpoints.REPLETION_LIMIT == 80.0
    assert dictionary.ENDPOINTS["cart_persistence_day"].limit.value == endpoints.CART_DETECTION_LIMIT == 0.1
    assert dictionary.ENDPOINTS["igg_below_4_g_per_L"].limit.value == endpoints.HYPOGAMMA_G_PER_L == 4.0
    times = np.arange(0.0, 10.0)
    b = np.array([[300, 0.5, 0.9, 1.0, 2, 2, 2, 2, 2, 2]], float)     # back on day 3, at exactly the limit
    day, cens = endpoints._after_nadir(times, b, dictionary.B_DETECTION.value)
    assert day[0] == 3.0 and not cens[0]


def test_no_module_keeps_a_second_list_of_endpoint_labels_or_limits():
    """Labels, kinds and assay limits are written in the dictionary only (the web page gets its reference lines
    from the API)."""
    labels = [e.label for e in dictionary.ENDPOINTS.values()]
    for path in SRC.rglob("*"):
        if path.suffix not in (".py", ".js", ".j2", ".html") or path.name == "endpoint_dictionary.py":
            continue
        text = path.read_text()
        assert not [x for x in labels if f'"{x}"' in text], path
        assert "detection limit 1/µL" not in text and "REFERENCE_LINES = {" not in text.replace(
            "REFERENCE_LINES = {dictionary", ""), path
    from cartsim.trial import summary
    assert summary.KINDS is dictionary.KINDS


def test_web_panels_carry_the_dictionary_reference_lines():
    from cartsim.web.arms import panels
    refs = {p.column: [r["value"] for r in p.references] for p in panels()}
    assert refs["b_blood_per_uL"] == [1.0, 80.0] and refs["car_blood_per_uL"] == [0.1] and refs["igg"] == []
