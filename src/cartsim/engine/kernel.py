"""Batched Dormand-Prince 5(4) solver with dose events and state triggers (``solver="dp5"``).

The explicit method is kept as an alternative to the default stiff solver
(``rosenbrock.py``, which shares the event and output helpers defined here):
it needs no Jacobian, but the model's stiffness caps its step size, so strong
CAR-T responders take tens of thousands of steps.

Why a hand-written kernel: cartsim must solve whole virtual populations in one
compiled call, with NONMEM-style dosing (boluses, zero-order infusions) and
doses triggered by the model state (tocilizumab when CRS reaches grade 2).
SciPy's solvers are per-patient Python loops; libRoadRunner/CVODE and diffrax
either loop in Python or cannot express state-triggered dosing across a
batch. The method itself is textbook: the Dormand-Prince pair with Shampine's
dense output (the same tableau as ``scipy.integrate.RK45``), standard error
control (Hairer, Norsett & Wanner, Solving ODEs I, II.4), root location of
triggers by bisection on the dense output, and projection onto non-negative
states after each accepted step (Shampine et al., Appl Math Comput 2005;170:556),
in which values below ``TINY`` (1e-250) count as zero.

The helpers called at every step are compiled without numba's reference
counting (``_nrt=False``; they allocate nothing and keep no array): with it,
every call atomically increments and decrements the counts of its array
arguments, which cost about a tenth of the time on one thread, and more on
several, where arrays shared by all patients (tableaus, tolerances, output
columns) have one count that every thread writes. For the same reason the
step loops copy rows element by element and pass ``out`` with a row index
rather than making views.

This file is not imported on its own: :mod:`cartsim.engine.compile` appends it
to the model code generated from the symbolic definition (which provides
``N_STATES``, ``N_Q``, ``N_C``, ``derive``, ``init``, ``rhs`` and ``observable``) and
compiles the result with numba, caching machine code on disk.
"""

import math

import numba as nb
import numpy as np
from numba.core import cgutils
from numba.extending import intrinsic

# Dormand-Prince 5(4) tableau and dense-output matrix (as scipy.integrate.RK45)
_C = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0])
_A = np.array([
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [1 / 5, 0.0, 0.0, 0.0, 0.0],
    [3 / 40, 9 / 40, 0.0, 0.0, 0.0],
    [44 / 45, -56 / 15, 32 / 9, 0.0, 0.0],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0.0],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
])
_B = np.array([35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84])
_E = np.array([-71 / 57600, 0.0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40])
_P = np.array([
    [1.0, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432],
    [0.0, 0.0, 0.0, 0.0],
    [0.0, 131558114200 / 32700410799, -68118460800 / 10900136933, 87487479700 / 32700410799],
    [0.0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072],
    [0.0, 127303824393 / 49829197408, -318862633887 / 49829197408, 701980252875 / 199316789632],
    [0.0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844],
    [0.0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423],
])

STATUS_OK = 0
STATUS_MAX_STEPS = 1
STATUS_STEP_TOO_SMALL = 2
STATUS_NOT_FINITE = 3
# Every state is an amount, a count or a concentration, so none is negative, and one below TINY is zero: 1e-250
# of anything is far below any tolerance, and arithmetic on the subnormal numbers (below 2.2e-308) that decaying
# states reach otherwise is many times slower (a third of the solve time at rtol 1e-5 on this model).
TINY = 1e-250


@nb.njit(cache=True, _nrt=False)
def _rhs_u(t, y, q, u, infusing, dy):
    """The right-hand side plus the zero-order inputs ``u`` of running infusions (when ``infusing``)."""
    rhs(t, y, q, dy)  # noqa: F821 - provided by the generated model code
    if infusing:
        for i in range(y.shape[0]):
            dy[i] += u[i]


@nb.njit(cache=True, _nrt=False)
def _any_nonzero(u):
    for i in range(u.shape[0]):
        if u[i] != 0.0:
            return True
    return False


@nb.njit(cache=True, _nrt=False)
def _nonnegative(src, dst):
    """``dst`` = ``src`` with values below :data:`TINY` (negative ones included) set to 0; True if any changed."""
    changed = 0
    for i in range(src.shape[0]):   # branch-free, so that it vectorises
        v = src[i]
        drop = v < TINY and v != 0.0
        dst[i] = 0.0 if drop else v
        changed |= drop
    return changed != 0


@nb.njit(cache=True, _nrt=False)
def _dense(y_old, K, h, theta, out):
    """Solution at t_old + theta*h from the stages of the last step."""
    th2 = theta * theta
    th3 = th2 * theta
    th4 = th3 * theta
    for i in range(y_old.shape[0]):
        acc = 0.0
        for j in range(7):
            acc += K[j, i] * (_P[j, 0] * theta + _P[j, 1] * th2 + _P[j, 2] * th3 + _P[j, 3] * th4)
        out[i] = y_old[i] + h * acc


@nb.njit(cache=True, _nrt=False)
def _columns(t, y, q, obs, cols, out, k):
    """Output row ``k``: states, and observables each evaluated alone (outputs need a few of them)."""
    ns = y.shape[0]
    for c in range(cols.shape[0]):
        j = cols[c]
        out[k, c] = y[j] if j < ns else observable(j - ns, t, y, q)  # noqa: F821 - generated model code


@nb.njit(cache=True, _nrt=False)
def _trigger_value(t, y, q, obs, trig_obs, trig_thr, k):
    return observable(trig_obs[k], t, y, q) - q[trig_thr[k]]  # noqa: F821


@nb.njit(cache=True, _nrt=False)
def _record_until(t, y, q, obs, cols, t_out, out, k_out):
    """Record the outputs due at or before ``t`` from ``y``, from output ``k_out`` on; return the next one's index."""
    while k_out < t_out.shape[0] and t_out[k_out] <= t:
        _columns(t, y, q, obs, cols, out, k_out)
        k_out += 1
    return k_out


@nb.njit(cache=True, _nrt=False)
def _trigger_values(t, y, q, obs, trig_obs, trig_thr, g):
    """``g[k]``: trigger ``k``'s observable minus its threshold, for every trigger."""
    for k in range(g.shape[0]):
        g[k] = _trigger_value(t, y, q, obs, trig_obs, trig_thr, k)


@nb.njit(cache=True, _nrt=False)
def _fire(k, t, y, q, trig_state, trig_amt, fires_out, n_fired):
    """Trigger ``k`` fires at ``t``: its dose goes into ``y`` and the time is recorded."""
    y[trig_state[k]] += q[trig_amt[k]]
    fires_out[k, n_fired[k]] = t
    n_fired[k] += 1


@nb.njit(cache=True, _nrt=False)
def _apply_actions(t, y, u, a, n_act, act_t, act_s, act_bolus, act_rate):
    """Apply the doses and infusion switches due at ``t``, from action ``a`` on; return the next action's index.
    (Doses come before observations recorded at the same time, as in mrgsolve.)"""
    while a < n_act and act_t[a] <= t:
        y[act_s[a]] += act_bolus[a]
        u[act_s[a]] += act_rate[a]
        if abs(u[act_s[a]]) < 1e-12 * abs(act_rate[a]):
            u[act_s[a]] = 0.0  # an infusion that ended exactly cancels
        a += 1
    return a


@nb.njit(cache=True, _nrt=False)
def _initial_step(y, f, rtol, atol, first_step):
    """The first step size from the scaled norms of ``y`` and ``f = y'`` (Hairer, Norsett & Wanner, Solving
    ODEs I, II.4), or ``first_step`` when given."""
    ns = y.shape[0]
    d0 = 0.0
    d1 = 0.0
    for i in range(ns):
        sc = atol[i] + rtol * abs(y[i])
        d0 += (y[i] / sc) ** 2
        d1 += (f[i] / sc) ** 2
    d0 = math.sqrt(d0 / ns)
    d1 = math.sqrt(d1 / ns)
    h = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    if first_step > 0.0:
        h = first_step
    if not h > 0.0:  # not finite: the right-hand side is not either, and the step will say so
        h = 1e-6
    return h


@nb.njit(cache=True)
def _solve_one(p, act_t, act_s, act_bolus, act_rate, n_act,
               trig_obs, trig_thr, trig_state, trig_amt, fires_out,
               t0, t_out, cols, rtol, atol, max_steps, first_step, max_step, out, stats):
    ns = atol.shape[0]   # N_STATES, read at run time: loops over states are then vectorised, not unrolled
    q = np.empty(N_Q + N_C)  # noqa: F821 - parameters, then per-patient constants
    derive(p, q)  # noqa: F821
    y = np.empty(ns)
    init(q, y)  # noqa: F821
    u = np.zeros(ns)
    obs = np.empty(N_OBS)  # noqa: F821
    K = np.empty((7, ns))
    y_new = np.empty(ns)
    y_stage = np.empty(ns)
    y_dense = np.empty(ns)
    err = np.empty(ns)
    n_trig = trig_obs.shape[0]
    n_fired = np.zeros(n_trig, dtype=np.int64)
    g_old = np.empty(n_trig)
    g_new = np.zeros(n_trig)
    t_final = t_out[t_out.shape[0] - 1]
    n_out = t_out.shape[0]
    k_out = 0
    a = 0
    t = t0
    steps = 0
    rejected = 0
    n_rhs = 0
    h = 0.0
    status = STATUS_OK

    while True:
        a = _apply_actions(t, y, u, a, n_act, act_t, act_s, act_bolus, act_rate)
        infusing = _any_nonzero(u)
        k_out = _record_until(t, y, q, obs, cols, t_out, out, k_out)
        if t >= t_final:
            break
        t_seg = act_t[a] if a < n_act and act_t[a] < t_final else t_final   # the next action ends the segment

        # integrate [t, t_seg] with Dormand-Prince 5(4)
        _rhs_u(t, y, q, u, infusing, K[0])
        n_rhs += 1
        _trigger_values(t, y, q, obs, trig_obs, trig_thr, g_old)
        if h <= 0.0:
            h = _initial_step(y, K[0], rtol, atol, first_step)
        h = min(h, max_step, t_seg - t)
        while t < t_seg:
            if steps >= max_steps:
                status = STATUS_MAX_STEPS
                break
            h = min(h, max_step, t_seg - t)
            if h < 1e-12 * max(1.0, abs(t)):
                status = STATUS_STEP_TOO_SMALL
                break
            for s in range(1, 6):
                for i in range(ns):
                    acc = 0.0
                    for j in range(s):
                        acc += _A[s, j] * K[j, i]
                    y_stage[i] = y[i] + h * acc
                _rhs_u(t + _C[s] * h, y_stage, q, u, infusing, K[s])
            for i in range(ns):
                acc = 0.0
                for j in range(6):
                    acc += _B[j] * K[j, i]
                y_new[i] = y[i] + h * acc
            t_new = t + h if t_seg - (t + h) > 1e-12 * max(1.0, abs(t_seg)) else t_seg
            _rhs_u(t_new, y_new, q, u, infusing, K[6])
            steps += 1
            n_rhs += 6
            norm = 0.0
            finite = True
            for i in range(ns):
                acc = 0.0
                for j in range(7):
                    acc += _E[j] * K[j, i]
                err[i] = h * acc
                sc = atol[i] + rtol * max(abs(y[i]), abs(y_new[i]))
                norm += (err[i] / sc) ** 2
                if not math.isfinite(y_new[i]):
                    finite = False
            norm = math.sqrt(norm / ns)
            if not finite or not math.isfinite(norm):
                rejected += 1
                if h < 1e-10:
                    status = STATUS_NOT_FINITE
                    break
                h *= 0.2
                continue
            if norm > 1.0:
                rejected += 1
                h *= max(0.2, 0.9 * norm ** -0.2)
                continue

            # accepted: look for a state trigger crossing upwards inside the step
            t_stop = t_new
            fired = -1
            for k in range(n_trig):
                if n_fired[k] >= fires_out.shape[1]:
                    continue
                g_new[k] = _trigger_value(t_new, y_new, q, obs, trig_obs, trig_thr, k)
                if g_old[k] < 0.0 and g_new[k] >= 0.0:
                    lo = 0.0
                    hi = 1.0
                    for _ in range(60):
                        mid = 0.5 * (lo + hi)
                        _dense(y, K, h, mid, y_dense)
                        if _trigger_value(t + mid * h, y_dense, q, obs, trig_obs, trig_thr, k) >= 0.0:
                            hi = mid
                        else:
                            lo = mid
                    t_hit = t + hi * h
                    if t_hit < t_stop:
                        t_stop = t_hit
                        fired = k
            theta_stop = (t_stop - t) / h
            # an output exactly at a dose or trigger time is recorded after the action
            action_at_stop = fired >= 0 or (t_stop == t_seg and a < n_act and act_t[a] == t_seg)
            while k_out < n_out and (t_out[k_out] < t_stop or (t_out[k_out] == t_stop and not action_at_stop)):
                theta = (t_out[k_out] - t) / h
                _dense(y, K, h, theta, y_dense)
                _nonnegative(y_dense, y_dense)
                _columns(t_out[k_out], y_dense, q, obs, cols, out, k_out)
                k_out += 1
            if fired >= 0:
                _dense(y, K, h, theta_stop, y_new)
                t_new = t_stop
            projected = _nonnegative(y_new, y)
            t = t_new
            if fired >= 0:
                _fire(fired, t, y, q, trig_state, trig_amt, fires_out, n_fired)
                k_out = _record_until(t, y, q, obs, cols, t_out, out, k_out)
            if fired >= 0 or projected:
                _trigger_values(t, y, q, obs, trig_obs, trig_thr, g_old)
                _rhs_u(t, y, q, u, infusing, K[0])
                n_rhs += 1
            else:
                # First same as last: the step ends at (t_new, y_new) unchanged, where the last stage and
                # the trigger values were just evaluated. Reusing them saves one right-hand side and one
                # observation per step (about a sixth of the work) and gives bit-identical results.
                for k in range(n_trig):
                    g_old[k] = g_new[k]
                for i in range(ns):
                    K[0, i] = K[6, i]
            h *= min(10.0, max(0.2, 0.9 * max(norm, 1e-10) ** -0.2))
        if status != STATUS_OK:
            break
    stats[0] = steps
    stats[1] = rejected
    stats[2] = n_rhs
    stats[3] = 0  # no Jacobian
    return status


@intrinsic
def _fetch_add(typingctx, counter):
    """Atomically add 1 to ``counter[0]`` (int64) and return its previous value."""
    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], arr, [context.get_constant(nb.intp, 0)])
        return builder.atomic_rmw("add", ptr, context.get_constant(nb.int64, 1), "monotonic")
    return nb.int64(counter), codegen


@nb.njit(cache=True, _nrt=False)
def _next_patient(counter):
    """The next patient not yet taken by any thread (dynamic scheduling).

    Why by hand: numba's OpenMP and workqueue layers split a ``prange`` into one contiguous block per thread
    whatever the chunk size, so the thread that draws the slow patients (their cost is heavy-tailed), or whose
    core the host steals for a while, finishes long after the others. Each thread instead takes patients one at
    a time from a shared counter. Which thread solves a patient does not change that patient's numbers."""
    return _fetch_add(counter)


@nb.njit(cache=True, parallel=True)
def solve_batch(p, act_t, act_s, act_bolus, act_rate, n_act,
                trig_obs, trig_thr, trig_state, trig_amt,
                t0, t_out, cols, rtol, atol, max_steps, first_step, max_step, out, fires, status, stats, workers):
    """Solve every patient (row of ``p``) on ``workers`` threads; one compiled call for the population."""
    counter = np.zeros(1, dtype=np.int64)
    for _ in nb.prange(workers):   # one worker per thread, taking patients as it frees up
        i = _next_patient(counter)
        while i < p.shape[0]:
            status[i] = _solve_one(p[i], act_t[i], act_s[i], act_bolus[i], act_rate[i], n_act[i],
                                   trig_obs, trig_thr, trig_state, trig_amt, fires[i],
                                   t0, t_out, cols, rtol, atol, max_steps, first_step, max_step, out[i], stats[i])
            i = _next_patient(counter)
