"""The one step loop of cartsim's solver: every method, every patient, ``LANES`` patients at once.

Why a hand-written driver: cartsim solves whole virtual populations in one compiled call, each patient with its
own doses, infusions and state-triggered rescue; no library offers per-patient stiff solves with events inside
a compiled batch (SciPy and libRoadRunner loop in Python, diffrax and OrdinaryDiffEq are other runtimes). The
model is stiff (IL-6 elimination at about 4/day, CAR-T killing of B cells at up to several thousand per day), so
the default methods are linearly implicit (Rosenbrock) with the analytic Jacobian.

The method is data (:mod:`cartsim.engine.tableaus`, one transformed form for Rosenbrock and explicit methods)
and so is the step-size controller (:mod:`cartsim.engine.controllers`). One step attempt, with
``W = I / (h gamma) - J``:

    W k_i = f(y + sum_{j<i} A[i, j] k_j) + sum_{j<i} C[i, j] / h * k_j,    y_new = y + sum_j A[s, j] k_j,

one LU factorisation of ``W`` (fixed sparsity pattern, generated code, :mod:`cartsim.engine.sparse_lu`) and
``s`` right-hand sides and solves; an explicit method has ``k_i = h f(...)`` and needs neither. The model is
autonomous (time enters only through doses, and infusion rates are constant between the points where steps
stop), so the ``df/dt`` terms vanish. Then, for an accepted step: state triggers located by bisection on the
dense output, outputs from the dense output, doses at segment ends (``events.py``), and the projection onto
non-negative states.

Each worker thread keeps ``LANES`` patients in flight (``compile.py`` builds the module for 4, the doubles in an
AVX2 register, or 1). Every pass of its loop makes one step attempt for each of them, each lane with its own
time, step size, doses and events: the arithmetic of the attempt (right-hand sides, Jacobian, LU factorisation
and solves, stage combinations, error norms) runs on all lanes together, in the vector functions that
:mod:`cartsim.engine.lanes` generates from the model code, and the decisions (accept or reject, triggers,
outputs, doses) are then taken lane by lane. A lane whose patient is done takes the next one at once. Lanes do
not mix: a patient's numbers are bit-identical whichever patients share its lanes, and with one lane or four
(tested). Work a lane does not need (the right-hand side and Jacobian of a retried step, a factorisation for an
unchanged step size) is redone for every lane at once; recomputing from the same inputs gives the same values.

This file is not imported on its own: :mod:`cartsim.engine.compile` puts it after the generated model code
(:mod:`cartsim.engine.model_interface` lists what that provides), the lane width and ``events.py``, and
compiles the module with numba, caching machine code on disk.
"""

import math
from typing import TYPE_CHECKING

import numba as nb
import numpy as np

from cartsim.engine.lanes import lane_loops, translatable, vectorize

if TYPE_CHECKING:   # defined earlier in the compiled module (the generated model code, then events.py)
    from cartsim.engine.events import (STATUS_MAX_STEPS, STATUS_NOT_FINITE, STATUS_OK, STATUS_STEP_TOO_SMALL,
                                       _any_nonzero, _apply_actions, _columns_at, _initial_step, _next_patient, _nonnegative,
                                       _record_until_at, _trigger_value, _trigger_values)
    from cartsim.engine.model_interface import (LANES, LU_DIAG, N_C, N_JAC, N_LU, N_Q, derive, init, jac,
                                                lu_factor, lu_load, lu_solve, rhs)

# why a model function cannot be translated to vector code, or None (then cartsim.engine.compile refuses it)
UNTRANSLATABLE = (translatable(rhs) or translatable(jac) or translatable(lu_load, drop=())
                  or translatable(lu_factor, drop=()) or translatable(lu_solve, drop=()))
_rhs_lanes = vectorize(rhs, LANES)
_jac_lanes = vectorize(jac, LANES)
_lu_load_lanes = vectorize(lu_load, LANES, drop=())
_lu_factor_lanes = vectorize(lu_factor, LANES, drop=())
_lu_solve_lanes = vectorize(lu_solve, LANES, drop=())
_axpy, _blend, _error_norm = lane_loops(LANES)


@nb.njit(cache=True)
def _incremental_rows(A):
    """Rows of ``A`` that extend the previous row by one entry (Rodas's last stages and solution)."""
    inc = np.zeros(A.shape[0], dtype=np.bool_)
    for st in range(2, A.shape[0]):
        inc[st] = True
        for j in range(st - 1):
            if A[st, j] != A[st - 1, j]:
                inc[st] = False
    return inc


@nb.njit(cache=True, _nrt=False)
def _fill(a, value):
    for m in range(a.shape[0]):
        a[m] = value


@nb.njit(cache=True, _nrt=False)
def _combine(coefs, row, K, n_stages, ns, coef, out):
    """``out += sum_{j < n_stages} coefs[row, j] K[j]`` in every lane, in order, skipping zero coefficients."""
    for j in range(n_stages):
        if coefs[row, j] != 0.0:
            _fill(coef, coefs[row, j])
            _axpy(out, coef, K, j * ns)


@nb.njit(cache=True, _nrt=False)
def _stage_argument(A, K, y, st, incremental, coef, out):
    """``out = y + sum_{j<st} A[st, j] K[j]``; when ``incremental``, ``out`` holds row ``st - 1``'s value."""
    ns = y.shape[0] // LANES
    if incremental:
        _fill(coef, A[st, st - 1])
        _axpy(out, coef, K, (st - 1) * ns)
        return
    for m in range(y.shape[0]):
        out[m] = y[m]
    _combine(A, st, K, st, ns, coef, out)


@nb.njit(cache=True, _nrt=False)
def _dense_weight(H, j, theta):
    """Stage ``j``'s weight in the dense output at ``theta``: th (1 - th) sum_l th^l h_lj."""
    w = 0.0
    power = theta * (1.0 - theta)
    for l in range(H.shape[0]):
        w += H[l, j] * power
        power *= theta
    return w


@nb.njit(cache=True, _nrt=False)
def _dense(y_old, y_new, K, lane, H, theta, out):
    """One lane's solution at ``theta`` (0..1) through the step, from the stages read in place in ``K``:
    (1 - th) y_old + th y_new + sum_j w_j k_j."""
    ns = y_old.shape[0]
    for i in range(ns):
        out[i] = (1.0 - theta) * y_old[i] + theta * y_new[i]
    for j in range(H.shape[1]):
        w = _dense_weight(H, j, theta)
        if w != 0.0:
            base = j * ns * LANES + lane
            for i in range(ns):
                out[i] += w * K[base + i * LANES]


@nb.njit(cache=True, _nrt=False)
def _add_infusions(u, infusing, r):
    for lane in range(LANES):
        if infusing[lane]:
            for i in range(lane, r.shape[0], LANES):
                r[i] += u[i]


@nb.njit(cache=True, _nrt=False)
def _scale(r, hv):
    """``r *= h`` lane by lane (an explicit method's stage, ``k = h f``)."""
    for m in range(r.shape[0]):
        r[m] *= hv[m % LANES]


@nb.njit(cache=True, _nrt=False)
def _to_lane(src, dst, lane):
    for i in range(src.shape[0]):
        dst[i * LANES + lane] = src[i]


@nb.njit(cache=True, _nrt=False)
def _from_lane(src, lane, dst):
    for i in range(dst.shape[0]):
        dst[i] = src[i * LANES + lane]


@nb.njit(cache=True, _nrt=False)
def _finish(lane, patient, refill, stats, steps, rejected, n_rhs, n_jac):
    """Record the lane's patient's work and free the lane for the next patient."""
    i = patient[lane]
    stats[i, 0] = steps[lane]
    stats[i, 1] = rejected[lane]
    stats[i, 2] = n_rhs[lane]
    stats[i, 3] = n_jac[lane]
    patient[lane] = -1
    refill[lane] = True


@nb.njit(cache=True)
def _worker(counter, p, t0, act, trig, method, ctl, res):
    """One thread's share of the batch: patients taken from ``counter`` one at a time, ``LANES`` in flight.
    ``act``, ``trig``, ``method``, ``ctl`` and ``res`` are the named tuples of :mod:`cartsim.engine.arrays`."""
    A, C, H, E = method.A, method.C, method.H, method.E
    explicit = method.explicit
    atol, rtol = ctl.atol, ctl.rtol
    safety, facmin, facmax, expo = ctl.safety, ctl.facmin, ctl.facmax, method.expo
    t_out, cols, out = res.times, res.columns, res.values
    ns = atol.shape[0]
    s = C.shape[0]
    nq = N_Q + N_C
    n_trig = trig.observable.shape[0]
    max_fires = res.fires.shape[2]
    t_final = t_out[t_out.shape[0] - 1]
    n_out = t_out.shape[0]
    incremental = _incremental_rows(A)

    # flat, lanes-last vectors (element k of lane l at k * LANES + l) for the vector functions
    yv = np.zeros(ns * LANES)
    qv = np.zeros(nq * LANES)
    uv = np.zeros(ns * LANES)
    f0 = np.zeros(ns * LANES)
    jv = np.zeros(N_JAC * LANES)
    lu = np.zeros(N_LU * LANES)
    K = np.zeros(s * ns * LANES)   # stage j's vector v at j * ns + v
    y_stage = np.zeros(ns * LANES)
    r = np.zeros(ns * LANES)
    err = np.zeros(ns * LANES)
    c_lu = np.ones(LANES)      # 1 / (h gamma)
    inv_h = np.ones(LANES)
    hv = np.ones(LANES)
    coef = np.zeros(LANES)
    norm = np.zeros(LANES)
    # each lane's patient (y, u and q authoritative here)
    yl = np.zeros((LANES, ns))
    ul = np.zeros((LANES, ns))
    ql = np.zeros((LANES, nq))
    patient = np.full(LANES, -1, dtype=np.int64)   # -1: the lane's next patient is still to be taken
    idle = np.zeros(LANES, dtype=np.bool_)         # no patient left to take
    attempt = np.zeros(LANES, dtype=np.bool_)
    tl = np.zeros(LANES)
    hl = np.zeros(LANES)
    t_seg = np.zeros(LANES)
    al = np.zeros(LANES, dtype=np.int64)
    k_out = np.zeros(LANES, dtype=np.int64)
    steps = np.zeros(LANES, dtype=np.int64)
    rejected = np.zeros(LANES, dtype=np.int64)
    n_rhs = np.zeros(LANES, dtype=np.int64)
    n_jac = np.zeros(LANES, dtype=np.int64)
    fresh = np.zeros(LANES, dtype=np.bool_)        # f and J belong to the lane's current (t, y)
    retry = np.zeros(LANES, dtype=np.bool_)        # the last attempt was rejected: do not grow the step
    h_acc = np.zeros(LANES)                        # the last accepted step and its error (predictive control)
    err_acc = np.zeros(LANES)
    infusing = np.zeros(LANES, dtype=np.bool_)
    n_fired = np.zeros((LANES, n_trig), dtype=np.int64)
    g_old = np.zeros((LANES, n_trig))
    g_new = np.zeros((LANES, n_trig))
    # scratch for one lane's scalar work
    y_new = np.empty(ns)
    y_dense = np.empty(ns)
    f_lane = np.empty(ns)

    refill = np.ones(LANES, dtype=np.bool_)   # lanes that need their next patient or their next segment
    while True:
        # ---- lane by lane: take patients, start the segment up to the next dose action, finish patients
        for lane in range(LANES):
            while refill[lane]:
                if patient[lane] < 0:
                    i = _next_patient(counter)
                    if i >= p.shape[0]:
                        idle[lane] = True
                        refill[lane] = False
                        break
                    patient[lane] = i
                    derive(p[i], ql[lane])
                    init(ql[lane], yl[lane])
                    ul[lane, :] = 0.0
                    _to_lane(ql[lane], qv, lane)
                    tl[lane] = t0
                    hl[lane] = 0.0
                    al[lane] = 0
                    k_out[lane] = 0
                    steps[lane] = 0
                    rejected[lane] = 0
                    n_rhs[lane] = 0
                    n_jac[lane] = 0
                    n_fired[lane, :] = 0
                    g_new[lane, :] = 0.0
                    res.status[i] = STATUS_OK
                i = patient[lane]
                t = tl[lane]
                al[lane] = _apply_actions(t, yl[lane], ul[lane], ql[lane], al[lane], act.count[i], act.time[i],
                                          act.state[i], act.bolus[i], act.rate[i])
                infusing[lane] = _any_nonzero(ul[lane])
                k_out[lane] = _record_until_at(t, yl[lane], ql[lane], cols, t_out, out, i, k_out[lane])
                if t >= t_final:
                    _finish(lane, patient, refill, res.stats, steps, rejected, n_rhs, n_jac)
                    continue   # take the next patient
                a = al[lane]
                t_seg[lane] = act.time[i, a] if a < act.count[i] and act.time[i, a] < t_final else t_final
                _trigger_values(t, yl[lane], ql[lane], trig.observable, trig.threshold, g_old[lane])
                fresh[lane] = False
                retry[lane] = False
                h_acc[lane] = 0.0
                err_acc[lane] = 0.0
                _to_lane(yl[lane], yv, lane)
                _to_lane(ul[lane], uv, lane)
                if t < t_seg[lane]:
                    refill[lane] = False
        if idle.all():
            break

        # ---- all lanes: f(y) and J(y) at each lane's step start (a lane retrying a step gets the same again)
        _rhs_lanes(yv, qv, f0)
        _add_infusions(uv, infusing, f0)
        if not explicit:
            _jac_lanes(yv, qv, jv)
            for k in range(jv.shape[0]):
                if not math.isfinite(jv[k]):
                    jv[k] = 0.0  # 0/0 or infinity where a fractional power meets zero
        # ---- lane by lane: the step size
        for lane in range(LANES):
            attempt[lane] = False
            if idle[lane]:
                continue
            if not fresh[lane]:
                n_rhs[lane] += 1
                if not explicit:
                    n_jac[lane] += 1
                fresh[lane] = True
                if hl[lane] <= 0.0:
                    _from_lane(f0, lane, f_lane)
                    hl[lane] = _initial_step(yl[lane], f_lane, rtol, atol, ctl.first_step)
            if steps[lane] >= ctl.max_steps:
                res.status[patient[lane]] = STATUS_MAX_STEPS
                _finish(lane, patient, refill, res.stats, steps, rejected, n_rhs, n_jac)
                continue
            t = tl[lane]
            h = min(hl[lane], ctl.max_step, t_seg[lane] - t)
            hl[lane] = h
            if h < 1e-12 * max(1.0, abs(t)):
                res.status[patient[lane]] = STATUS_STEP_TOO_SMALL
                _finish(lane, patient, refill, res.stats, steps, rejected, n_rhs, n_jac)
                continue
            steps[lane] += 1
            attempt[lane] = True
            c_lu[lane] = 1.0 / (h * method.gamma)
            inv_h[lane] = 1.0 / h
            hv[lane] = h
        # ---- all lanes: W = I / (h gamma) - J and its LU (a lane whose step size is unchanged gets the same LU)
        if not explicit:
            _lu_load_lanes(jv, c_lu, lu)
            _lu_factor_lanes(lu)
            for lane in range(LANES):
                if not attempt[lane]:
                    continue
                for k in range(LU_DIAG.shape[0]):
                    d = lu[LU_DIAG[k] * LANES + lane]   # holds 1 / pivot
                    if not math.isfinite(d) or d == 0.0:
                        rejected[lane] += 1
                        retry[lane] = True
                        hl[lane] *= 0.25
                        attempt[lane] = False
                        break
        # ---- all lanes: the stages, the new solution and its error estimate
        for st in range(s):
            if st == 0:
                for m in range(r.shape[0]):
                    r[m] = f0[m]
            else:
                _stage_argument(A, K, yv, st, incremental[st], coef, y_stage)
                _rhs_lanes(y_stage, qv, r)
                _add_infusions(uv, infusing, r)
                for lane in range(LANES):
                    if attempt[lane]:
                        n_rhs[lane] += 1
            for j in range(st):
                for lane in range(LANES):
                    coef[lane] = C[st, j] * inv_h[lane]
                _axpy(r, coef, K, j * ns)
            if explicit:
                _scale(r, hv)
            else:
                _lu_solve_lanes(lu, r)   # r becomes k_st
            base = st * ns * LANES
            for m in range(r.shape[0]):
                K[base + m] = r[m]
        _stage_argument(A, K, yv, s, incremental[s], coef, y_stage)
        _fill(norm, 0.0)
        if method.error_stage >= 0:   # stiffly accurate: the error estimate is a stage, read in place
            _error_norm(norm, K, method.error_stage * ns, yv, y_stage, atol, rtol)
        else:
            _fill(err, 0.0)
            _combine(E, 0, K, s, ns, coef, err)   # E is (1, s)
            _error_norm(norm, err, 0, yv, y_stage, atol, rtol)

        # ---- lane by lane: accept or reject, then events and outputs
        for lane in range(LANES):
            if not attempt[lane]:
                continue
            i = patient[lane]
            t = tl[lane]
            h = hl[lane]
            ts = t_seg[lane]
            t_new = t + h if ts - (t + h) > 1e-12 * max(1.0, abs(ts)) else ts
            finite = True
            for k in range(ns):
                y_new[k] = y_stage[k * LANES + lane]
                if not math.isfinite(y_new[k]):
                    finite = False
            nrm = math.sqrt(norm[lane] / ns)
            if not finite or not math.isfinite(nrm):
                rejected[lane] += 1
                retry[lane] = True
                if h < 1e-10:
                    res.status[i] = STATUS_NOT_FINITE
                    _finish(lane, patient, refill, res.stats, steps, rejected, n_rhs, n_jac)
                    continue
                hl[lane] = h * 0.2
                continue
            if nrm > 1.0:
                rejected[lane] += 1
                retry[lane] = True
                hl[lane] = h * max(facmin, safety * nrm ** -expo)
                continue

            # accepted: the first trigger crossing upwards inside the step ends it there
            y = yl[lane]
            q = ql[lane]
            t_stop = t_new
            fired = -1
            for k in range(n_trig):
                if n_fired[lane, k] >= max_fires:
                    continue
                g_new[lane, k] = _trigger_value(t_new, y_new, q, trig.observable, trig.threshold, k)
                if g_old[lane, k] < 0.0 and g_new[lane, k] >= 0.0:
                    lo = 0.0
                    hi = 1.0
                    for _ in range(60):
                        mid = 0.5 * (lo + hi)
                        _dense(y, y_new, K, lane, H, mid, y_dense)
                        if _trigger_value(t + mid * h, y_dense, q, trig.observable, trig.threshold, k) >= 0.0:
                            hi = mid
                        else:
                            lo = mid
                    t_hit = t + hi * h
                    if t_hit < t_stop:
                        t_stop = t_hit
                        fired = k
            theta_stop = (t_stop - t) / h
            a = al[lane]
            # an output exactly at a dose or trigger time is recorded after the action
            action_at_stop = fired >= 0 or (t_stop == ts and a < act.count[i] and act.time[i, a] == ts)
            ko = k_out[lane]
            while ko < n_out and (t_out[ko] < t_stop or (t_out[ko] == t_stop and not action_at_stop)):
                _dense(y, y_new, K, lane, H, (t_out[ko] - t) / h, y_dense)
                _nonnegative(y_dense, y_dense)
                _columns_at(t_out[ko], y_dense, q, cols, out, i, ko)
                ko += 1
            k_out[lane] = ko
            if fired >= 0:
                _dense(y, y_new, K, lane, H, theta_stop, y_dense)
                for k in range(ns):
                    y_new[k] = y_dense[k]
                t_new = t_stop
            _nonnegative(y_new, y)   # no state is negative or subnormal
            tl[lane] = t_new
            fresh[lane] = False
            if fired >= 0:
                y[trig.state[fired]] += q[trig.amount[fired]]
                res.fires[i, fired, n_fired[lane, fired]] = t_new
                n_fired[lane, fired] += 1
                k_out[lane] = _record_until_at(t_new, y, q, cols, t_out, out, i, k_out[lane])
                _trigger_values(t_new, y, q, trig.observable, trig.threshold, g_old[lane])
            else:
                for k in range(n_trig):
                    g_old[lane, k] = g_new[lane, k]
            _to_lane(y, yv, lane)
            # the next step size (controllers.py)
            e = max(nrm, 1e-10)
            grow = min(facmax, max(facmin, safety * e ** -expo))
            if ctl.predictive and h_acc[lane] > 0.0:
                predicted = safety * (h / h_acc[lane]) * (err_acc[lane] / e ** 2) ** expo
                grow = min(grow, min(facmax, max(facmin, predicted)))
            h_acc[lane] = h
            err_acc[lane] = max(1e-2, e)
            hl[lane] = h * (min(grow, 1.0) if retry[lane] else grow)
            retry[lane] = False
            if not t_new < ts:
                refill[lane] = True   # the segment is done: actions, outputs, the next segment


@nb.njit(cache=True, parallel=True)
def solve_batch(p, t0, act, trig, method, ctl, res, workers):
    """Solve every patient (row of ``p``) on ``workers`` threads; one compiled call for the population."""
    counter = np.zeros(1, dtype=np.int64)
    for _ in nb.prange(workers):   # one worker per thread, taking patients as it frees up (events._next_patient)
        _worker(counter, p, t0, act, trig, method, ctl, res)
