"""What happens between and at the ends of steps, for one patient: doses, state triggers, outputs, the
projection onto non-negative states, the first step size, and taking the next patient.

Doses are NONMEM-style actions sorted in time (a bolus adds to a state; an infusion's start and stop change a
zero-order input), times the model's ``F`` of that state; a dose comes before an output recorded at the same
time, as in mrgsolve. A trigger fires
when its observable crosses its threshold upwards (located by the driver on the dense output) and adds its
amount to a state.

The helpers are compiled without numba's reference counting (``_nrt=False``; they allocate nothing and keep no
array): with it, every call atomically increments and decrements the counts of its array arguments, which cost
about a tenth of the time on one thread, and more on several, where arrays shared by all patients (tableaus,
tolerances, output columns) have one count that every thread writes. For the same reason outputs are written
with a patient and row index rather than through views.

This file is not imported on its own: :mod:`cartsim.engine.compile` puts it after the generated model code
(:mod:`cartsim.engine.model_interface` lists what that provides) and before ``driver.py``.
"""

import math
from typing import TYPE_CHECKING

import numba as nb
from numba.core import cgutils
from numba.extending import intrinsic

if TYPE_CHECKING:   # defined earlier in the compiled module, by the generated model code
    from cartsim.engine.model_interface import bioavailability, observable

STATUS_OK = 0
STATUS_MAX_STEPS = 1
STATUS_STEP_TOO_SMALL = 2
STATUS_NOT_FINITE = 3
# Every state is an amount, a count or a concentration, so none is negative, and one below TINY is zero: 1e-250
# of anything is far below any tolerance, and arithmetic on the subnormal numbers (below 2.2e-308) that decaying
# states reach otherwise is many times slower (a third of the solve time at rtol 1e-5 on this model).
TINY = 1e-250


@nb.njit(cache=True, _nrt=False)
def _any_nonzero(u):
    for i in range(u.shape[0]):
        if u[i] != 0.0:
            return True
    return False


@nb.njit(cache=True, _nrt=False)
def _nonnegative(src, dst):
    """``dst`` = ``src`` with values below :data:`TINY` (negative ones included) set to 0 (Shampine et al., Appl
    Math Comput 2005;170:556); True if any changed."""
    changed = 0
    for i in range(src.shape[0]):   # branch-free, so that it vectorises
        v = src[i]
        drop = v < TINY and v != 0.0
        dst[i] = 0.0 if drop else v
        changed |= drop
    return changed != 0


@nb.njit(cache=True, _nrt=False)
def _columns_at(t, y, q, cols, out, i, k):
    """Output row ``k`` of patient ``i``: states, and observables each evaluated alone (outputs need a few)."""
    ns = y.shape[0]
    for c in range(cols.shape[0]):
        j = cols[c]
        out[i, k, c] = y[j] if j < ns else observable(j - ns, t, y, q)


@nb.njit(cache=True, _nrt=False)
def _record_until_at(t, y, q, cols, t_out, out, i, k_out):
    """Record patient ``i``'s outputs due at or before ``t`` from ``y``, from output ``k_out`` on; return the next
    one's index."""
    while k_out < t_out.shape[0] and t_out[k_out] <= t:
        _columns_at(t, y, q, cols, out, i, k_out)
        k_out += 1
    return k_out


@nb.njit(cache=True, _nrt=False)
def _trigger_value(t, y, q, trig_obs, trig_thr, k):
    """Trigger ``k``'s observable minus its threshold (a parameter)."""
    return observable(trig_obs[k], t, y, q) - q[trig_thr[k]]


@nb.njit(cache=True, _nrt=False)
def _trigger_values(t, y, q, trig_obs, trig_thr, g):
    for k in range(g.shape[0]):
        g[k] = _trigger_value(t, y, q, trig_obs, trig_thr, k)


@nb.njit(cache=True, _nrt=False)
def _apply_actions(t, y, u, q, a, n_act, act_t, act_s, act_bolus, act_rate):
    """Apply the doses and infusion switches due at ``t``, from action ``a`` on, each times the model's ``F`` of
    its state (exactly 1, so no rounding, for most states); return the next action's index."""
    while a < n_act and act_t[a] <= t:
        s = act_s[a]
        f = bioavailability(s, q)
        rate = act_rate[a] * f
        y[s] += act_bolus[a] * f
        u[s] += rate
        if abs(u[s]) < 1e-12 * abs(rate):
            u[s] = 0.0  # an infusion that ended exactly cancels
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


