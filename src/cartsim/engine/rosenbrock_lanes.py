"""The Rosenbrock solver of ``rosenbrock.py``, run on ``LANES`` patients at once in SIMD lanes.

Each worker thread keeps ``LANES`` patients in flight. Every pass of its loop
makes one step attempt for each of them, each lane with its own time, step
size, doses and events: the arithmetic of the attempt (right-hand sides,
Jacobian, LU factorisation and solves, stage combinations, error norms) runs
on all lanes together, in the vector functions that :mod:`cartsim.engine.lanes`
generates from the model code, and the decisions (accept or reject, triggers,
outputs, doses) are then taken lane by lane, exactly as the one-patient kernel
takes them. A lane whose patient is done takes the next one at once.

Every lane computes the same operations in the same order as
``_ros_solve_one``, so the results are bit-identical to the one-patient kernel
(tested): a patient's numbers do not depend on which patients share its lanes.
Where the one-patient kernel skips work (the right-hand side and Jacobian of a
retried step, a factorisation for an unchanged step size), the lanes redo it
for every lane at once; recomputing from the same inputs gives the same values.

This file is not imported on its own: :mod:`cartsim.engine.compile` appends it
after ``rosenbrock.py`` (whose helpers it shares) to the generated model code.
"""

import math

import numba as nb
import numpy as np

from cartsim.engine.lanes import lane_loops, translatable, vectorize

LANES = 4   # patients per vector: 4 doubles fill an AVX2 register (8 ran no faster on AVX-512)
# None when every model function translates to vector code; else why not, and solve() uses _ros_solve_one
SIMD_UNSUPPORTED = (translatable(rhs) or translatable(jac) or translatable(lu_load, drop=())  # noqa: F821
                    or translatable(lu_factor, drop=()) or translatable(lu_solve, drop=()))  # noqa: F821
_rhs_lanes = vectorize(rhs, LANES)  # noqa: F821 - generated model code
_jac_lanes = vectorize(jac, LANES)  # noqa: F821
_lu_load_lanes = vectorize(lu_load, LANES, drop=())  # noqa: F821
_lu_factor_lanes = vectorize(lu_factor, LANES, drop=())  # noqa: F821
_lu_solve_lanes = vectorize(lu_solve, LANES, drop=())  # noqa: F821
_axpy, _blend, _error_norm = lane_loops(LANES)

@nb.njit(cache=True, _nrt=False)
def _columns_at(t, y, q, cols, out, i, k):
    """Output row ``k`` of patient ``i`` (``out`` is the whole batch's: no view of a shared array per step)."""
    ns = y.shape[0]
    for c in range(cols.shape[0]):
        j = cols[c]
        out[i, k, c] = y[j] if j < ns else observable(j - ns, t, y, q)  # noqa: F821 - generated model code


@nb.njit(cache=True, _nrt=False)
def _record_until_at(t, y, q, cols, t_out, out, i, k_out):
    while k_out < t_out.shape[0] and t_out[k_out] <= t:
        _columns_at(t, y, q, cols, out, i, k_out)
        k_out += 1
    return k_out


@nb.njit(cache=True, _nrt=False)
def _fill(a, value):
    for m in range(a.shape[0]):
        a[m] = value


@nb.njit(cache=True, _nrt=False)
def _stage_argument_lanes(A, K, y, st, incremental, coef, out):
    """``_stage_argument`` in every lane: ``out = y + sum_{j<st} A[st, j] K[j]``, in the same order."""
    ns = y.shape[0] // LANES
    if incremental:
        _fill(coef, A[st, st - 1])
        _axpy(out, coef, K, (st - 1) * ns)
        return
    for m in range(y.shape[0]):
        out[m] = y[m]
    for j in range(st):
        _fill(coef, A[st, j])
        _axpy(out, coef, K, j * ns)   # skipped where the coefficient is 0, as there


@nb.njit(cache=True, _nrt=False)
def _ros_dense_lane(y_old, y_new, K, lane, H, theta, out):
    """``_ros_dense`` for one lane (``y_old``, ``y_new`` that lane's; its stages read in place from ``K``)."""
    ns = y_old.shape[0]
    for i in range(ns):
        out[i] = (1.0 - theta) * y_old[i] + theta * y_new[i]
    for j in range(H.shape[1]):
        w = _dense_weight(H, j, theta)  # noqa: F821 - rosenbrock.py
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
def _to_lane(src, dst, lane):
    for i in range(src.shape[0]):
        dst[i * LANES + lane] = src[i]


@nb.njit(cache=True, _nrt=False)
def _from_lane(src, lane, dst):
    for i in range(dst.shape[0]):
        dst[i] = src[i * LANES + lane]


@nb.njit(cache=True)
def _lanes_worker(counter, p, act_t, act_s, act_bolus, act_rate, n_act,
                  trig_obs, trig_thr, trig_state, trig_amt,
                  t0, t_out, cols, rtol, atol, max_steps, first_step, max_step, out, fires, status, stats,
                  A, C, H, gamma, expo):
    """One thread's share of the batch: patients taken from ``counter`` one at a time, ``LANES`` in flight."""
    ns = atol.shape[0]
    s = C.shape[0]
    nq = N_Q + N_C  # noqa: F821 - generated model code
    n_trig = trig_obs.shape[0]
    max_fires = fires.shape[2]
    t_final = t_out[t_out.shape[0] - 1]
    n_out = t_out.shape[0]
    incremental = _incremental_rows(A)  # noqa: F821 - rosenbrock.py

    # flat, lanes-last vectors (element k of lane l at k * LANES + l) for the vector functions
    yv = np.zeros(ns * LANES)
    qv = np.zeros(nq * LANES)
    uv = np.zeros(ns * LANES)
    f0 = np.zeros(ns * LANES)
    jv = np.zeros(N_JAC * LANES)  # noqa: F821
    lu = np.zeros(N_LU * LANES)  # noqa: F821
    K = np.zeros(s * ns * LANES)   # stage j's vector v at j * ns + v
    y_stage = np.zeros(ns * LANES)
    r = np.zeros(ns * LANES)
    c_lu = np.ones(LANES)      # 1 / (h gamma)
    inv_h = np.ones(LANES)
    coef = np.zeros(LANES)
    norm = np.zeros(LANES)
    # each lane's patient, kept as the one-patient kernel keeps it (y, u and q authoritative here)
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
    fresh = np.zeros(LANES, dtype=np.bool_)
    retry = np.zeros(LANES, dtype=np.bool_)
    h_acc = np.zeros(LANES)
    err_acc = np.zeros(LANES)
    infusing = np.zeros(LANES, dtype=np.bool_)
    n_fired = np.zeros((LANES, n_trig), dtype=np.int64)
    g_old = np.zeros((LANES, n_trig))
    g_new = np.zeros((LANES, n_trig))
    # scratch for one lane's scalar work
    obs = np.empty(N_OBS)  # noqa: F821
    y_new = np.empty(ns)
    y_dense = np.empty(ns)
    f_lane = np.empty(ns)

    refill = np.ones(LANES, dtype=np.bool_)   # lanes that need their next patient or their next segment
    while True:
        # ---- lane by lane: take patients, start segments (the outer loop of _ros_solve_one), finish patients
        for lane in range(LANES):
            while refill[lane]:
                if patient[lane] < 0:
                    i = _next_patient(counter)  # noqa: F821 - kernel.py
                    if i >= p.shape[0]:
                        idle[lane] = True
                        refill[lane] = False
                        break
                    patient[lane] = i
                    derive(p[i], ql[lane])  # noqa: F821
                    init(ql[lane], yl[lane])  # noqa: F821
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
                    status[i] = STATUS_OK  # noqa: F821
                i = patient[lane]
                t = tl[lane]
                al[lane] = _apply_actions(t, yl[lane], ul[lane], al[lane], n_act[i], act_t[i], act_s[i],  # noqa: F821
                                          act_bolus[i], act_rate[i])
                infusing[lane] = _any_nonzero(ul[lane])  # noqa: F821 - kernel.py
                k_out[lane] = _record_until_at(t, yl[lane], ql[lane], cols, t_out, out, i, k_out[lane])
                if t >= t_final:
                    _finish(lane, patient, refill, stats, steps, rejected, n_rhs, n_jac)
                    continue   # take the next patient
                a = al[lane]
                t_seg[lane] = act_t[i, a] if a < n_act[i] and act_t[i, a] < t_final else t_final
                _trigger_values(t, yl[lane], ql[lane], obs, trig_obs, trig_thr, g_old[lane])  # noqa: F821
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
        _jac_lanes(yv, qv, jv)
        for k in range(jv.shape[0]):
            if not math.isfinite(jv[k]):
                jv[k] = 0.0
        # ---- lane by lane: the step size (as at the top of _ros_solve_one's inner loop)
        for lane in range(LANES):
            attempt[lane] = False
            if idle[lane]:
                continue
            if not fresh[lane]:
                n_rhs[lane] += 1
                n_jac[lane] += 1
                fresh[lane] = True
                if hl[lane] <= 0.0:
                    _from_lane(f0, lane, f_lane)
                    hl[lane] = _initial_step(yl[lane], f_lane, rtol, atol, first_step)  # noqa: F821
            if steps[lane] >= max_steps:
                status[patient[lane]] = STATUS_MAX_STEPS  # noqa: F821
                _finish(lane, patient, refill, stats, steps, rejected, n_rhs, n_jac)
                continue
            t = tl[lane]
            h = min(hl[lane], max_step, t_seg[lane] - t)
            hl[lane] = h
            if h < 1e-12 * max(1.0, abs(t)):
                status[patient[lane]] = STATUS_STEP_TOO_SMALL  # noqa: F821
                _finish(lane, patient, refill, stats, steps, rejected, n_rhs, n_jac)
                continue
            steps[lane] += 1
            attempt[lane] = True
            c_lu[lane] = 1.0 / (h * gamma)
            inv_h[lane] = 1.0 / h
        # ---- all lanes: W = I / (h gamma) - J and its LU (a lane whose step size is unchanged gets the same LU)
        _lu_load_lanes(jv, c_lu, lu)
        _lu_factor_lanes(lu)
        for lane in range(LANES):
            if not attempt[lane]:
                continue
            for k in range(LU_DIAG.shape[0]):  # noqa: F821
                d = lu[LU_DIAG[k] * LANES + lane]  # noqa: F821
                if not math.isfinite(d) or d == 0.0:
                    rejected[lane] += 1
                    retry[lane] = True
                    hl[lane] *= 0.25
                    attempt[lane] = False
                    break
        # ---- all lanes: the stages and the new solution
        for st in range(s):
            if st == 0:
                for m in range(r.shape[0]):
                    r[m] = f0[m]
            else:
                _stage_argument_lanes(A, K, yv, st, incremental[st], coef, y_stage)
                _rhs_lanes(y_stage, qv, r)
                _add_infusions(uv, infusing, r)
                for lane in range(LANES):
                    if attempt[lane]:
                        n_rhs[lane] += 1
            for j in range(st):
                for lane in range(LANES):
                    coef[lane] = C[st, j] * inv_h[lane]
                _axpy(r, coef, K, j * ns)
            _lu_solve_lanes(lu, r)
            base = st * ns * LANES
            for m in range(r.shape[0]):
                K[base + m] = r[m]
        _stage_argument_lanes(A, K, yv, s, incremental[s], coef, y_stage)
        _fill(norm, 0.0)
        _error_norm(norm, K, (s - 1) * ns, yv, y_stage, atol, rtol)

        # ---- lane by lane: accept or reject, events and outputs (the rest of _ros_solve_one's inner loop)
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
                    status[i] = STATUS_NOT_FINITE  # noqa: F821
                    _finish(lane, patient, refill, stats, steps, rejected, n_rhs, n_jac)
                    continue
                hl[lane] = h * 0.2
                continue
            if nrm > 1.0:
                rejected[lane] += 1
                retry[lane] = True
                hl[lane] = h * max(0.2, 0.9 * nrm ** -expo)
                continue

            # accepted
            y = yl[lane]
            q = ql[lane]
            t_stop = t_new
            fired = -1
            for k in range(n_trig):
                if n_fired[lane, k] >= max_fires:
                    continue
                g_new[lane, k] = _trigger_value(t_new, y_new, q, obs, trig_obs, trig_thr, k)  # noqa: F821
                if g_old[lane, k] < 0.0 and g_new[lane, k] >= 0.0:
                    lo = 0.0
                    hi = 1.0
                    for _ in range(60):
                        mid = 0.5 * (lo + hi)
                        _ros_dense_lane(y, y_new, K, lane, H, mid, y_dense)
                        if _trigger_value(t + mid * h, y_dense, q, obs, trig_obs, trig_thr, k) >= 0.0:  # noqa: F821
                            hi = mid
                        else:
                            lo = mid
                    t_hit = t + hi * h
                    if t_hit < t_stop:
                        t_stop = t_hit
                        fired = k
            theta_stop = (t_stop - t) / h
            a = al[lane]
            action_at_stop = fired >= 0 or (t_stop == ts and a < n_act[i] and act_t[i, a] == ts)
            ko = k_out[lane]
            while ko < n_out and (t_out[ko] < t_stop or (t_out[ko] == t_stop and not action_at_stop)):
                _ros_dense_lane(y, y_new, K, lane, H, (t_out[ko] - t) / h, y_dense)
                _nonnegative(y_dense, y_dense)  # noqa: F821 - kernel.py
                _columns_at(t_out[ko], y_dense, q, cols, out, i, ko)
                ko += 1
            k_out[lane] = ko
            if fired >= 0:
                _ros_dense_lane(y, y_new, K, lane, H, theta_stop, y_dense)
                for k in range(ns):
                    y_new[k] = y_dense[k]
                t_new = t_stop
            _nonnegative(y_new, y)  # noqa: F821
            tl[lane] = t_new
            fresh[lane] = False
            if fired >= 0:
                y[trig_state[fired]] += q[trig_amt[fired]]
                fires[i, fired, n_fired[lane, fired]] = t_new
                n_fired[lane, fired] += 1
                k_out[lane] = _record_until_at(t_new, y, q, cols, t_out, out, i, k_out[lane])
                _trigger_values(t_new, y, q, obs, trig_obs, trig_thr, g_old[lane])  # noqa: F821
            else:
                for k in range(n_trig):
                    g_old[lane, k] = g_new[lane, k]
            _to_lane(y, yv, lane)
            # step-size control as in _ros_solve_one
            err = max(nrm, 1e-10)
            grow = min(6.0, max(0.2, 0.9 * err ** -expo))
            if h_acc[lane] > 0.0:
                grow = min(grow, min(6.0, max(0.2, 0.9 * (h / h_acc[lane]) * (err_acc[lane] / err ** 2) ** expo)))
            h_acc[lane] = h
            err_acc[lane] = max(1e-2, err)
            hl[lane] = h * (min(grow, 1.0) if retry[lane] else grow)
            retry[lane] = False
            if not t_new < ts:
                refill[lane] = True   # the segment is done: actions, outputs, the next segment


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


@nb.njit(cache=True, parallel=True)
def solve_batch_rosenbrock_lanes(p, act_t, act_s, act_bolus, act_rate, n_act,
                                 trig_obs, trig_thr, trig_state, trig_amt,
                                 t0, t_out, cols, rtol, atol, max_steps, first_step, max_step, out, fires, status,
                                 stats, A, C, H, gamma, expo, workers):
    """``solve_batch_rosenbrock`` with ``LANES`` patients per vector on each of ``workers`` threads."""
    counter = np.zeros(1, dtype=np.int64)
    for _ in nb.prange(workers):
        _lanes_worker(counter, p, act_t, act_s, act_bolus, act_rate, n_act, trig_obs, trig_thr, trig_state, trig_amt,
                      t0, t_out, cols, rtol, atol, max_steps, first_step, max_step, out, fires, status, stats,
                      A, C, H, gamma, expo)
