"""What the generated model code provides to the solver: names, shapes and meaning.

``codegen.generate`` writes these for each model; :mod:`cartsim.engine.compile` puts that code, the lane width,
``events.py`` and ``driver.py`` into one module and compiles it. The driver and the event helpers import the
names from here only for readers and type checkers (under ``TYPE_CHECKING``); at run time they are the generated
ones, defined earlier in the same module. Arrays are float64 and flat: ``y`` the states, ``p`` the free parameters
in table order, ``q`` free then derived parameters, then the per-patient constants (``N_Q + N_C`` long).
"""

from __future__ import annotations

import numpy as np

N_STATES: int          # states
N_P: int               # free parameters
N_Q: int               # free and derived parameters
N_C: int               # per-patient constants after the parameters in q (engine/hoist.py)
N_OBS: int             # observables
N_JAC: int             # non-zero entries of the Jacobian
N_LU: int              # entries of its fixed-pattern LU factors
LU_DIAG: np.ndarray    # storage index of each state's diagonal in the LU (holding 1 / pivot)
LANES: int             # patients per vector in the driver (1 or 4), written by compile.py


def _generated(*args: object) -> None:
    raise NotImplementedError("provided by the code generated from the model (cartsim.engine.codegen)")


def derive(p: np.ndarray, q: np.ndarray) -> None:
    """``q`` from the free parameters ``p``: derived parameters and per-patient constants."""
    _generated(p, q)


def init(q: np.ndarray, y: np.ndarray) -> None:
    """The initial state."""
    _generated(q, y)


def rhs(t: float, y: np.ndarray, q: np.ndarray, dy: np.ndarray) -> None:
    """``dy = f(y)`` (the model is autonomous: ``t`` is unused)."""
    _generated(t, y, q, dy)


def observable(k: int, t: float, y: np.ndarray, q: np.ndarray) -> float:
    """Observable ``k`` alone."""
    _generated(k, t, y, q)
    return float("nan")


def jac(t: float, y: np.ndarray, q: np.ndarray, jv: np.ndarray) -> None:
    """The Jacobian's non-zero entries, in the generated pattern's order."""
    _generated(t, y, q, jv)


def lu_load(jv: np.ndarray, c: float, lu: np.ndarray) -> None:
    """``lu = c I - J`` in the LU's storage."""
    _generated(jv, c, lu)


def lu_factor(lu: np.ndarray) -> None:
    """Factor ``lu`` in place (no pivoting; the pattern is fixed)."""
    _generated(lu)


def lu_solve(lu: np.ndarray, r: np.ndarray) -> None:
    """``r = lu^-1 r`` in place."""
    _generated(lu, r)


def bioavailability(s: int, q: np.ndarray) -> float:
    """``F`` of a dose into state ``s``: the model's (``ir.Bioavailability``), else 1."""
    _generated(s, q)
    return 1.0
