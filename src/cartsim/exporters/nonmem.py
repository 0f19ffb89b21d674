"""NONMEM-style datasets: a simulated virtual cohort written as CSV, and a reader for such files.

One record (row) per dose or observation, sorted by ``ID`` then ``TIME``;
:data:`COLUMN_MEANINGS` says what each column holds. ``TIME`` is the study day
(day 0: CAR-T infusion; lymphodepletion days are negative, which NONMEM 7.4
and later accept). ``CMT`` of a dose record is the index of the dosed state in
``model.states`` plus one (:func:`compartments`); ``DVID`` of an observation
record is its type (:data:`OBSERVATION_TYPES`).

Simulated datasets list the scheduled doses of the scenario (lymphodepletion,
CAR-T cells, ...). ``AMT`` is what the record counts; the model's bioavailability
of the dosed state (``F1``, ``F2``, ... in a NONMEM ``$PK``) turns it into what
enters: an infusion's three records (effector, memory and untransduced T cells)
each carry its CAR+ cells, which ``car_memory_share`` and ``car_transduction``
split (see the report's equations). The tocilizumab rescue is part of the model (it is given
when IL-6 reaches the grade-2 threshold), so it is not a dose record. DV is
the model prediction without residual error. Observation days never coincide
with a dose day, so no sample is ambiguous between pre- and post-dose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cartsim import __version__
from cartsim.errors import CartsimInputError
from cartsim.exporters import ExportError
from cartsim.model.ir import Model
from cartsim.population import Population
from cartsim.scenario import Scenario


@dataclass(frozen=True)
class ObservationType:
    """One measurable quantity: its DVID and the model state or observable it is compared with."""

    dvid: int
    quantity: str          # a state or observable of the model
    additive_sd: float     # assay noise floor (additive SD, quantity's unit), the noise model's starting value
    label: str


OBSERVATION_TYPES: tuple[ObservationType, ...] = (
    ObservationType(1, "b_blood_per_uL", 1.0, "CD19+ B cells in blood"),     # flow cytometry detection limit
    ObservationType(2, "car_blood_per_uL", 0.1, "CAR-T cells in blood"),     # qPCR / flow detection limit
    ObservationType(3, "il6", 1.0, "serum IL-6"),                           # immunoassay lower limit
    ObservationType(4, "igg", 0.5, "serum IgG"),
    ObservationType(5, "mab_conc", 0.1, "serum anti-CD20 antibody (total)"),   # ELISA lower limit
)
BY_DVID = {t.dvid: t for t in OBSERVATION_TYPES}

# days after infusion at which the virtual cohort is sampled (clipped to the scenario, dose days left out)
SAMPLING_DAYS = (-1.0, 1.0, 2.0, 4.0, 7.0, 10.0, 14.0, 21.0, 28.0, 42.0, 56.0, 90.0, 120.0, 180.0, 270.0, 365.0)
LATE_SAMPLING_STEP = 90.0  # after day 365: every 90 days, and the last day

COLUMN_MEANINGS = {
    "ID": "patient number (1, 2, ...)",
    "TIME": "study day: days since the CAR-T infusion (day 0); lymphodepletion days are negative",
    "AMT": "dose amount in the unit of the dosed state, before the model's bioavailability F of that state (a CAR-T "
           "infusion's records count its CAR+ cells); 0 on observation records",
    "RATE": "infusion rate (AMT per day); 0 for a bolus and on observation records",
    "EVID": "1 dose, 0 observation",
    "CMT": "dose compartment: index of the dosed model state + 1 (table below); 0 on observation records",
    "DVID": "observation type (table below); 0 on dose records",
    "DV": "observed value in the unit of its observation type; 0 on dose records",
    "MDV": "1 when DV is missing (dose records), else 0",
    "AGE": "age, years",
    "WT": "body weight, kg",
    "SEX": "1 female, 0 male",
    "BLQ": "1 when the observation was below the assay's limit (DV is then not a measured value), else 0; "
           "optional",
    "LLOQ": "the assay's lower limit of quantification, in DV's unit, on BLQ records; optional",
}
ANTIBODY_TYPES = {"mab_conc"}   # observed only when a scenario gives an anti-CD20 antibody
CART_TYPES = {"car_blood_per_uL"}   # observed only when a scenario gives a CAR-T product
# pandas 3 parses floats exactly by default; earlier versions need the round-trip parser
_EXACT = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
REQUIRED = ("ID", "TIME", "AMT", "EVID", "CMT", "DVID", "DV", "MDV")
COLUMNS = tuple(COLUMN_MEANINGS)
INTEGER = ("ID", "EVID", "CMT", "DVID", "MDV", "SEX", "BLQ")
UNSUPPORTED = {"ADDL": "additional doses", "II": "interdose intervals", "SS": "steady-state doses"}


def allowed_types() -> str:
    """The observation types as ``'1 (b_blood_per_uL), 2 (...)'`` for error messages."""
    return ", ".join(f"{t.dvid} ({t.quantity})" for t in OBSERVATION_TYPES)


def observation_types(model: Model, scenario: Scenario | None = None) -> tuple[ObservationType, ...]:
    """The observation types whose quantity the model has (a state or an observable); with ``scenario``, the
    anti-CD20 antibody's serum level only where the scenario gives one, CAR-T cells only where it gives a
    product."""
    names = {*model.state_names, *model.observable_names}
    if scenario is not None and (scenario.antibody is None or scenario.antibody.level not in ANTIBODY_TYPES):
        names -= ANTIBODY_TYPES
    if scenario is not None and scenario.product is None:
        names -= CART_TYPES
    return tuple(t for t in OBSERVATION_TYPES if t.quantity in names)


def compartments(model: Model) -> pd.DataFrame:
    """CMT number, state, unit and description of every state (CMT = state index + 1)."""
    return pd.DataFrame({"CMT": np.arange(1, len(model.states) + 1), "state": model.state_names,
                         "unit": [s.unit for s in model.states],
                         "description": [s.description for s in model.states]})


def quantity_unit(model: Model, quantity: str) -> str:
    """Unit of a state or observable."""
    for s in (*model.states, *model.observables):
        if s.name == quantity:
            return s.unit
    raise KeyError(quantity)


def sampling_days(start: float, days: float, dose_times: set[float]) -> np.ndarray:
    """Observation days from :data:`SAMPLING_DAYS` within [start, days], without dose days, plus the last day."""
    late = np.arange(SAMPLING_DAYS[-1] + LATE_SAMPLING_STEP, days, LATE_SAMPLING_STEP)
    candidates = np.unique(np.concatenate([SAMPLING_DAYS, late, [days]]))
    keep = [d for d in candidates if start <= d <= days and not any(np.isclose(d, t) for t in dose_times)]
    return np.asarray(keep, dtype=float)


def simulate_dataset(model: Model, scenario: Scenario, population: Population) -> pd.DataFrame:
    """Dose and observation records of every patient of ``population`` under ``scenario``.

    Raises :class:`ExportError` if any patient's simulation fails.
    """
    types = observation_types(model, scenario)
    _, doses = scenario.patient_inputs(model, population)
    times = sampling_days(scenario.start, scenario.days, {float(t) for t in doses.time[doses.amount > 0]})
    sol = scenario.run(population, columns=tuple(t.quantity for t in types), times=times, model=model)
    if sol.failures:
        listed = "; ".join(f"patient {i + 1}: {why}" for i, why in sorted(sol.failures.items())[:3])
        raise ExportError(f"simulation failed for {len(sol.failures)} patient(s): {listed}")
    cov = population.covariates.reset_index(drop=True)
    n_types = len(types)
    frames = []
    for i in range(len(population)):
        given = pd.DataFrame([r.nonmem(model.state_names) for r in doses.records(i, model.state_names)],
                             columns=["TIME", "AMT", "RATE", "EVID", "CMT"])
        n_dose, n_obs = len(given), times.size * n_types
        rec = pd.DataFrame({
            "TIME": np.concatenate([given.TIME.to_numpy(float), np.repeat(times, n_types)]),
            "AMT": np.concatenate([given.AMT.to_numpy(float), np.zeros(n_obs)]),
            "RATE": np.concatenate([given.RATE.to_numpy(float), np.zeros(n_obs)]),
            "EVID": np.concatenate([given.EVID.to_numpy(np.int64), np.zeros(n_obs, np.int64)]),
            "CMT": np.concatenate([given.CMT.to_numpy(np.int64), np.zeros(n_obs, np.int64)]),
            "DVID": np.concatenate([np.zeros(n_dose, np.int64), np.tile([t.dvid for t in types], times.size)]),
            "DV": np.concatenate([np.zeros(n_dose), sol.values[i].ravel()]),
            "MDV": np.concatenate([np.ones(n_dose, np.int64), np.zeros(n_obs, np.int64)]),
        })
        rec = rec.iloc[np.argsort(rec["TIME"].to_numpy(), kind="stable")]
        rec.insert(0, "ID", i + 1)
        rec["AGE"] = float(cov.at[i, "age"])
        rec["WT"] = float(cov.at[i, "weight_kg"])
        rec["SEX"] = int(cov.at[i, "sex"] == "F")
        frames.append(rec)
    return _canonical(pd.concat(frames, ignore_index=True))


def add_residual_error(data: pd.DataFrame, sd: float, lloq: dict[int, float] | None = None,
                       seed: int = 0) -> pd.DataFrame:
    """``data`` with log-normal residual error on every observation (log DV + N(0, sd^2)) and, where ``lloq``
    gives a limit for a DVID, values below it flagged BLQ 1 with the limit in LLOQ (DV set to the limit)."""
    if not (np.isfinite(sd) and sd >= 0):
        raise CartsimInputError("--residual-sd", f"must be a number >= 0, got {sd!r}")
    lloq = dict(lloq or {})
    for dvid, limit in lloq.items():
        if dvid not in BY_DVID or not (np.isfinite(limit) and limit > 0):
            raise CartsimInputError("--lloq", f"DVID {dvid} limit {limit!r}: needs a known DVID and a limit > 0",
                                    allowed_types())
    out = data.copy()
    obs = ((out.EVID == 0) & (out.MDV == 0)).to_numpy()
    rng = np.random.default_rng(seed)
    dv = out.DV.to_numpy(float).copy()
    noisy = np.maximum(dv[obs], 1e-300) * np.exp(rng.normal(0.0, sd, int(obs.sum())))
    dv[obs] = noisy
    limit = np.array([lloq.get(int(d), 0.0) for d in out.DVID])
    blq = obs & (dv < limit)
    dv[blq] = limit[blq]
    out["DV"] = dv
    if lloq:
        out["BLQ"] = blq.astype(np.int64)
        out["LLOQ"] = np.where(blq, limit, 0.0)
    return _canonical(out)


def to_csv(data: pd.DataFrame) -> str:
    """CSV text of a dataset; numbers are written exactly (shortest round-trip form)."""
    return data.to_csv(index=False, lineterminator="\n")


def define_text(model: Model, scenario: Scenario, data: pd.DataFrame, title: str) -> str:
    """A plain-text data definition: what each column, CMT and DVID means, and how the data were made."""
    lines = [title, f"written by cartsim {__version__}; {data.ID.nunique()} patients, {len(data)} records", "",
             "Columns:"]
    lines += [f"  {name:<5} {meaning}" for name, meaning in COLUMN_MEANINGS.items()]
    lines += ["", "DVID (observation type): quantity, unit"]
    lines += [f"  {t.dvid}  {t.quantity}  {quantity_unit(model, t.quantity)}  ({t.label})"
              for t in observation_types(model, scenario)]
    lines += ["", "CMT (dose compartment = model state index + 1): state, unit"]
    lines += [f"  {r.CMT:>2}  {r.state}  {r.unit}  ({r.description})" for r in compartments(model).itertuples()]
    lines += ["", (f"Simulated: scenario days {scenario.start:g} to {scenario.days:g}. The tocilizumab rescue "
                   "is a model rule (state-triggered), not a dose record; DV is the model prediction without "
                   "residual error.")]
    return "\n".join(lines) + "\n"


def read_nonmem(path: Path | str, field: str = "--data") -> pd.DataFrame:
    """Read and check a NONMEM-style CSV; errors name ``field`` and the offending column.

    ``'.'`` means missing, as in NM-TRAN: 0 for AMT, RATE, CMT and DVID, and for
    DV where MDV is 1. Lines starting with ``#`` are comments. Columns beyond
    :data:`COLUMNS` are kept after them.
    """
    path = Path(path)
    if not path.is_file():
        raise CartsimInputError(field, f"{str(path)!r} is not a file")
    try:
        raw = pd.read_csv(path, na_values=["."], keep_default_na=False, comment="#", skipinitialspace=True,
                          **_EXACT)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise CartsimInputError(field, f"cannot read {str(path)!r} as CSV ({str(err).strip()})") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    return check_dataset(raw, field)


def check_dataset(raw: pd.DataFrame, field: str = "--data") -> pd.DataFrame:
    """Validate a NONMEM-style table and return it with canonical column order and types."""
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise CartsimInputError(field, f"required column {missing[0]} is missing (required: {', '.join(REQUIRED)})")
    dupes = raw.columns[raw.columns.duplicated()].tolist()
    if dupes:
        raise CartsimInputError(field, f"column {dupes[0]} appears more than once")
    if raw.empty:
        raise CartsimInputError(field, "the dataset has no records")
    df = raw.copy()
    for col in (c for c in COLUMNS if c in df.columns):
        df[col] = _numeric(df[col], col, field)
    for col in ("AMT", "RATE", "CMT", "DVID"):
        if col in df.columns:
            df[col] = df[col].fillna(0.0)
    if "RATE" not in df.columns:
        df["RATE"] = 0.0
    for col, why in UNSUPPORTED.items():
        if col in df.columns and (_numeric(df[col], col, field).fillna(0) != 0).any():
            raise CartsimInputError(field, f"column {col} ({why}) is not supported: list every dose as its "
                                           "own record")
    for col in ("ID", "TIME", "EVID", "MDV"):
        _no_missing(df, col, df[col].isna(), field)
    _only(df, "EVID", {0, 1}, "0 (observation), 1 (dose)", field)
    _only(df, "MDV", {0, 1}, "0, 1", field)
    if "SEX" in df.columns:
        _only(df, "SEX", {0, 1}, "1 (female), 0 (male)", field, allow_missing=True)
    for col in (c for c in INTEGER if c in df.columns):
        _integral(df, col, field)
    dose, obs = df.EVID == 1, (df.EVID == 0) & (df.MDV == 0)
    _bad(df, "MDV", dose & (df.MDV != 1), "dose records (EVID 1) must have MDV 1", field)
    _bad(df, "TIME", ~np.isfinite(df.TIME), "must be finite", field)
    _bad(df, "AMT", dose & ~(df.AMT >= 0), "dose amounts must be >= 0", field)
    _bad(df, "RATE", ~(df.RATE >= 0), "must be >= 0 (modelled rates and durations, RATE -1/-2, are not "
                                      "supported)", field)
    _bad(df, "CMT", dose & (df.CMT < 1), "dose records need a compartment number >= 1", field)
    _no_missing(df, "DV", obs & df.DV.isna(), field)
    df.loc[~obs, "DV"] = df.loc[~obs, "DV"].fillna(0.0)
    unknown = obs & ~df.DVID.isin(list(BY_DVID))
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise CartsimInputError(field, f"column DVID: unknown observation type {df.DVID.iloc[i]:g} "
                                       f"(record {i + 1})", allowed_types())
    if "BLQ" in df.columns:
        df["BLQ"] = df["BLQ"].fillna(0.0)
        _only(df, "BLQ", {0, 1}, "0 (measured), 1 (below the limit)", field)
        blq = obs & (df.BLQ == 1)
        if "LLOQ" not in df.columns:
            if blq.any():
                raise CartsimInputError(field, "records flagged BLQ 1 need the assay limit in a column LLOQ")
        else:
            _bad(df, "LLOQ", blq & ~(df.LLOQ > 0), "BLQ records need a limit LLOQ > 0", field)
            _bad(df, "BLQ", dose & (df.BLQ == 1), "dose records cannot be BLQ", field)
    elif "LLOQ" in df.columns:
        raise CartsimInputError(field, "column LLOQ needs a column BLQ saying which records are below it")
    order = df.groupby("ID", sort=False).TIME.diff()
    _bad(df, "TIME", order < 0, "times must not decrease within an ID", field)
    return _canonical(df)


def observed_points(data: pd.DataFrame) -> pd.DataFrame:
    """Observations (EVID 0, MDV 0) as ``ID, day, quantity, value`` for plotting."""
    obs = data[(data.EVID == 0) & (data.MDV == 0)]
    return pd.DataFrame({"ID": obs.ID.to_numpy(), "day": obs.TIME.to_numpy(float),
                         "quantity": [BY_DVID[int(d)].quantity for d in obs.DVID],
                         "value": obs.DV.to_numpy(float)})


def read_observed(path: Path | str, field: str = "--observed") -> pd.DataFrame:
    """The observations of a NONMEM-style CSV as plot points (:func:`observed_points`)."""
    return observed_points(read_nonmem(path, field))


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in COLUMNS if c in df.columns] + [c for c in df.columns if c not in COLUMNS]
    out = df[cols].reset_index(drop=True)
    for col in cols:
        if col in INTEGER and col != "SEX":
            out[col] = out[col].astype(np.int64)
        elif col == "SEX":
            out[col] = out[col].astype(np.int64) if out[col].notna().all() else out[col].astype("Int64")
        elif col in COLUMNS:
            out[col] = out[col].astype(float)
    return out


def _numeric(col: pd.Series, name: str, field: str) -> pd.Series:
    values = pd.to_numeric(col, errors="coerce")
    bad = values.isna() & col.notna()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CartsimInputError(field, f"column {name}: {col.iloc[i]!r} (record {i + 1}) is not a number")
    return values.astype(float)


def _bad(df: pd.DataFrame, col: str, mask: pd.Series, message: str, field: str) -> None:
    if mask.any():
        i = int(np.flatnonzero(mask.to_numpy())[0])
        raise CartsimInputError(field, f"column {col}: {message} (record {i + 1}, ID {df.ID.iloc[i]:g})")


def _no_missing(df: pd.DataFrame, col: str, mask: pd.Series, field: str) -> None:
    if mask.any():
        i = int(np.flatnonzero(mask.to_numpy())[0])
        raise CartsimInputError(field, f"column {col}: missing value (record {i + 1})")


def _only(df: pd.DataFrame, col: str, values: set[int], allowed: str, field: str, allow_missing: bool = False) -> None:
    ok = df[col].isin(list(values)) | (df[col].isna() if allow_missing else False)
    if not ok.all():
        i = int(np.flatnonzero(~ok.to_numpy())[0])
        raise CartsimInputError(field, f"column {col}: {df[col].iloc[i]:g} (record {i + 1}) is not allowed", allowed)


def _integral(df: pd.DataFrame, col: str, field: str) -> None:
    v = df[col]
    _bad(df, col, v.notna() & (v != np.round(v)), "must be a whole number", field)

