"""CAR-T exhaustion by a large target burden: it stops division, not killing, and acts on a tumour, not on the
few B cells of an autoimmune patient after lymphodepletion."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from cartsim.model import build_model
from cartsim.model.ir import substitute_derived
from cartsim.population import typical
from cartsim.scenario import Scenario


@pytest.fixture(scope="module")
def model():
    return build_model()


def _flow(model, target: str, description: str):
    [flow] = [f for f in model.flows if f.target == target and f.description == description]
    return flow


def test_the_exhausted_share_does_not_divide_and_still_kills(model):
    """The antigen-driven division rate scales with 1 - car_exh exactly; the kill rate does not depend on it."""
    exh, act, e = sp.symbols("car_exh car_act car_eff")
    rate = _flow(model, "car_eff", "antigen-driven and homeostatic expansion").rate
    antigen_driven = sp.diff(rate, act)          # the antigen-driven term (the homeostatic one has no car_act)
    assert sp.simplify(antigen_driven.subs(exh, sp.Rational(1, 4)) / antigen_driven.subs(exh, 0)) == \
        sp.Rational(3, 4)
    assert sp.simplify(antigen_driven.subs(exh, 1)) == 0
    kill = next(o.expr for o in model.observables if o.name == "kill_cd19")
    assert exh not in kill.free_symbols


def test_a_cd28_product_is_exhausted_faster_by_its_factor(model):
    """The exhaustion rate of a CD28 product is cd28_exhaustion_factor times a 4-1BB product's (the reference)."""
    table = model.table
    values = {sp.Symbol(n): table.value(n) for n in model.parameters if table.value(n) is not None}
    rate = substitute_derived(model, _flow(model, "car_exh", "exhaustion by a target excess").rate)
    cd28 = sp.Symbol("car_costim_cd28")
    rest = {x: 1.0 for x in rate.free_symbols - set(values) - {cd28}}      # states and loads: any positive point
    point = values | rest | {sp.Symbol("target_cd19"): 1.0, sp.Symbol("car_mrna"): 0.0, sp.Symbol("car_exh"): 0.5}
    fourbb, cd28 = (float(rate.subs(point | {cd28: v})) for v in (0, 1))
    assert fourbb > 0
    assert cd28 / fourbb == pytest.approx(table.value("cd28_exhaustion_factor"), rel=1e-12)


def test_exhaustion_stops_expansion_on_a_tumour_and_spares_it_in_lupus(model):
    """Typical patients with and without exhaustion: axi-cel on a lymphoma peaks at least 5-fold lower, the same
    CD19 CAR-T in lupus within 20%; the exhausted share stays small in lupus and passes half on the tumour."""
    peaks, most = {}, {}
    for product, disease in (("axi-cel", "lbcl"), ("mb-cart19", "sle")):
        sc = Scenario.make(product, disease, 60.0)
        pop = typical(model, sc.disease)
        for k in (0.0, model.table.value("car_k_exh")):
            sol = sc.run(pop.with_parameters({"car_k_exh": k}), columns=("car_blood_per_uL", "car_exh"))
            peaks[disease, k] = float(sol.column("car_blood_per_uL")[0].max())
            most[disease, k] = float(sol.column("car_exh")[0].max())
    k = model.table.value("car_k_exh")
    assert peaks["lbcl", k] <= peaks["lbcl", 0.0] / 5
    assert peaks["sle", k] == pytest.approx(peaks["sle", 0.0], rel=0.2)
    assert most["sle", 0.0] == most["lbcl", 0.0] == 0.0
    assert most["sle", k] < 0.1 < 0.5 < most["lbcl", k]


def test_without_car_t_cells_nothing_is_exhausted(model):
    """No infusion: the exhausted share stays 0 whatever the antigen (here a lymphoma's)."""
    sc = Scenario.make("axi-cel", "lbcl", 30.0, dose="0 cells/kg")
    sol = sc.run(typical(model, sc.disease), columns=("car_exh",))
    assert np.abs(sol.column("car_exh")).max() <= 1e-9
