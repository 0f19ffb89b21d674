"""Batched Rosenbrock (Rodas) solver with dose events and state triggers: the stiff default.

Why a hand-written kernel: cartsim solves whole virtual populations in one
compiled call, one patient per ``prange`` iteration, each with its own doses,
infusions and state-triggered rescue; no library offers per-patient stiff
solves with events inside a numba-compiled batch (SciPy and libRoadRunner loop
in Python, diffrax and OrdinaryDiffEq are other runtimes). The model is stiff
(IL-6 elimination at about 4/day, CAR-T killing of B cells at up to several
thousand per day), which caps an explicit method's steps at its stability
limit; an L-stable linearly implicit method takes steps set by accuracy alone.

Method: Rosenbrock-Wanner methods in the transformed form of Hairer & Wanner,
Solving ODEs II (2nd ed., 1996), section IV.7, as in their code RODAS. With
``W = I / (h gamma) - J`` and ``J`` the analytic Jacobian at the step's start,

    W k_i = f(y + sum_{j<i} a_ij k_j) + sum_{j<i} (c_ij / h) k_j,   i = 1..s,
    y_new = y + sum_j m_j k_j,   error estimate k_s,

one LU factorisation of ``W`` (fixed sparsity pattern, generated code, see
:mod:`cartsim.engine.sparse_lu`) and ``s`` right-hand sides and solves per step.
The model is autonomous (time enters only through doses, and infusion rates
are constant between the points where steps stop), so the ``df/dt`` terms
vanish. Dense output (Hairer & Wanner's for Rodas; Steinebach's for Rodas5P):

    y(t + theta h) = (1 - theta) y + theta (y_new + (1 - theta) (d_1 + theta (d_2 + theta d_3))),
    d_l = sum_j h_lj k_j.

The tableaus (:mod:`cartsim.engine.tableaus`) are passed in as arrays, so one
compiled kernel serves every method. Doses, infusions, state triggers (located
by bisection on the dense output), outputs and the projection onto
non-negative states follow the Dormand-Prince kernel (``kernel.py``) exactly.

``rosenbrock_lanes.py`` runs this algorithm on several patients at once in SIMD
lanes, bit for bit, and is the default; this one-patient kernel is the
reference it is tested against (``solve(..., simd=False)``).

This file is not imported on its own: :mod:`cartsim.engine.compile` appends it,
after ``kernel.py`` (whose event helpers it shares), to the generated model
code (which provides ``rhs``, ``jac``, ``lu_load``, ``lu_factor``, ``lu_solve``,
``N_JAC``, ``N_LU`` and ``LU_DIAG``).
"""

import math

import numba as nb
import numpy as np


@nb.njit(cache=True, _nrt=False)
def _ros_dense(y_old, y_new, K, H, theta, out):
    """The dense output at ``theta`` (0..1 through the step), straight from the stages:
    (1 - th) y_old + th y_new + sum_j w_j k_j with w_j = th (1 - th) sum_l th^l h_lj."""
    ns = y_old.shape[0]
    for i in range(ns):
        out[i] = (1.0 - theta) * y_old[i] + theta * y_new[i]
    for j in range(K.shape[0]):
        w = _dense_weight(H, j, theta)
        if w != 0.0:
            for i in range(ns):
                out[i] += w * K[j, i]


@nb.njit(cache=True, _nrt=False)
def _dense_weight(H, j, theta):
    """Stage ``j``'s weight in the dense output at ``theta``: th (1 - th) sum_l th^l h_lj."""
    w = 0.0
    power = theta * (1.0 - theta)
    for l in range(H.shape[0]):
        w += H[l, j] * power
        power *= theta
    return w


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
def _stage_argument(A, K, y, st, incremental, out):
    """``out = y + sum_{j<st} A[st, j] K[j]``; when ``incremental``, ``out`` holds row ``st - 1``'s value."""
    ns = y.shape[0]
    if incremental:
        a = A[st, st - 1]
        for i in range(ns):
            out[i] += a * K[st - 1, i]
        return
    for i in range(ns):
        out[i] = y[i]
    for j in range(st):
        a = A[st, j]
        if a != 0.0:
            for i in range(ns):
                out[i] += a * K[j, i]


@nb.njit(cache=True, _nrt=False)
def _ros_factor(jv, inv_hg, lu):
    """``lu`` = LU of I / (h gamma) - J; False if a pivot is zero or not finite."""
    lu_load(jv, inv_hg, lu)  # noqa: F821 - provided by the generated model code
    lu_factor(lu)  # noqa: F821
    for i in range(LU_DIAG.shape[0]):  # noqa: F821
        d = lu[LU_DIAG[i]]  # noqa: F821 - holds 1 / pivot
        if not math.isfinite(d) or d == 0.0:
            return False
    return True


@nb.njit(cache=True)
def _ros_solve_one(p, act_t, act_s, act_bolus, act_rate, n_act,
                   trig_obs, trig_thr, trig_state, trig_amt, fires_out,
                   t0, t_out, cols, rtol, atol, max_steps, first_step, max_step, out, stats,
                   A, C, H, gamma, expo):
    ns = atol.shape[0]   # N_STATES, read at run time: loops over states are then vectorised, not unrolled
    s = C.shape[0]
    q = np.empty(N_Q + N_C)  # noqa: F821 - parameters, then per-patient constants
    derive(p, q)  # noqa: F821
    y = np.empty(ns)
    init(q, y)  # noqa: F821
    u = np.zeros(ns)
    obs = np.empty(N_OBS)  # noqa: F821
    f0 = np.empty(ns)
    jv = np.empty(N_JAC)  # noqa: F821
    lu = np.empty(N_LU)  # noqa: F821
    K = np.empty((s, ns))
    y_new = np.empty(ns)
    y_stage = np.empty(ns)
    r = np.empty(ns)
    y_dense = np.empty(ns)
    incremental = _incremental_rows(A)
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
    n_jac = 0
    h = 0.0
    status = STATUS_OK  # noqa: F821 - kernel.py

    while True:
        a = _apply_actions(t, y, u, a, n_act, act_t, act_s, act_bolus, act_rate)  # noqa: F821 - kernel.py
        infusing = _any_nonzero(u)  # noqa: F821 - kernel.py
        k_out = _record_until(t, y, q, obs, cols, t_out, out, k_out)  # noqa: F821 - kernel.py
        if t >= t_final:
            break
        t_seg = act_t[a] if a < n_act and act_t[a] < t_final else t_final   # the next action ends the segment

        _trigger_values(t, y, q, obs, trig_obs, trig_thr, g_old)  # noqa: F821 - kernel.py
        fresh = False      # f0 and J belong to the current (t, y)
        factored = 0.0     # the step size W was factored for (0: none)
        retry = False      # the last attempt was rejected: do not grow the step
        h_acc = 0.0        # the last accepted step and its error (for the predictive controller)
        err_acc = 0.0
        while t < t_seg:
            if not fresh:
                _rhs_u(t, y, q, u, infusing, f0)  # noqa: F821 - kernel.py
                jac(t, y, q, jv)  # noqa: F821
                n_rhs += 1
                n_jac += 1
                for k in range(N_JAC):  # noqa: F821
                    if not math.isfinite(jv[k]):
                        jv[k] = 0.0  # 0/0 or infinity where a fractional power meets zero
                fresh = True
                factored = 0.0
                if h <= 0.0:
                    h = _initial_step(y, f0, rtol, atol, first_step)  # noqa: F821 - kernel.py
            if steps >= max_steps:
                status = STATUS_MAX_STEPS  # noqa: F821
                break
            h = min(h, max_step, t_seg - t)
            if h < 1e-12 * max(1.0, abs(t)):
                status = STATUS_STEP_TOO_SMALL  # noqa: F821
                break
            steps += 1
            if h != factored:
                if not _ros_factor(jv, 1.0 / (h * gamma), lu):
                    rejected += 1
                    retry = True
                    h *= 0.25
                    continue
                factored = h
            # stages (inner loops run over states, contiguous, so that they vectorise)
            inv_h = 1.0 / h
            for st in range(s):
                if st == 0:
                    for i in range(ns):
                        r[i] = f0[i]
                else:
                    _stage_argument(A, K, y, st, incremental[st], y_stage)
                    _rhs_u(t, y_stage, q, u, infusing, r)  # noqa: F821 - autonomous: t is not used
                    n_rhs += 1
                for j in range(st):
                    cj = C[st, j] * inv_h
                    if cj != 0.0:
                        for i in range(ns):
                            r[i] += cj * K[j, i]
                lu_solve(lu, r)  # noqa: F821 - r becomes k_st
                for i in range(ns):
                    K[st, i] = r[i]
            _stage_argument(A, K, y, s, incremental[s], y_stage)   # the new solution
            t_new = t + h if t_seg - (t + h) > 1e-12 * max(1.0, abs(t_seg)) else t_seg
            norm = 0.0
            finite = True
            for i in range(ns):
                y_new[i] = y_stage[i]
                sc = atol[i] + rtol * max(abs(y[i]), abs(y_stage[i]))
                norm += (K[s - 1, i] / sc) ** 2
                if not math.isfinite(y_stage[i]):
                    finite = False
            norm = math.sqrt(norm / ns)
            if not finite or not math.isfinite(norm):
                rejected += 1
                retry = True
                if h < 1e-10:
                    status = STATUS_NOT_FINITE  # noqa: F821
                    break
                h *= 0.2
                continue
            if norm > 1.0:
                rejected += 1
                retry = True
                h *= max(0.2, 0.9 * norm ** -expo)
                continue

            # accepted: triggers and outputs as in kernel.py, from the dense output
            t_stop = t_new
            fired = -1
            for k in range(n_trig):
                if n_fired[k] >= fires_out.shape[1]:
                    continue
                g_new[k] = _trigger_value(t_new, y_new, q, obs, trig_obs, trig_thr, k)  # noqa: F821
                if g_old[k] < 0.0 and g_new[k] >= 0.0:
                    lo = 0.0
                    hi = 1.0
                    for _ in range(60):
                        mid = 0.5 * (lo + hi)
                        _ros_dense(y, y_new, K, H, mid, y_dense)
                        if _trigger_value(t + mid * h, y_dense, q, obs, trig_obs, trig_thr, k) >= 0.0:  # noqa: F821
                            hi = mid
                        else:
                            lo = mid
                    t_hit = t + hi * h
                    if t_hit < t_stop:
                        t_stop = t_hit
                        fired = k
            theta_stop = (t_stop - t) / h
            action_at_stop = fired >= 0 or (t_stop == t_seg and a < n_act and act_t[a] == t_seg)
            while k_out < n_out and (t_out[k_out] < t_stop or (t_out[k_out] == t_stop and not action_at_stop)):
                _ros_dense(y, y_new, K, H, (t_out[k_out] - t) / h, y_dense)
                _nonnegative(y_dense, y_dense)  # noqa: F821 - kernel.py
                _columns(t_out[k_out], y_dense, q, obs, cols, out, k_out)  # noqa: F821
                k_out += 1
            if fired >= 0:
                _ros_dense(y, y_new, K, H, theta_stop, y_dense)
                for i in range(ns):
                    y_new[i] = y_dense[i]
                t_new = t_stop
            _nonnegative(y_new, y)  # noqa: F821 - kernel.py: no state is negative or subnormal
            t = t_new
            fresh = False
            if fired >= 0:
                _fire(fired, t, y, q, trig_state, trig_amt, fires_out, n_fired)  # noqa: F821 - kernel.py
                k_out = _record_until(t, y, q, obs, cols, t_out, out, k_out)  # noqa: F821
                _trigger_values(t, y, q, obs, trig_obs, trig_thr, g_old)  # noqa: F821
            else:
                for k in range(n_trig):
                    g_old[k] = g_new[k]
            # step-size control with Gustafsson's predictive correction (Hairer & Wanner, IV.8; as RODAS)
            err = max(norm, 1e-10)
            grow = min(6.0, max(0.2, 0.9 * err ** -expo))
            if h_acc > 0.0:
                grow = min(grow, min(6.0, max(0.2, 0.9 * (h / h_acc) * (err_acc / err ** 2) ** expo)))
            h_acc = h
            err_acc = max(1e-2, err)
            h *= min(grow, 1.0) if retry else grow
            retry = False
        if status != STATUS_OK:  # noqa: F821
            break
    stats[0] = steps
    stats[1] = rejected
    stats[2] = n_rhs
    stats[3] = n_jac
    return status


@nb.njit(cache=True, parallel=True)
def solve_batch_rosenbrock(p, act_t, act_s, act_bolus, act_rate, n_act,
                           trig_obs, trig_thr, trig_state, trig_amt,
                           t0, t_out, cols, rtol, atol, max_steps, first_step, max_step, out, fires, status, stats,
                           A, C, H, gamma, expo, workers):
    """Solve every patient (row of ``p``) with the Rosenbrock method given by its tableau, on ``workers`` threads."""
    counter = np.zeros(1, dtype=np.int64)
    for _ in nb.prange(workers):   # one worker per thread, taking patients as it frees up (kernel.py)
        i = _next_patient(counter)  # noqa: F821 - kernel.py
        while i < p.shape[0]:
            status[i] = _ros_solve_one(p[i], act_t[i], act_s[i], act_bolus[i], act_rate[i], n_act[i],
                                       trig_obs, trig_thr, trig_state, trig_amt, fires[i],
                                       t0, t_out, cols, rtol, atol, max_steps, first_step, max_step, out[i],
                                       stats[i], A, C, H, gamma, expo)
            i = _next_patient(counter)  # noqa: F821
