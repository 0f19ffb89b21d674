"""The arrays the compiled driver takes, in named groups (numba passes named tuples of arrays as they are)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Actions(NamedTuple):
    """Each patient's dose actions in time order (``engine.solve.Doses.actions``); rows are patients."""

    time: np.ndarray     # (N, A)
    state: np.ndarray    # (N, A) int64
    bolus: np.ndarray    # (N, A) amount added at ``time``
    rate: np.ndarray     # (N, A) change of the zero-order input at ``time``
    count: np.ndarray    # (N,) int64 actions in use


class Triggers(NamedTuple):
    """When observable ``observable[k]`` crosses parameter ``threshold[k]`` upwards, add parameter ``amount[k]``
    to state ``state[k]`` (indices; int64)."""

    observable: np.ndarray
    threshold: np.ndarray
    state: np.ndarray
    amount: np.ndarray


class Method(NamedTuple):
    """A :class:`~cartsim.engine.tableaus.Tableau` as arrays."""

    A: np.ndarray
    C: np.ndarray
    H: np.ndarray
    E: np.ndarray        # (1, s): the error weights as one row
    gamma: float
    expo: float
    explicit: bool
    error_stage: int     # the stage that is the error estimate (E a unit vector), else -1


class Control(NamedTuple):
    """Tolerances, step bounds and the :class:`~cartsim.engine.controllers.Controller`."""

    rtol: float
    atol: np.ndarray     # per state
    max_steps: int
    first_step: float    # 0: chosen from the initial derivatives
    max_step: float
    safety: float
    facmin: float
    facmax: float
    predictive: bool


class Output(NamedTuple):
    """Where results go: output times and columns, and per patient values, trigger times, status and counts."""

    times: np.ndarray    # (T,)
    columns: np.ndarray  # (C,) int64: a state, or N_STATES + an observable
    values: np.ndarray   # (N, T, C)
    fires: np.ndarray    # (N, triggers, max fires)
    status: np.ndarray   # (N,) int64
    stats: np.ndarray    # (N, 4) int64: steps, rejected, right-hand sides, Jacobians
