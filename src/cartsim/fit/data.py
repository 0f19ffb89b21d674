"""A NONMEM-style dataset as the arrays a population fit needs: each patient's doses, observations and weight.

Dose records (EVID 1) are honoured as given: ``CMT`` is the dosed state (index + 1), ``AMT`` the amount in its
unit, ``RATE`` > 0 a zero-order infusion of ``AMT / RATE`` days. The fit's scenario supplies only what the
therapy sets in the model (a product's potency, an antibody's PK constants) and the state-triggered rules
(tocilizumab when CRS reaches grade 2); its default schedule is not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cartsim.engine.doses import DoseRecord, Doses
from cartsim.errors import CartsimInputError
from cartsim.exporters.nonmem import BY_DVID, allowed_types
from cartsim.model.ir import Model

DEFAULT_WEIGHT = 70.0   # kg, where a dataset has no WT column (the table's typical adult)


@dataclass(frozen=True)
class FitData:
    """Observations flattened over patients (``m`` records) and per-patient doses (``n`` patients)."""

    ids: np.ndarray          # (n,) dataset IDs
    weight: np.ndarray       # (n,) kg
    doses: Doses             # (n, events)
    times: np.ndarray        # (T,) sorted unique observation times of all patients
    t0: float                # first simulated day: the first record of any patient
    patient: np.ndarray      # (m,) row of the observation's patient
    time_index: np.ndarray   # (m,) index into ``times``
    dvid: np.ndarray         # (m,)
    dv: np.ndarray           # (m,) observed value (the limit on BLQ records)
    blq: np.ndarray          # (m,) True where below the limit
    lloq: np.ndarray         # (m,) the limit on BLQ records, else 0
    quantities: tuple[str, ...]   # model quantity of each DVID in ``dvids``
    dvids: tuple[int, ...]        # the DVIDs observed, sorted

    @property
    def n(self) -> int:
        return self.ids.size

    @property
    def time(self) -> np.ndarray:
        return self.times[self.time_index]

    def column(self) -> np.ndarray:
        """(m,) index of each observation's quantity in :attr:`quantities`."""
        return np.searchsorted(np.asarray(self.dvids), self.dvid)


def fit_data(data: pd.DataFrame, model: Model, dvids: list[int] | None = None, field: str = "DATA",
             start: float | None = None) -> FitData:
    """Arrays of a checked dataset (:func:`cartsim.exporters.nonmem.check_dataset`); ``dvids`` picks the
    observation types fitted (default: all that the dataset has). ``start``: the first day the therapy's
    simulation covers (its first lymphodepletion dose, or day 0); a record before it is refused."""
    if start is not None and (data.TIME < start).any():
        i = int(np.flatnonzero((data.TIME < start).to_numpy())[0])
        raise CartsimInputError(field, f"column TIME: {data.TIME.iloc[i]:g} (record {i + 1}, ID "
                                       f"{data.ID.iloc[i]:g}) is before the therapy's first simulated day",
                                f"TIME >= {start:g}, days since the infusion or first antibody dose")
    obs_rows = data[(data.EVID == 0) & (data.MDV == 0)]
    if obs_rows.empty:
        raise CartsimInputError(field, "the dataset has no observation records (EVID 0, MDV 0)")
    present = sorted(int(d) for d in obs_rows.DVID.unique())
    chosen = present if dvids is None else sorted(set(dvids))
    unknown = [d for d in chosen if d not in present]
    if unknown:
        raise CartsimInputError("--dvid", f"DVID {unknown[0]} has no observations in the dataset",
                                ", ".join(f"{d} ({BY_DVID[d].quantity})" for d in present))
    names = {*model.state_names, *model.observable_names}
    for d in chosen:
        if BY_DVID[d].quantity not in names:
            raise CartsimInputError("--dvid", f"DVID {d} ({BY_DVID[d].quantity}) is not a model quantity",
                                    allowed_types())
    obs_rows = obs_rows[obs_rows.DVID.isin(chosen)]
    blq = obs_rows["BLQ"].to_numpy() == 1 if "BLQ" in obs_rows else np.zeros(len(obs_rows), bool)
    dv = obs_rows.DV.to_numpy(float)
    bad = ~blq & ~(dv > 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CartsimInputError(field, f"column DV: {dv[i]:g} (ID {obs_rows.ID.iloc[i]:g}, TIME "
                                       f"{obs_rows.TIME.iloc[i]:g}) must be > 0: the residual error is log-normal; "
                                       "flag a value below the assay limit with BLQ 1 and its limit in LLOQ")
    ids = np.array(sorted(data.ID.unique()))
    row = {int(i): k for k, i in enumerate(ids)}
    n_states = len(model.states)
    dose_rows = data[data.EVID == 1]
    bad_cmt = dose_rows.CMT > n_states
    if bad_cmt.any():
        raise CartsimInputError(field, f"column CMT: {dose_rows.CMT[bad_cmt].iloc[0]:g} is not a compartment",
                                f"1-{n_states} (model state index + 1; `cartsim export nonmem` lists them)")
    records = [[DoseRecord.from_nonmem(t, c, a, r, model.state_names)
                for t, c, a, r in zip(p.TIME, p.CMT, p.AMT, p.RATE)]
               for p in (dose_rows[dose_rows.ID == i] for i in ids)]
    weight = np.full(ids.size, DEFAULT_WEIGHT)
    if "WT" in data:
        wt = data.groupby("ID").WT.first().reindex(ids).to_numpy(float)
        if np.any(~(wt > 0)):
            raise CartsimInputError(field, "column WT: every ID needs a body weight > 0 kg")
        weight = wt
    times, index = np.unique(obs_rows.TIME.to_numpy(float), return_inverse=True)
    return FitData(ids=ids, weight=weight,
                   doses=Doses.from_records(records, model.state_names),
                   times=times, t0=float(data.TIME.min() if start is None else start), patient=np.array([row[int(i)] for i in obs_rows.ID]),
                   time_index=index.astype(np.int64), dvid=obs_rows.DVID.to_numpy(np.int64), dv=dv, blq=blq,
                   lloq=np.where(blq, obs_rows["LLOQ"].to_numpy(float) if "LLOQ" in obs_rows else 0.0, 0.0),
                   quantities=tuple(BY_DVID[d].quantity for d in chosen), dvids=tuple(chosen))
