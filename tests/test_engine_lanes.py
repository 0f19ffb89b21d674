"""The driver gives a patient the same numbers, bit for bit, with four SIMD lanes or one, and whoever shares them."""

from __future__ import annotations

import math  # noqa: F401 - called in _with_exp's source, which the translator reads

import numba as nb
import numpy as np
import pytest

from cartsim.engine import full_parameters
from cartsim.engine.compile import compiled
from cartsim.engine.lanes import translatable, vectorize
from cartsim.endpoints import COLUMNS
from cartsim.model import build_model
from cartsim.population import sample
from cartsim.scenario import Scenario


@pytest.fixture(scope="module")
def model():
    return build_model()


def _same(a, b) -> None:
    assert np.array_equal(a.values, b.values, equal_nan=True)
    assert np.array_equal(a.trigger_times, b.trigger_times, equal_nan=True)
    for name in ("status", "steps", "rejected", "rhs_evals", "jac_evals"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize("therapy, disease, n", [
    ("mb-cart19", "sle", 13),      # CAR-T after lymphodepleting infusions; 13 is not a multiple of the lanes
    ("axi-cel", "lbcl", 12),       # the tocilizumab rescue fires in some patients
    ("ocrelizumab", "ms", 6),      # repeated antibody infusions
])
@pytest.mark.parametrize("solver", ["rodas5p", "rodas4"])
def test_four_lanes_match_one_lane(model, therapy, disease, n, solver):
    sc = Scenario.make(therapy, disease, 400)
    pop = sample(model, sc.disease, n, seed=5)
    times = np.arange(0.0, 401.0, 2.0)
    lanes = sc.run(pop, columns=COLUMNS, times=times, model=model, solver=solver, simd=True)
    one = sc.run(pop, columns=COLUMNS, times=times, model=model, solver=solver, simd=False)
    _same(lanes, one)
    if therapy == "axi-cel":
        assert np.isfinite(lanes.trigger_times).any()   # the case exercises a fired trigger


def test_lanes_match_on_failures(model):
    """A patient that fails (non-finite parameters, too few steps) fails the same way in a lane."""
    sc = Scenario.make("mb-cart19", "sle", 100)
    pop = sample(model, sc.disease, 6, seed=2)
    pop.params[2, 0] = np.nan
    for kw, failed in (({}, [2]), ({"max_steps": 40}, list(range(6)))):
        lanes = sc.run(pop, model=model, simd=True, **kw)
        _same(lanes, sc.run(pop, model=model, simd=False, **kw))
        assert np.flatnonzero(lanes.status).tolist() == failed


def test_lanes_do_not_depend_on_neighbours_or_threads(model):
    sc = Scenario.make("kyv-101", "ms", 365)
    pop = sample(model, sc.disease, 9, seed=4)
    threads = nb.get_num_threads()
    try:
        nb.set_num_threads(1)
        one_thread = sc.run(pop, model=model)
    finally:
        nb.set_num_threads(threads)
    alone = sc.run(type(pop)(pop.covariates.iloc[[7]], pop.params[[7]], pop.parameter_names), model=model)
    both = sc.run(pop, model=model)
    _same(one_thread, both)
    assert np.array_equal(alone.values[0], both.values[7], equal_nan=True)


def test_vector_functions_match_scalar_ones(model):
    mod = compiled(model)
    width = 4
    pop = sample(model, Scenario.make("mb-cart19", "sle", 10).disease, width, seed=8)
    q = full_parameters(model, pop.params)
    ns = len(model.states)
    y = np.empty((width, ns))
    for lane in range(width):
        mod.init(q[lane], y[lane])
    y = y * (1.0 + 0.2 * np.random.default_rng(1).random(y.shape)) + 1e-3   # away from the steady state
    c = 1.0 / np.linspace(0.01, 3.0, width)
    b = np.random.default_rng(2).random((width, ns))
    rhs_w, jac_w = vectorize(mod.rhs, width), vectorize(mod.jac, width)
    load_w, factor_w, solve_w = (vectorize(f, width, drop=()) for f in (mod.lu_load, mod.lu_factor, mod.lu_solve))

    @nb.njit
    def lanes(y, q, c, b, dy, jv, lu):
        rhs_w(y, q, dy)
        jac_w(y, q, jv)
        load_w(jv, c, lu)
        factor_w(lu)
        solve_w(lu, b)

    T = lambda a: np.ascontiguousarray(a.T)  # noqa: E731 - lanes last
    dy_v, jv_v, lu_v, b_v = np.zeros((ns, width)), np.zeros((mod.N_JAC, width)), np.zeros((mod.N_LU, width)), T(b)
    lanes(T(y), T(q), c, b_v, dy_v, jv_v, lu_v)
    for lane in range(width):
        dy, jv, lu, x = np.zeros(ns), np.zeros(mod.N_JAC), np.zeros(mod.N_LU), b[lane].copy()
        mod.rhs(0.0, y[lane], q[lane], dy)
        mod.jac(0.0, y[lane], q[lane], jv)
        mod.lu_load(jv, c[lane], lu)
        mod.lu_factor(lu)
        mod.lu_solve(lu, x)
        for vec, ref in ((dy_v, dy), (jv_v, jv), (lu_v, lu), (b_v, x)):
            assert np.array_equal(vec[:, lane], ref, equal_nan=True)
    assert np.abs(dy_v).max() > 0 and np.abs(b_v).max() > 0


def _with_loop(t, y, q, dy):
    for i in range(3):
        dy[i] = y[i]


def _with_exp(t, y, q, dy):
    dy[0] = math.exp(-q[0] * y[0]) + max(0, y[1])


def test_what_cannot_be_vectorised_is_named():
    assert "for i in range(3)" in translatable(_with_loop)
    assert translatable(_with_exp) is None
    assert translatable(len) is not None   # no Python source: compile.compiled refuses such a model

