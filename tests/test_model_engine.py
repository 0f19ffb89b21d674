"""Model and engine checks: steady state, dose and trigger semantics, accuracy
against an independent stiff reference solver, non-negativity and mass balance.

Every test asserts numbers that a wrong model or a wrong solver would change.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import solve_ivp

from cartsim.disease import diseases
from cartsim.engine import Doses, full_parameters, solve
from cartsim.engine.compile import compiled
from cartsim.model import build_model
from cartsim.model.ir import substitute_derived
from cartsim.population import sample, typical
from cartsim.scenario import Scenario


@pytest.fixture(scope="module")
def model():
    return build_model()


def _free_values(model, params_row) -> dict[sp.Symbol, float]:
    return {sp.Symbol(n): float(v) for n, v in zip(model.parameters, params_row)}


def _table_values(model, disease: str) -> dict[sp.Symbol, float]:
    """Free parameter values straight from the table and the disease overrides (not via population.py)."""
    over = diseases()[disease].overrides
    return {sp.Symbol(n): float(over.get(n, model.table.value(n))) for n in model.parameters}


def _q_index(model, name: str) -> int:
    return [*model.parameters, *(n for n, _ in model.derived)].index(name)


def _one_dose(model, t: float, state: str, amount: float, duration: float = 0.0) -> Doses:
    return _doses(model, [(t, state, amount, duration)])


def _doses(model, events) -> Doses:
    return Doses(
        time=np.array([[e[0] for e in events]], dtype=float),
        state=np.array([[model.state_index(e[1]) for e in events]], dtype=np.int64),
        amount=np.array([[e[2] for e in events]], dtype=float),
        duration=np.array([[e[3] for e in events]], dtype=float),
    )


# --------------------------------------------------------------------------------------
# 1. untreated steady state
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("disease", ["healthy", "sle", "ms"])
def test_untreated_steady_state_holds_for_ten_years(model, disease):
    pop = typical(model, diseases()[disease])
    sol = solve(model, pop.params, np.array([0.0, 1825.0, 3650.0]), columns=model.state_names,
                rtol=1e-9, atol=1e-12)
    assert sol.status.tolist() == [0]
    y0, y_end = sol.values[0, 0], sol.values[0, -1]
    assert np.all(np.isfinite(y_end))
    # the engine starts from the model's symbolic initial state
    vals = _table_values(model, disease)
    y0_sym = np.array([float(substitute_derived(model, s.initial).xreplace(vals)) for s in model.states])
    np.testing.assert_allclose(y0, y0_sym, rtol=1e-12, atol=0)
    pools = np.array([not s.cumulative for s in model.states])
    rel = np.abs(sol.values[0, 1:] - y0) / np.maximum(np.abs(y0), 1e-9)
    rel[:, ~pools] = 0.0
    worst = np.unravel_index(rel.argmax(), rel.shape)
    assert rel.max() <= 1e-6, (f"{model.state_names[worst[1]]} drifts from {y0[worst[1]]!r} "
                               f"to {sol.values[0, 1 + worst[0], worst[1]]!r}")
    # cumulative states (expected events so far) grow at a constant rate at steady state
    cum = sol.values[0, :, ~pools]
    np.testing.assert_allclose(cum[:, 2], 2 * cum[:, 1], rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("disease", ["healthy", "sle", "ms"])
def test_untreated_rhs_vanishes_at_initial_state(model, disease):
    vals = _table_values(model, disease)
    init = {sp.Symbol(s.name): substitute_derived(model, s.initial).xreplace(vals) for s in model.states}
    rhs = model.rhs()
    inflows: dict[str, list[sp.Expr]] = {n: [] for n in model.state_names}
    for f in model.flows:  # gross throughput of each state, the scale of cancellation error
        for s in (f.source, f.target):
            if s is not None:
                inflows[s].append(f.rate)
    bad = []
    for name in (s.name for s in model.states if not s.cumulative):
        value = float(substitute_derived(model, rhs[name]).xreplace(init).xreplace(vals))
        gross = sum(abs(float(substitute_derived(model, r).xreplace(init).xreplace(vals))) for r in inflows[name])
        y0 = abs(float(init[sp.Symbol(name)]))
        scale = max(gross, y0, 1e-9)
        if not abs(value) <= 1e-9 * scale:
            bad.append(f"{name}: rhs={value:.3g} (scale {scale:.3g})")
    assert not bad, "; ".join(bad)


# --------------------------------------------------------------------------------------
# 2. a zero CAR-T dose without lymphodepletion is no treatment
# --------------------------------------------------------------------------------------

def _zero_dose_vs_untreated(model):
    treated = Scenario.make("mb-cart19", "sle", 365, dose="0 cells/kg", lymphodepletion="none")
    untreated = Scenario.make("untreated", "sle", 365)
    assert treated.start == untreated.start == 0.0
    pop = typical(model, treated.disease)
    times = untreated.output_times()
    kw = dict(columns=model.state_names, times=times, rtol=1e-12, atol=1e-14)
    a, b = treated.run(pop, **kw), untreated.run(pop, **kw)
    assert a.status.tolist() == b.status.tolist() == [0]
    return a.values[0], b.values[0]


def _rel_diff(a, b):
    return np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-300)


def test_zero_dose_without_lymphodepletion_matches_untreated(model):
    a, b = _zero_dose_vs_untreated(model)
    # car_act (activated share of CAR-T effectors) is checked on its own in the next test
    others = [i for i, n in enumerate(model.state_names) if n != "car_act"]
    rel = _rel_diff(a[:, others], b[:, others])
    worst = others[int(np.unravel_index(rel.argmax(), rel.shape)[1])]
    assert rel.max() <= 1e-9, f"{model.state_names[worst]} differs by {rel.max():.3g} relative"
    for n in ("car_eff", "car_mem", "flu", "cy", "toci_central"):
        assert np.all(a[:, model.state_index(n)] == 0.0), n


def test_zero_dose_leaves_car_activation_share_at_zero(model):
    """No CAR-T cells, no activated CAR-T share: untreated has car_act == 0 throughout."""
    a, b = _zero_dose_vs_untreated(model)
    j = model.state_index("car_act")
    assert np.all(b[:, j] == 0.0)
    worst = float(np.max(np.abs(a[:, j] - b[:, j])))
    assert worst <= 1e-9, f"car_act rises to {worst:.3g} with zero CAR-T cells (antigen alone activates it)"


# --------------------------------------------------------------------------------------
# 3. non-negativity
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("therapy,disease", [("mb-cart19", "sle"), ("tisa-cel", "b-all")])
def test_no_state_goes_negative(model, therapy, disease):
    sc = Scenario.make(therapy, disease, 730)
    sol = sc.run(typical(model, sc.disease), columns=model.state_names)
    assert sol.status.tolist() == [0]
    v = sol.values[0]
    assert np.all(np.isfinite(v))
    neg = np.argwhere(v < 0)
    assert neg.size == 0, [(sol.times[t], model.state_names[c], v[t, c]) for t, c in neg[:5]]
    # and the therapy did something: B cells depleted after infusion
    b = sol.column("b_naive_blood")[0]
    assert b[sol.times == 30.0][0] < 0.1 * b[0]


@pytest.mark.parametrize("solver", ["rodas5p", "dp5"])
def test_decayed_states_are_exactly_zero(model, solver):
    """A state that decays below TINY (1e-250) is zero, never a subnormal number (whose arithmetic is slow).
    Regression: lymphodepleting drugs reached 3e-323 in these patients' daily outputs."""
    sc = Scenario.make("tisa-cel", "b-all", 730)
    sol = sc.run(sample(model, sc.disease, 50, seed=1), columns=model.state_names, solver=solver)
    ok = sol.status == 0   # dp5 stops at max_steps on a strong responder or two (it is not stiff)
    assert ok.sum() >= 45
    v = sol.values[ok]
    tiny = np.argwhere((v > 0) & (v < 1e-250))
    assert tiny.size == 0, [(sol.times[t], model.state_names[c], v[i, t, c]) for i, t, c in tiny[:5]]
    assert (v[:, -1, model.state_index("flu")] == 0).all()   # fludarabine given before day 0 is gone by day 730


# --------------------------------------------------------------------------------------
# 4. the engine against an independent stiff reference (SciPy Radau)
# --------------------------------------------------------------------------------------

def _reference(model, params_row, doses: Doses, t0: float, t_end: float, times: np.ndarray):
    """Radau on a lambdified RHS, restarted at every bolus (amount times the model's bioavailability of its state);
    at a dose time, the post-dose state."""
    vals = _free_values(model, params_row)
    ys = [sp.Symbol(n) for n in model.state_names]
    rhs = model.rhs()
    F = [substitute_derived(model, rhs[n]).xreplace(vals) for n in model.state_names]
    f = sp.lambdify([ys], F, "numpy")
    jf = sp.lambdify([ys], sp.Matrix(F).jacobian(ys), "numpy")
    y = np.array([float(substitute_derived(model, s.initial).xreplace(vals)) for s in model.states])
    d_t, d_s, d_a, d_d = (doses.time[0], doses.state[0], doses.amount[0], doses.duration[0])
    assert np.all(d_d == 0), "reference handles boluses only"
    events = sorted(set(d_t.tolist()) | {t0})
    bounds = [*events, t_end]
    out = np.full((times.size, len(ys)), np.nan)
    for i, ta in enumerate(events):
        for k in np.flatnonzero(d_t == ta):    # times the model's F of the state (NONMEM semantics)
            factor = substitute_derived(model, model.dose_factor(model.state_names[d_s[k]])).xreplace(vals)
            y[d_s[k]] += d_a[k] * float(factor)
        tb = bounds[i + 1]
        r = solve_ivp(lambda t, x: np.asarray(f(x), dtype=float), (ta, tb), y, method="Radau",
                      rtol=1e-11, atol=1e-14, jac=lambda t, x: np.asarray(jf(x), dtype=float),
                      dense_output=True)
        assert r.success, r.message
        last = i == len(events) - 1
        sel = (times >= ta) & ((times < tb) | last)
        out[sel] = r.sol(times[sel]).T
        y = r.y[:, -1].copy()
    return out


@pytest.fixture(scope="module")
def reference_case(model):
    sc = Scenario.make("mb-cart19", "sle", 120, lymphodepletion="autoimmune-erlangen")
    pop = typical(model, sc.disease)
    pop_p, doses = sc.patient_inputs(model, pop)
    times = np.arange(sc.start, 120.01, 0.5)
    ref = _reference(model, pop_p.params[0], doses, sc.start, 120.0, times)
    sol = sc.run(pop, columns=model.state_names, times=times, rtol=1e-10, atol=1e-12)
    return sc, doses, times, ref, sol


def test_engine_matches_radau_reference(model, reference_case):
    sc, doses, times, ref, sol = reference_case
    assert sol.status.tolist() == [0]
    # the typical SLE patient has mild CRS only: no tocilizumab, so the reference needs no trigger
    assert np.all(np.isnan(sol.trigger_times))
    assert np.nanmax(sol.values[0, :, model.state_index("toci_central")]) == 0.0
    # Output times at a later dose time are checked in test_observation_at_dose_time_includes_the_dose
    later_doses = np.setdiff1d(np.unique(doses.time), [sc.start])
    keep = ~np.isin(times, later_doses)
    eng, rf = sol.values[0][keep], ref[keep]
    big = np.abs(rf) > 1e-3
    rel = np.where(big, np.abs(eng - rf) / np.where(big, np.abs(rf), 1.0), 0.0)
    t, c = np.unravel_index(rel.argmax(), rel.shape)
    assert rel.max() <= 1e-6, (f"{model.state_names[c]} at day {times[keep][t]}: engine {eng[t, c]!r}, "
                               f"reference {rf[t, c]!r}")
    # the comparison covers the interesting part: CAR-T expansion and B-cell depletion happened
    j = model.state_index("car_eff")
    assert rf[:, j].max() > 100.0
    jb = model.state_index("b_naive_blood")
    assert rf[times[keep] == 30.0, jb][0] < 0.02 * rf[0, jb]


def test_observation_at_dose_time_includes_the_dose(model, reference_case):
    """Doses come before observations recorded at the same time (engine/events.py; as in mrgsolve)."""
    sc, doses, times, ref, sol = reference_case
    bad = []
    for t_dose in np.unique(doses.time):
        k = int(np.flatnonzero(times == t_dose)[0])
        for s in np.unique(doses.state[0][doses.time[0] == t_dose]):
            e, r = sol.values[0, k, s], ref[k, s]
            if not abs(e - r) <= 1e-6 * abs(r):
                bad.append(f"day {t_dose:g} {model.state_names[s]}: engine {e:.6g}, post-dose {r:.6g}")
    assert not bad, "; ".join(bad)


def test_bolus_at_output_time_is_observed_synthetic(model):
    """Same semantics, minimal case: fludarabine boluses (first-order elimination) at days 1 and 2."""
    pop = typical(model, diseases()["healthy"])
    k = model.table.value("k_el_flu")
    doses = _doses(model, [(1.0, "flu", 25.0, 0.0), (2.0, "flu", 25.0, 0.0)])
    times = np.array([0.0, 1.0, 1.5, 2.0, 3.0])
    sol = solve(model, pop.params, times, columns=("flu",), doses=doses, rtol=1e-10, atol=1e-12)
    e = np.exp(-k * 0.5)
    expected = [0.0, 25.0, 25 * e, 25 * e**2 + 25, (25 * e**2 + 25) * e**2]
    np.testing.assert_allclose(sol.column("flu")[0], expected, rtol=1e-8, atol=1e-12)


# --------------------------------------------------------------------------------------
# 5. mass balance
# --------------------------------------------------------------------------------------

def test_flows_conserve_mass_symbolically(model):
    rhs = model.rhs()
    total = sp.Add(*rhs.values())
    boundary = (sp.Add(*[f.rate for f in model.flows if f.source is None and f.target is not None])
                - sp.Add(*[f.rate for f in model.flows if f.target is None and f.source is not None]))
    assert sp.simplify(substitute_derived(model, total - boundary)) == 0
    # every internal flow enters its two states' rhs with opposite signs, and no other state's
    tags = sp.symbols(f"_flow0:{len(model.flows)}")
    tagged = dataclasses.replace(model, flows=tuple(
        dataclasses.replace(f, rate=f.rate * tag) for f, tag in zip(model.flows, tags)))
    trhs = tagged.rhs()
    internal = 0
    for f, tag in zip(model.flows, tags):
        for name in model.state_names:
            coeff = sp.expand(sp.diff(trhs[name], tag))
            want = (-f.rate if name == f.source else 0) + (f.rate if name == f.target else 0)
            assert sp.expand(coeff - want) == 0, (f.source, f.target, name)
        internal += f.source is not None and f.target is not None
    assert internal >= 10  # the model does have transfers between states


def test_compiled_rhs_matches_symbolic_and_conserves_mass(model):
    """The numba code the engine runs is the symbolic RHS (codegen check), at random states."""
    mod = compiled(model)
    sc = Scenario.make("tisa-cel", "b-all", 30)
    pop, _ = sc.patient_inputs(model, typical(model, sc.disease))
    q = full_parameters(model, pop.params)[0]
    vals = _free_values(model, pop.params[0])
    ys = [sp.Symbol(n) for n in model.state_names]
    rhs = model.rhs()
    f = sp.lambdify([ys], [substitute_derived(model, rhs[n]).xreplace(vals) for n in model.state_names], "numpy")
    inn = [substitute_derived(model, fl.rate).xreplace(vals) for fl in model.flows
           if fl.source is None and fl.target is not None]
    out = [substitute_derived(model, fl.rate).xreplace(vals) for fl in model.flows
           if fl.target is None and fl.source is not None]
    boundary = sp.lambdify([ys], sp.Add(*inn) - sp.Add(*out), "numpy")
    # derived parameters: compiled derive == symbolic expansion
    for name, expr in model.derived:
        want = float(substitute_derived(model, sp.Symbol(name)).xreplace(vals))
        assert q[_q_index(model, name)] == pytest.approx(want, rel=1e-12, abs=1e-300), name
    rng = np.random.default_rng(1)
    y_init = np.empty(len(ys))
    mod.init(q, y_init)
    for _ in range(20):
        y = np.abs(y_init) * rng.lognormal(0.0, 1.0, len(ys)) + rng.uniform(0, 5, len(ys))
        dy = np.empty(len(ys))
        mod.rhs(0.0, y, q, dy)
        want = np.asarray(f(y), dtype=float)
        np.testing.assert_allclose(dy, want, rtol=1e-10, atol=1e-9 * np.abs(want).max())
        assert dy.sum() == pytest.approx(float(boundary(y)), rel=1e-9, abs=1e-9 * np.abs(dy).max())


@pytest.mark.parametrize("n", [0.0, 1.0, 2.0, 3.0, 4.0, 2.81, 0.5, -1.0, -2.0, 5.0])
def test_generated_power_matches_pow(model, n):
    """Powers with a run-time exponent (whole ones multiplied out) agree with libm's pow, special values included."""
    pw = compiled(model)._pow
    xs = [0.0, 1e-300, 3e-7, 0.5, 1.0, 7.25, 3e5, 1e100, -2.5, np.inf, np.nan]
    for x in xs:
        with np.errstate(all="ignore"):
            want = np.power(x, n)
        got = pw(x, n)
        assert (np.isnan(got) and np.isnan(want)) or got == pytest.approx(want, rel=4e-16, abs=0.0), (x, n)


# --------------------------------------------------------------------------------------
# 6. state-triggered rescue dose (tocilizumab at CRS grade 2)
# --------------------------------------------------------------------------------------

def test_tocilizumab_trigger_fires_once_at_threshold(model):
    sc = Scenario.make("tisa-cel", "b-all", 30)
    # no tocilizumab-resistant share of the signal, so that the blockade shows in full
    pop = typical(model, sc.disease).with_parameters({"il6_per_kill": 5.0, "crs_toci_resistant": 0.0})
    cols = ("il6_signal", "toci_central")
    first = sc.run(pop, columns=cols)
    assert first.status.tolist() == [0]
    assert first.trigger_times.shape == (1, len(sc.triggers(model)), 1) == (1, 1, 1)   # the rescue alone
    fires = first.trigger_times[0, 0]
    assert np.sum(np.isfinite(fires)) == 1
    tf = float(fires[0])
    assert 0.0 < tf < sc.days

    threshold = model.table.value("crs_il6_grade2")
    weight = float(pop.column("weight_kg")[0])
    dose = min(8.0 * weight, 800.0)
    assert full_parameters(model, pop.params)[0, _q_index(model, "toci_dose_mg")] == pytest.approx(dose)

    eps = 1e-9
    grid = np.arange(sc.start, sc.days, 0.001)
    times = np.unique(np.concatenate([grid, [tf - eps, tf, tf + eps]]))
    sol = sc.run(pop, columns=cols, times=times)
    assert sol.status.tolist() == [0]
    assert sol.trigger_times[0, 0, 0] == tf  # output times do not move the event
    sig, toci = sol.column("il6_signal")[0], sol.column("toci_central")[0]
    k = int(np.flatnonzero(times == tf)[0])

    # the trigger is the first upward crossing of the threshold
    assert np.all(sig[times < tf - eps / 2] < threshold * (1 + 1e-6))
    before = times < tf
    t_b, s_b = times[before], sig[before]
    i = int(np.argmax(s_b >= threshold * (1 - 1e-6)))
    assert i > 0  # reached just before the fire time (left limit)
    assert abs(t_b[i] - tf) <= 0.001
    assert sig[k - 1] == pytest.approx(threshold, rel=1e-6)  # left limit

    # the rescue dose: nothing before, one jump of exactly one dose at tf; an output
    # exactly at the fire time is recorded after the dose (as for scheduled doses)
    assert np.all(toci[times < tf] == 0.0)
    assert toci[k] - toci[k - 1] == pytest.approx(dose, rel=1e-6)
    jumps = np.flatnonzero(np.diff(toci) > 0.5 * dose)
    assert times[jumps + 1].tolist() == [tf]
    # and tocilizumab blocks the signal afterwards
    assert sig[k + 1] < 0.1 * threshold


# --------------------------------------------------------------------------------------
# 7. infusions and boluses
# --------------------------------------------------------------------------------------

def test_infusion_delivers_its_amount_linearly(model):
    """With elimination switched off, fludarabine exposure is the amount delivered so far."""
    pop = typical(model, diseases()["healthy"]).with_parameters({"k_el_flu": 0.0})
    events = [(1.0, "flu", 30.0, 0.5),    # 60/day over [1, 1.5]
              (1.25, "flu", 10.0, 2.0),   # 5/day over [1.25, 3.25], overlapping
              (3.25, "flu", 7.0, 1.0),    # starts exactly when the previous one stops
              (5.0, "flu", 4.0, 0.0)]     # and a bolus
    # (no output exactly at the bolus time: that case is test_bolus_at_output_time_is_observed_synthetic)
    times = np.array([0.0, 1.0, 1.2, 1.25, 1.4, 1.5, 2.0, 3.25, 3.75, 4.25, 4.9, 5.1, 6.0])

    def delivered(t):
        total = 0.0
        for t_s, _, amount, dur in events:
            if dur == 0:
                total += amount * (t >= t_s)
            else:
                total += amount * min(max((t - t_s) / dur, 0.0), 1.0)
        return total

    sol = solve(model, pop.params, times, columns=("flu",), doses=_doses(model, events),
                t0=0.0, rtol=1e-10, atol=1e-12)
    assert sol.status.tolist() == [0]
    np.testing.assert_allclose(sol.column("flu")[0], [delivered(t) for t in times], rtol=1e-9, atol=1e-12)


def test_infusion_with_first_order_elimination_matches_analytic(model):
    pop = typical(model, diseases()["healthy"])
    k = model.table.value("k_el_flu")
    amount, dur, t_s = 30.0, 0.5, 1.0
    times = np.linspace(0.0, 6.0, 61)
    sol = solve(model, pop.params, times, columns=("flu",), doses=_one_dose(model, t_s, "flu", amount, dur),
                rtol=1e-10, atol=1e-12)
    rate = amount / dur
    during = rate / k * (1 - np.exp(-k * np.clip(times - t_s, 0, dur)))
    expected = np.where(times <= t_s + dur, during, rate / k * (1 - np.exp(-k * dur)) * np.exp(-k * (times - t_s - dur)))
    np.testing.assert_allclose(sol.column("flu")[0], expected, rtol=1e-8, atol=1e-12)


def test_short_infusion_approaches_bolus(model):
    pop = typical(model, diseases()["healthy"])
    amount = 560.0
    times = np.array([0.0, 1.5, 3.0, 10.0])
    cols = ("toci_central", "toci_peripheral")
    kw = dict(columns=cols, t0=0.0, rtol=1e-10, atol=1e-12)
    bolus = solve(model, pop.params, times, doses=_one_dose(model, 1.0, "toci_central", amount, 0.0), **kw)
    short = solve(model, pop.params, times, doses=_one_dose(model, 1.0, "toci_central", amount, 1e-4), **kw)
    long_ = solve(model, pop.params, times, doses=_one_dose(model, 1.0, "toci_central", amount, 1.0), **kw)
    for s in (bolus, short, long_):
        assert s.status.tolist() == [0]
        assert np.all(s.values[0, 0] == 0.0)
    # at day 10 (and earlier, after the infusion), a 1e-4-day infusion is a bolus to within 1e-4
    np.testing.assert_allclose(short.values[0, 1:], bolus.values[0, 1:], rtol=1e-4)
    assert bolus.values[0, -1, 0] > 1.0  # tocilizumab still present at day 10: a meaningful comparison
    # a 1-day infusion delivers the same amount later: less eliminated by day 10, so more is left,
    # but not more than was given
    total_long = long_.values[0, -1].sum()
    assert bolus.values[0, -1].sum() < total_long < amount


def test_a_dose_before_t0_is_refused_not_given_late(model):
    """The solver starts at t0: a dose before it used to be given at t0 without a word (mrgsolve and NONMEM
    refuse records before the start)."""
    pop = typical(model, diseases()["healthy"])
    doses = _doses(model, [(-1.0, "flu", 25.0, 0.0), (2.0, "flu", 25.0, 0.0)])
    with pytest.raises(ValueError, match=r"patient 0: a dose entering at time -1 comes before t0 = 0"):
        solve(model, pop.params, np.array([0.0, 1.0]), columns=("flu",), doses=doses)
    unused = _doses(model, [(-1.0, "flu", 0.0, 0.0), (2.0, "flu", 25.0, 0.0)])   # an empty slot is no dose
    assert solve(model, pop.params, np.array([0.0, 3.0]), columns=("flu",), doses=unused).values[0, -1, 0] > 0


# --------------------------------------------------------------------------------------
# dose records: one form, NONMEM semantics
# --------------------------------------------------------------------------------------

def test_dose_record_lag_and_bioavailability(model):
    """A dose with ALAG 1.5 and F 0.4 is the dose F * AMT given 1.5 days later, exactly."""
    from cartsim.engine import DoseRecord, Doses

    params = np.array([[model.table.value(p) for p in model.parameters]])
    times = np.linspace(0.0, 10.0, 41)
    late = Doses.from_records([[DoseRecord(1.0, "toci_central", 400.0, 0.5, bioavailability=0.4, lag=1.5)]],
                              model.state_names)
    plain = Doses.from_records([[DoseRecord(2.5, "toci_central", 160.0, 0.5)]], model.state_names)
    a = solve(model, params, times, ("toci_central",), late)
    b = solve(model, params, times, ("toci_central",), plain)
    assert np.array_equal(a.values, b.values) and a.values[0, times == 2.5, 0][0] == 0.0
    assert a.values.max() > 0.0


def test_car_t_infusion_is_split_by_the_models_bioavailability(model):
    """A dose record counts CAR+ cells; the model's F puts (1 - share) of them in car_eff, share in car_mem and
    (1 - transduction) / transduction untransduced T cells per CAR+ cell in t_endo. At t0 the outputs are the
    initial state plus F * AMT, exactly; other states' doses are not scaled."""
    from cartsim.engine import DoseRecord, Doses

    values = {p: model.table.value(p) for p in model.parameters} | {"car_memory_share": 0.25, "car_transduction": 0.4}
    params = np.array([[values[p] for p in model.parameters]])
    cols = ("car_eff", "car_mem", "t_endo", "flu")
    base = solve(model, params, np.array([0.0]), cols).values[0, 0]
    recs = [DoseRecord(0.0, s, 8.0) for s in ("car_eff", "car_mem", "t_endo", "flu")]
    got = solve(model, params, np.array([0.0]), cols, Doses.from_records([recs], model.state_names)).values[0, 0]
    assert got.tolist() == [8.0 * (1 - 0.25), 8.0 * 0.25, base[2] + 8.0 * ((1 - 0.4) / 0.4), base[3] + 8.0]
    assert model.dose_factor("flu") == 1 and "car_transduction" in str(model.dose_factor("t_endo"))


def test_bioavailability_must_name_a_state_once():
    from cartsim.model.ir import ModelBuilder
    from cartsim.model.parameters import ParameterRecord, ParameterTable

    b = ModelBuilder(ParameterTable([ParameterRecord("f", 0.5, "1", "test", "assumed", "test", "x")]))
    b.state("x", "1", "x", 0.0)
    with pytest.raises(KeyError, match="undeclared state 'y'"):
        b.bioavailability("y", b.p("f"), "no such state")
    b.bioavailability("x", b.p("f"), "half")
    with pytest.raises(ValueError, match="defined twice"):
        b.bioavailability("x", b.p("f"), "again")
    assert b.build().dose_factor("x") == sp.Symbol("f")


def test_dose_records_round_trip_through_arrays_and_nonmem(model):
    from cartsim.engine import DoseRecord, Doses

    recs = [[DoseRecord(0.0, "car_eff", 3.0, kind="car-t", label="x"), DoseRecord(14.0, "mab_central", 600.0, 0.125)],
            [DoseRecord(-5.0, "flu", 30.0)]]
    doses = Doses.from_records(recs, model.state_names)
    assert doses.time.shape == (2, 2) and doses.amount[1, 1] == 0.0      # the shorter patient is padded
    back = doses.records(0, model.state_names)
    assert [(r.time, r.state, r.amount, r.duration) for r in back] == [(0.0, "car_eff", 3.0, 0.0),
                                                                        (14.0, "mab_central", 600.0, 0.125)]
    row = recs[0][1].nonmem(model.state_names)
    assert row == {"TIME": 14.0, "AMT": 600.0, "RATE": 4800.0, "EVID": 1,
                   "CMT": model.state_index("mab_central") + 1}
    assert DoseRecord.from_nonmem(row["TIME"], row["CMT"], row["AMT"], row["RATE"], model.state_names) == recs[0][1]
    with pytest.raises(ValueError, match="bioavailability"):
        DoseRecord(0.0, "flu", 1.0, bioavailability=1.5)
    with pytest.raises(ValueError, match="dose kind"):
        DoseRecord(0.0, "flu", 1.0, kind="pill")
    with pytest.raises(ValueError, match="unknown state"):
        Doses.from_records([[DoseRecord(0.0, "nope", 1.0)]], model.state_names)
    with pytest.raises(ValueError, match="doses are for 2 patients"):
        solve(model, np.array([[model.table.value(p) for p in model.parameters]]), np.array([0.0, 1.0]),
              doses=doses)


def test_an_event_must_name_what_the_model_has():
    from cartsim.model.parameters import ParameterRecord, ParameterTable
    from cartsim.model.ir import ModelBuilder

    table = ParameterTable([ParameterRecord(n, 1.0, "1", "test", "assumed", "test", "x") for n in ("k", "thr", "amt")])
    b = ModelBuilder(table)
    x = b.state("x", "1", "x", 1.0)
    b.flow("x", None, b.p("k") * x, "decay")
    with pytest.raises(KeyError, match="undeclared state 'y'"):
        b.event("dose", "obs", "thr", "y", "amt", "a dose")
    b.event("dose", "obs", "thr", "x", "amt", "a dose")
    with pytest.raises(KeyError, match="undeclared observable 'obs'"):
        b.build()
    b.observe("obs", x, "1", "x itself")
    assert b.build().event("dose").threshold == "thr"


def _generated_by_name(names: list[str]) -> str:
    """The generated code of a small model whose parameters are declared in the order ``names`` (their order in
    ``q``), with every ``q[i]`` written back as its parameter's name."""
    import re

    from cartsim.engine.codegen import generate
    from cartsim.model.ir import ModelBuilder
    from cartsim.model.parameters import ParameterRecord, ParameterTable

    table = ParameterTable([ParameterRecord(n, 1.0, "1", "test", "assumed", "test", "x")
                           for n in [*names, "rate"]])
    b = ModelBuilder(table)
    for n in names:
        b.p(n)
    x = b.state("x", "1", "x", 1.0)
    y = b.state("y", "1", "y", 0.0)
    rate = b.derive("rate", b.p("k_a") * b.p("k_b") + b.p("k_c"))
    b.flow("x", "y", b.p("k_c") * b.p("k_a") * b.p("k_b") * x / (x + b.p("k_d")), "transfer")
    b.flow("y", None, rate * y, "loss")
    model = b.build()
    q = [*model.parameters, *(n for n, _ in model.derived)]
    code = generate(model)
    return re.sub(r"q\[(\d+)\]", lambda m: q[int(m.group(1))] if int(m.group(1)) < len(q) else m.group(0), code)


def test_generated_arithmetic_does_not_depend_on_parameter_order():
    """Regression: terms were ordered by array index (``q[104]`` before ``q[12]``), so inserting a parameter in the
    table re-associated products elsewhere and moved every result at rounding level."""
    names = ["k_a", "k_b", "k_c", "k_d"]
    one = _generated_by_name(names)
    other = _generated_by_name(names[::-1])
    assert one[one.index("def derive"):] == other[other.index("def derive"):]
    assert "k_a*k_b*k_c" in one.replace(" ", "")
