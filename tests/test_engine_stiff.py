"""The stiff solvers (Rosenbrock: Rodas5P, Rodas4) and what they are built from: the generated analytic
Jacobian, the fixed-pattern sparse LU and the per-patient constants.

Every test asserts numbers that a wrong tableau, a wrong Jacobian, a wrong
factorisation or wrong event handling would change.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from cartsim.disease import diseases
from cartsim.engine import Doses, full_parameters, solve
from cartsim.engine.compile import compiled
from cartsim.engine.solve import SOLVERS
from cartsim.engine.sparse_lu import factor_source, operations, plan, solve_source
from cartsim.engine.tableaus import TABLEAUS
from cartsim.model import build_model
from cartsim.model.ir import ModelBuilder
from cartsim.model.parameters import ParameterRecord, ParameterTable
from cartsim.population import typical
from cartsim.scenario import Scenario

ROSENBROCK = tuple(name for name, tab in TABLEAUS.items() if not tab.explicit)


@pytest.fixture(scope="module")
def model():
    return build_model()


# --------------------------------------------------------------------------------------
# 1. order of convergence on stiff linear and nonlinear problems with known solutions
# --------------------------------------------------------------------------------------

RATES = {"k10": 0.7, "k12": 1.3, "k21": 0.4, "k23": 2.0, "k32": 900.0, "k30": 300.0, "r": 1.5, "cap": 2.0}
NONSTIFF = {**RATES, "k32": 0.9, "k30": 0.3}   # every eigenvalue of order 1/day: for the explicit method
G0 = 0.1


def _rate_matrix(rates: dict[str, float] = RATES) -> np.ndarray:
    k = rates
    return np.array([[-k["k10"] - k["k12"], k["k21"], 0.0],
                     [k["k12"], -k["k21"] - k["k23"], k["k32"]],
                     [0.0, k["k23"], -k["k32"] - k["k30"]]])


def _chain_model(rates: dict[str, float]):
    A = _rate_matrix(rates)
    lam, vec = np.linalg.eig(A)
    slow = np.argsort(np.abs(lam))[:2]
    y0 = np.real(vec[:, slow] @ np.array([1.0, 0.5]))
    y0 *= np.sign(y0[0])
    table = ParameterTable([ParameterRecord(n, v, "1/day", "test", "assumed", "test case", "rate")
                            for n, v in rates.items()])
    b = ModelBuilder(table)
    x1, x2, x3 = (b.state(n, "mg", n, float(v)) for n, v in zip(("x1", "x2", "x3"), y0))
    b.flow("x1", None, b.p("k10") * x1, "elimination")
    b.flow("x1", "x2", b.p("k12") * x1, "transfer")
    b.flow("x2", "x1", b.p("k21") * x2, "transfer")
    b.flow("x2", "x3", b.p("k23") * x2, "transfer")
    b.flow("x3", "x2", b.p("k32") * x3, "transfer")
    b.flow("x3", None, b.p("k30") * x3, "elimination")
    b.observe("total", x1 + x2 + x3, "mg", "all")
    g = b.state("g", "1", "logistic", G0)
    b.flow(None, "g", b.p("r") * g, "growth")
    b.flow("g", None, b.p("r") * g**2 / b.p("cap"), "crowding")
    m = b.build()
    return m, A, y0, np.array([[rates[n] for n in m.parameters]])


@pytest.fixture(scope="module")
def linear():
    """x1 <-> x2 <-> x3 with elimination from x1 and x3 (eigenvalues about -0.6, -2.9 and -1200 per day), and,
    uncoupled, logistic growth of g (nonlinear: order conditions that a linear problem does not check).

    The initial state has no component along the fast mode: fixed steps cannot resolve an initial layer of
    width 1/1200 day, and in it the dense output is only as good as the step (the adaptive solver shortens it)."""
    return _chain_model(RATES)


@pytest.fixture(scope="module")
def nonstiff():
    """The same system with slow rates only (eigenvalues about -0.3 to -4 per day)."""
    return _chain_model(NONSTIFF)


def _exact(A: np.ndarray, y0: np.ndarray, times: np.ndarray) -> np.ndarray:
    chain = np.array([scipy.linalg.expm(A * t) @ y0 for t in times])   # A carries the problem's rates
    r, cap = RATES["r"], RATES["cap"]
    return np.column_stack([chain, cap / (1 + (cap / G0 - 1) * np.exp(-r * times))])


def _fixed_steps(lin, solver: str, h: float, times: np.ndarray):
    m, _, _, params = lin
    # rtol and atol so loose that every step is accepted: the step is h throughout
    return solve(m, params, times, columns=m.state_names, solver=solver, rtol=1e6, atol=1e6,
                 first_step=h, max_step=h)


@pytest.mark.parametrize("solver", SOLVERS)
def test_order_of_convergence_with_fixed_steps(linear, nonstiff, solver):
    tab = TABLEAUS[solver]
    problem = nonstiff if tab.explicit else linear   # fixed steps of an explicit method on the fast mode blow up
    _, A, y0, _ = problem
    t_end = 4.0
    errors, dense_errors = [], []
    for h in (0.4, 0.2, 0.1, 0.05):
        ends = h * np.arange(round(t_end / h) + 1)
        mid = ends[:-1] + h / 2            # halfway through every step: the dense output
        times = np.union1d(ends, mid)
        sol = _fixed_steps(problem, solver, h, times)
        assert sol.status.tolist() == [0]
        assert sol.steps[0] == round(t_end / h) and sol.rejected[0] == 0
        err = np.abs(sol.values[0] - _exact(A, y0, times))
        errors.append(err[np.isin(times, ends)].max(axis=0))     # global error over [0, t_end]
        dense_errors.append(err[np.isin(times, mid)].max(axis=0))
    # halving the step divides the error by 2^order: for the logistic, approaching the order from above; for the
    # linear chain at least that (a linear problem sees only the stability function, which can be of higher order)
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all((orders[:, 3] > tab.order - 0.3) & (orders[:, 3] < tab.order + 0.8)), orders
    assert abs(orders[-1, 3] - tab.order) < 0.25, orders
    assert np.all(orders[:, :3].max(axis=1) > tab.order - 0.3), orders
    # the dense output is one order lower (order 3 for Rodas4, 4 for Rodas5P)
    dense_orders = np.log2(np.array(dense_errors[:-1]) / np.array(dense_errors[1:]))
    assert np.all(dense_orders.max(axis=1) > tab.order - 1 - 0.3), dense_orders


@pytest.mark.parametrize("solver", ROSENBROCK)
def test_stiff_steps_are_not_limited_by_stability(linear, solver):
    """h |lambda| = 600 for the fast mode: stable (L-stable method), and the adaptive solver takes few steps."""
    m, A, y0, params = linear
    sol = _fixed_steps(linear, solver, 0.5, np.array([0.0, 8.0]))
    exact = _exact(A, y0, np.array([8.0]))[0]
    np.testing.assert_allclose(sol.values[0, -1], exact, rtol=0.05)
    adaptive = solve(m, params, np.array([0.0, 8.0]), columns=m.state_names, solver=solver, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(adaptive.values[0, -1], exact, rtol=1e-6)
    dp5 = solve(m, params, np.array([0.0, 8.0]), columns=m.state_names, solver="dp5", rtol=1e-8, atol=1e-12)
    assert adaptive.steps[0] * 10 < dp5.steps[0]


# --------------------------------------------------------------------------------------
# 2. the generated Jacobian and its sparsity pattern
# --------------------------------------------------------------------------------------

def _random_states(mod, q, rng, n):
    y0 = np.empty(mod.N_STATES)
    mod.init(q, y0)
    for _ in range(n):
        yield np.abs(y0) * rng.lognormal(0.0, 1.0, y0.size) + rng.uniform(0.01, 5, y0.size)


@pytest.mark.parametrize("therapy,disease", [("tisa-cel", "b-all"), ("ofatumumab", "ms")])
def test_jacobian_matches_finite_differences(model, therapy, disease):
    mod = compiled(model)
    sc = Scenario.make(therapy, disease, 30)
    pop, _ = sc.patient_inputs(model, typical(model, sc.disease))
    q = full_parameters(model, pop.params)[0]
    ns = mod.N_STATES
    rng = np.random.default_rng(3)
    f_plus, f_minus, jv = np.empty(ns), np.empty(ns), np.empty(mod.N_JAC)
    for y in _random_states(mod, q, rng, 10):
        mod.jac(0.0, y, q, jv)
        J = np.zeros((ns, ns))
        J[mod.JAC_ROW, mod.JAC_COL] = jv
        fd = np.empty((ns, ns))
        for j in range(ns):
            e = 1e-6 * max(abs(y[j]), 1e-3)
            yp, ym = y.copy(), y.copy()
            yp[j] += e
            ym[j] -= e
            mod.rhs(0.0, yp, q, f_plus)
            mod.rhs(0.0, ym, q, f_minus)
            fd[:, j] = (f_plus - f_minus) / (2 * e)
        # 0/0 where a Hill term's argument is exactly zero (no CAR target here: antigen 0); the kernel uses 0
        J = np.where(np.isfinite(J), J, 0.0)
        scale = np.maximum(np.abs(fd), np.abs(J)).max(axis=1, keepdims=True) + 1e-300
        np.testing.assert_allclose(J / scale, fd / scale, atol=1e-5, rtol=0)
    # the pattern holds every entry that is not identically zero: none is missing, none is duplicated
    pattern = set(zip(mod.JAC_ROW.tolist(), mod.JAC_COL.tolist()))
    assert len(pattern) == mod.N_JAC


def test_anti_cd20_terms_reach_the_jacobian(model):
    """``Max(free, 0)`` in the killing term differentiates to a step: rows of CD20+ pools depend on the antibody."""
    mod = compiled(model)
    rows = {(model.state_names[i], model.state_names[j]) for i, j in zip(mod.JAC_ROW, mod.JAC_COL)}
    for pool in ("b_naive_blood", "b_mem_tissue", "b_auto"):
        assert (pool, "mab_central") in rows and (pool, "cd20_target") in rows


def test_jacobian_guard_at_zero_concentration(model):
    """At exactly zero antibody a fractional Hill power gives 0/0 in the Jacobian; the kernel's guard sees NaN,
    not an exception, and the solve of a patient without antibody runs."""
    mod = compiled(model)
    pop = typical(model, diseases()["sle"])
    q = full_parameters(model, pop.params)[0]
    y = np.empty(mod.N_STATES)
    mod.init(q, y)
    jv = np.empty(mod.N_JAC)
    mod.jac(0.0, y, q, jv)   # raises ZeroDivisionError if the error model were Python's
    finite = np.isfinite(jv)
    assert finite.sum() > 0.9 * jv.size
    sol = solve(model, pop.params, np.array([0.0, 100.0]))
    assert sol.status.tolist() == [0]


# --------------------------------------------------------------------------------------
# 3. the fixed-pattern sparse LU
# --------------------------------------------------------------------------------------

def _compile_python(lines: list[str]):
    ns: dict = {}
    exec("\n".join(lines), ns)  # noqa: S102 - our own generated code
    return ns


@pytest.mark.parametrize("seed", range(5))
def test_sparse_lu_solves_like_dense(seed):
    rng = np.random.default_rng(seed)
    n = 25
    mask = rng.random((n, n)) < 0.12
    pattern = [(i, j) for i, j in zip(*np.nonzero(mask)) if i != j]
    lu_plan = plan(n, pattern)
    assert sorted(lu_plan.order) == list(range(n))
    M = np.zeros((n, n))
    for i, j in pattern:
        M[i, j] = rng.normal()
    M += np.diag(5.0 + rng.random(n))   # W = I/(h gamma) - J: dominated by its diagonal for small steps
    a = np.array([M[lu_plan.order[i], lu_plan.order[j]] for i, j in lu_plan.entries])
    f = _compile_python(factor_source(lu_plan))["lu_factor"]
    s = _compile_python(solve_source(lu_plan))["lu_solve"]
    f(a)
    b = rng.normal(size=n)
    x = b.copy()
    s(a, x)
    np.testing.assert_allclose(x, np.linalg.solve(M, b), rtol=1e-10, atol=1e-12)
    factor_ops, solve_ops = operations(lu_plan)
    below = sum(1 for i, j in lu_plan.entries if i > j)      # each sub-diagonal entry is divided at least once
    assert solve_ops == len(lu_plan.entries) and below <= factor_ops <= (n - 1) * n * (n + 1) // 3


@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_sparse_lu_operation_count_of_a_dense_matrix_is_the_textbook_one(n):
    """A full pattern has no sparsity to use: n(n^2 - 1)/3 multiply-adds to factor (Golub and Van Loan), and
    n^2 entries to solve with."""
    lu_plan = plan(n, [(i, j) for i in range(n) for j in range(n) if i != j])
    assert operations(lu_plan) == ((n - 1) * n * (n + 1) // 3, n * n)


def test_model_lu_has_little_fill(model):
    mod = compiled(model)
    assert mod.N_LU <= mod.N_JAC + mod.N_STATES + 10   # Markowitz ordering: hardly any fill-in for this model


# --------------------------------------------------------------------------------------
# 4. the stiff solvers against Dormand-Prince on the full model
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("solver", ROSENBROCK)
def test_agrees_with_dp5_with_doses_and_rescue(model, solver):
    sc = Scenario.make("tisa-cel", "b-all", 120)
    pop = typical(model, sc.disease).with_parameters({"il6_per_kill": 5.0})
    times = np.arange(sc.start, 120.01, 0.5)
    kw = {"columns": model.state_names, "times": times}
    ref = sc.run(pop, solver="dp5", rtol=1e-11, atol=1e-14, **kw)
    sol = sc.run(pop, solver=solver, rtol=1e-9, atol=1e-13, **kw)
    assert ref.status.tolist() == sol.status.tolist() == [0]
    # the rescue fired, at the same time
    assert np.isfinite(ref.trigger_times[0, 0, 0])
    assert sol.trigger_times[0, 0, 0] == pytest.approx(ref.trigger_times[0, 0, 0], abs=1e-7)
    a, b = sol.values[0], ref.values[0]
    scale = np.maximum(np.abs(b), 1e-6 * np.abs(b).max(axis=0))
    rel = np.abs(a - b) / np.where(scale > 0, scale, 1.0)
    t, c = np.unravel_index(rel.argmax(), rel.shape)
    assert rel.max() < 1e-6, f"{model.state_names[c]} at day {times[t]}: {a[t, c]!r} vs {b[t, c]!r}"


@pytest.mark.parametrize("solver", ROSENBROCK)
def test_default_tolerance_is_accurate_with_less_work_than_dp5(model, solver):
    sc = Scenario.make("mb-cart19", "sle", 730)
    pop = typical(model, sc.disease)
    ref = sc.run(pop, solver="dp5", rtol=1e-10, atol=1e-14, columns=model.state_names)
    stiff = sc.run(pop, solver=solver, columns=model.state_names)
    dp5 = sc.run(pop, solver="dp5", columns=model.state_names)
    assert stiff.status.tolist() == [0] and stiff.jac_evals[0] > 0 and dp5.jac_evals[0] == 0
    assert stiff.steps[0] < dp5.steps[0] and stiff.rhs_evals[0] < dp5.rhs_evals[0]
    big = np.abs(ref.values) > 1e-3

    def err(sol):
        return (np.abs(sol.values - ref.values)[big] / np.abs(ref.values)[big]).max()

    # largest on the activated share of CAR-T cells after they re-activate on returning B cells near day 520: a
    # switch-like trigger late in the run, which Rodas5P places about 0.04 day (an hour) off, so the decay that
    # follows is shifted by that much (1.3% of a value falling at 0.33/day); DP5 is off by more
    assert err(stiff) < min(err(dp5), 2e-2)


def test_strong_responders_are_not_limited_by_stiffness(model):
    """Strong CAR-T killing makes explicit steps tiny (DP5 can reach its step limit); not Rosenbrock steps."""
    from cartsim.population import sample

    sc = Scenario.make("kyv-101", "sle", 730)
    pop = sample(model, sc.disease, 64, seed=7)
    dp5 = sc.run(pop, solver="dp5", columns=("b_blood_per_uL",))
    worst = int(np.argmax(dp5.steps))
    assert dp5.steps[worst] > 10_000         # stiff: about 19,000 explicit steps for the strongest responder
    for solver in ROSENBROCK:
        sol = sc.run(pop, solver=solver, columns=("b_blood_per_uL",))
        assert sol.status.tolist() == [0] * 64
        assert sol.steps.max() < 2_500 and sol.steps[worst] * 10 < dp5.steps[worst]


# --------------------------------------------------------------------------------------
# 5. dose, infusion and trigger semantics, for every solver
# --------------------------------------------------------------------------------------

def _doses(model, events) -> Doses:
    return Doses(time=np.array([[e[0] for e in events]], dtype=float),
                 state=np.array([[model.state_index(e[1]) for e in events]], dtype=np.int64),
                 amount=np.array([[e[2] for e in events]], dtype=float),
                 duration=np.array([[e[3] for e in events]], dtype=float))


@pytest.mark.parametrize("solver", SOLVERS)
def test_infusion_and_bolus_match_analytic(model, solver):
    """Fludarabine (first-order elimination): a zero-order infusion, then a bolus at an output time."""
    pop = typical(model, diseases()["healthy"])
    k = model.table.value("k_el_flu")
    rate, t_s, dur, t_b, amount = 60.0, 1.0, 0.5, 3.0, 25.0
    times = np.array([0.0, 0.5, 1.0, 1.2, 1.5, 2.0, 3.0, 3.5, 5.0])
    sol = solve(model, pop.params, times, columns=("flu",), solver=solver, rtol=1e-10, atol=1e-12,
                doses=_doses(model, [(t_s, "flu", rate * dur, dur), (t_b, "flu", amount, 0.0)]))
    assert sol.status.tolist() == [0]
    inf = rate / k * (1 - np.exp(-k * np.clip(times - t_s, 0, dur)))
    inf = np.where(times <= t_s + dur, inf, rate / k * (1 - np.exp(-k * dur)) * np.exp(-k * (times - t_s - dur)))
    expected = inf + np.where(times >= t_b, amount * np.exp(-k * (times - t_b)), 0.0)
    np.testing.assert_allclose(sol.column("flu")[0], expected, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("solver", ROSENBROCK)
def test_trigger_fires_at_threshold_crossing(model, solver):
    sc = Scenario.make("tisa-cel", "b-all", 30)
    pop = typical(model, sc.disease).with_parameters({"il6_per_kill": 5.0})
    sol = sc.run(pop, columns=("il6_signal", "toci_central"), solver=solver)
    tf = float(sol.trigger_times[0, 0, 0])
    assert 0.0 < tf < 30.0
    eps = 1e-7
    times = np.unique(np.concatenate([np.arange(sc.start, 30.0, 0.25), [tf - eps, tf]]))
    fine = sc.run(pop, columns=("il6_signal", "toci_central"), times=times, solver=solver)
    assert fine.trigger_times[0, 0, 0] == tf          # output times do not move the event
    k = int(np.flatnonzero(times == tf)[0])
    threshold = model.table.value("crs_il6_grade2")
    assert fine.column("il6_signal")[0, k - 1] == pytest.approx(threshold, rel=1e-5)
    toci = fine.column("toci_central")[0]
    assert np.all(toci[:k] == 0.0) and toci[k] > 0.0   # an output at the fire time comes after the dose


# --------------------------------------------------------------------------------------
# 6. failures, determinism
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("solver", ROSENBROCK)
def test_failures_are_reported_per_patient(model, solver):
    sc = Scenario.make("mb-cart19", "sle", 100)
    pop = typical(model, sc.disease)
    params = np.repeat(pop.params, 3, axis=0)
    params[1, 0] = np.nan
    p3 = type(pop)(pop.covariates.iloc[[0, 0, 0]].reset_index(drop=True), params, pop.parameter_names)
    sol = sc.run(p3, solver=solver)
    assert sol.status.tolist() == [0, 3, 0]
    assert sol.failures == {1: "non-finite values in the solution"}
    short = sc.run(pop, solver=solver, max_steps=10)
    assert short.status.tolist() == [1] and short.steps[0] == 10


def test_same_numbers_for_any_thread_count_and_batch(model):
    import numba

    from cartsim.population import sample

    sc = Scenario.make("kyv-101", "sle", 365)
    pop = sample(model, sc.disease, 6, seed=11)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = sc.run(pop)
    finally:
        numba.set_num_threads(threads)
    many = sc.run(pop)
    alone = sc.run(type(pop)(pop.covariates.iloc[[4]], pop.params[[4]], pop.parameter_names))
    assert (many.steps > 0).all()   # every patient was taken by some thread
    assert np.array_equal(one.values, many.values, equal_nan=True)
    assert np.array_equal(one.steps, many.steps)
    assert np.array_equal(alone.values[0], many.values[4], equal_nan=True)


def test_unknown_solver_is_rejected(model):
    pop = typical(model, diseases()["healthy"])
    with pytest.raises(ValueError, match="unknown solver"):
        solve(model, pop.params, np.array([0.0, 1.0]), solver="euler")


# --------------------------------------------------------------------------------------
# the method and the step-size controller are data the one driver reads
# --------------------------------------------------------------------------------------

def test_method_and_controller_are_data(linear):
    from cartsim.engine.compile import module_source
    from cartsim.engine.controllers import PREDICTIVE, Controller

    m, _, _, params = linear
    times = np.linspace(0.0, 8.0, 17)
    by_name = solve(m, params, times, solver="rodas5p", rtol=1e-8, atol=1e-12)
    by_object = solve(m, params, times, solver=TABLEAUS["rodas5p"], controller=PREDICTIVE, rtol=1e-8, atol=1e-12)
    assert np.array_equal(by_name.values, by_object.values) and by_name.steps[0] == by_object.steps[0]
    # a controller that may at most double the step needs more steps for the same tolerance, and stays accurate
    slow = solve(m, params, times, solver="rodas5p", controller=Controller(facmax=2.0), rtol=1e-8, atol=1e-12)
    assert slow.steps[0] > by_name.steps[0]
    np.testing.assert_allclose(slow.values, by_name.values, rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="facmin"):
        Controller(facmin=2.0)
    with pytest.raises(ValueError, match="lanes must be one of"):
        module_source(m, lanes=3)
