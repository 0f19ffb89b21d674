"""Dose records: the one form in which doses reach the engine, the exporters and the web page.

A :class:`DoseRecord` is one dose of one patient with NONMEM semantics: ``TIME`` (day), ``CMT`` (the dosed state,
by name), ``AMT`` (in the state's unit), a duration (0: a bolus; else a zero-order infusion, ``RATE = AMT /
duration``), bioavailability ``F`` (the share of ``AMT`` that enters) and lag ``ALAG`` (the dose enters at
``TIME + ALAG``). :class:`Doses` holds a population's records as arrays of shape (patients, events), the
engine's input; ``Scenario.patient_inputs`` compiles them from a therapy (products, lymphodepletion, antibody
regimens), ``cartsim.fit.data`` from a NONMEM dataset. Each event column may carry a kind (``lymphodepletion``,
``car-t`` or ``dose``) and a label for people (``"ocrelizumab 600 mg IV"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

KINDS = ("lymphodepletion", "car-t", "dose")


@dataclass(frozen=True)
class DoseRecord:
    """One dose of one patient (a NONMEM dose record, EVID 1)."""

    time: float                    # TIME: day the dose is given
    state: str                     # CMT: the dosed state
    amount: float                  # AMT, in the state's unit
    duration: float = 0.0          # days; 0: bolus
    bioavailability: float = 1.0   # F: the share of AMT that enters the state
    lag: float = 0.0               # ALAG: days from TIME until the dose enters
    kind: str = "dose"             # lymphodepletion | car-t | dose
    label: str = ""                # what was given, for people
    EVID: ClassVar[int] = 1

    def __post_init__(self) -> None:
        if not (np.isfinite(self.time) and self.amount >= 0 and self.duration >= 0 and self.lag >= 0
                and 0 < self.bioavailability <= 1):
            raise ValueError(f"dose record {self}: needs a finite time, amount >= 0, duration >= 0, lag >= 0 and "
                             "0 < bioavailability <= 1")
        if self.kind not in KINDS:
            raise ValueError(f"dose kind {self.kind!r}; choose one of {', '.join(KINDS)}")

    @property
    def start(self) -> float:
        """When the dose enters the state: ``TIME + ALAG``."""
        return self.time + self.lag

    @property
    def delivered(self) -> float:
        """What enters the state: ``F * AMT``."""
        return self.bioavailability * self.amount

    @property
    def rate(self) -> float:
        """NONMEM's RATE: ``AMT`` per day over the infusion (0 for a bolus)."""
        return self.amount / self.duration if self.duration > 0 else 0.0

    def nonmem(self, state_names: Sequence[str]) -> dict[str, float | int]:
        """The NONMEM dose record's columns (CMT: the state's index + 1)."""
        if self.bioavailability != 1.0 or self.lag != 0.0:
            raise ValueError("a dose with F or ALAG has no NONMEM dataset record without a model that sets them")
        return {"TIME": self.time, "AMT": self.amount, "RATE": self.rate, "EVID": self.EVID,
                "CMT": list(state_names).index(self.state) + 1}

    @staticmethod
    def from_nonmem(time: float, cmt: int, amt: float, rate: float, state_names: Sequence[str]) -> "DoseRecord":
        """The record of a NONMEM dose row (RATE 0: a bolus; else an infusion of AMT / RATE days)."""
        return DoseRecord(float(time), state_names[int(cmt) - 1], float(amt),
                          float(amt) / float(rate) if rate > 0 else 0.0)


def _column_texts(values: Sequence[str], n: int, what: str) -> tuple[str, ...]:
    values = tuple(values)
    if values and len(values) != n:
        raise ValueError(f"dose {what}: one per event column ({n}), got {len(values)}")
    return values


@dataclass(frozen=True)
class Doses:
    """A population's dose records as arrays of shape (patients, events); unused slots have amount 0.

    ``bioavailability`` and ``lag`` default to 1 and 0; ``kinds`` and ``labels`` (one per event column, shared by
    every patient) may be empty."""

    time: np.ndarray
    state: np.ndarray               # int64: index of the dosed state
    amount: np.ndarray
    duration: np.ndarray
    bioavailability: np.ndarray | None = None
    lag: np.ndarray | None = None
    kinds: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()

    @staticmethod
    def empty(n: int) -> "Doses":
        z = np.zeros((n, 0))
        return Doses(z, z.astype(np.int64), z, z)

    def __post_init__(self) -> None:
        if self.bioavailability is None:
            object.__setattr__(self, "bioavailability", np.ones_like(self.amount, dtype=float))
        if self.lag is None:
            object.__setattr__(self, "lag", np.zeros_like(self.amount, dtype=float))
        arrays = (self.time, self.state, self.amount, self.duration, self.bioavailability, self.lag)
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1 or self.time.ndim != 2:
            raise ValueError(f"dose arrays must share one (patients, events) shape, got {shapes}")
        if np.any(self.duration < 0) or np.any(self.amount < 0) or np.any(self.lag < 0):
            raise ValueError("dose amounts, durations and lags must be non-negative")
        f = self.bioavailability
        if np.any(~((f > 0) & (f <= 1))):
            raise ValueError("dose bioavailability must be in (0, 1]")
        object.__setattr__(self, "kinds", _column_texts(self.kinds, self.time.shape[1], "kinds"))
        object.__setattr__(self, "labels", _column_texts(self.labels, self.time.shape[1], "labels"))
        if bad := set(self.kinds) - set(KINDS):
            raise ValueError(f"dose kinds {sorted(bad)}; choose from {', '.join(KINDS)}")

    @property
    def n_patients(self) -> int:
        return int(self.time.shape[0])

    @property
    def start(self) -> np.ndarray:
        """When each dose enters its state (``TIME + ALAG``)."""
        assert self.lag is not None
        return self.time + self.lag

    def concat(self, other: "Doses") -> "Doses":
        """These events and then ``other``'s, for the same patients."""
        def cat(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray:
            assert a is not None and b is not None
            return np.concatenate([a, b], axis=1)

        def texts(a: tuple[str, ...], b: tuple[str, ...], default: str) -> tuple[str, ...]:
            if not (a or b):
                return ()
            return (*(a or (default,) * self.time.shape[1]), *(b or (default,) * other.time.shape[1]))

        return Doses(cat(self.time, other.time), cat(self.state, other.state), cat(self.amount, other.amount),
                     cat(self.duration, other.duration), cat(self.bioavailability, other.bioavailability),
                     cat(self.lag, other.lag), texts(self.kinds, other.kinds, "dose"),
                     texts(self.labels, other.labels, ""))

    def take(self, patients: np.ndarray | slice) -> "Doses":
        """The records of some patients."""
        def rows(a: np.ndarray | None) -> np.ndarray:
            assert a is not None
            return a[patients]

        return Doses(rows(self.time), rows(self.state), rows(self.amount), rows(self.duration),
                     rows(self.bioavailability), rows(self.lag), self.kinds, self.labels)

    def records(self, patient: int, state_names: Sequence[str]) -> tuple[DoseRecord, ...]:
        """Patient ``patient``'s doses (amount > 0) as records, in column order."""
        assert self.bioavailability is not None and self.lag is not None
        out = []
        for k in np.flatnonzero(self.amount[patient] > 0):
            out.append(DoseRecord(float(self.time[patient, k]), state_names[int(self.state[patient, k])],
                                  float(self.amount[patient, k]), float(self.duration[patient, k]),
                                  float(self.bioavailability[patient, k]), float(self.lag[patient, k]),
                                  self.kinds[k] if self.kinds else "dose", self.labels[k] if self.labels else ""))
        return tuple(out)

    @staticmethod
    def from_records(patients: Sequence[Sequence[DoseRecord]], state_names: Sequence[str]) -> "Doses":
        """Arrays from each patient's records (padded with unused slots)."""
        width = max((len(p) for p in patients), default=0)
        n = len(patients)
        arrays = {k: np.zeros((n, width)) for k in ("time", "amount", "duration", "lag")}
        f = np.ones((n, width))
        state = np.zeros((n, width), dtype=np.int64)
        index = {name: i for i, name in enumerate(state_names)}
        for i, recs in enumerate(patients):
            for k, r in enumerate(recs):
                if r.state not in index:
                    raise ValueError(f"dose into unknown state {r.state!r}")
                arrays["time"][i, k], arrays["amount"][i, k] = r.time, r.amount
                arrays["duration"][i, k], arrays["lag"][i, k] = r.duration, r.lag
                f[i, k], state[i, k] = r.bioavailability, index[r.state]
        return Doses(arrays["time"], state, arrays["amount"], arrays["duration"], f, arrays["lag"])

    def actions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Time-sorted (t, state, bolus, rate change, count) per patient, infusions split in start and stop: what
        the engine applies (``F * AMT`` from ``TIME + ALAG``)."""
        assert self.bioavailability is not None
        start = self.start
        delivered = self.bioavailability * self.amount
        inf = self.duration > 0
        safe = np.where(inf, self.duration, 1.0)
        rate = np.where(inf, delivered / safe, 0.0)
        t = np.concatenate([start, np.where(inf, start + self.duration, np.inf)], axis=1)
        s = np.concatenate([self.state, self.state], axis=1).astype(np.int64)
        bolus = np.concatenate([np.where(inf, 0.0, delivered), np.zeros_like(delivered)], axis=1)
        dr = np.concatenate([rate, -rate], axis=1)
        order = np.argsort(t, axis=1, kind="stable")
        t, s, bolus, dr = (np.ascontiguousarray(np.take_along_axis(a, order, axis=1)) for a in (t, s, bolus, dr))
        n_act = np.isfinite(t).sum(axis=1).astype(np.int64)
        return np.where(np.isfinite(t), t, 0.0), s, bolus, dr, n_act
