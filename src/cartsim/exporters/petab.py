"""PEtab (format version 1) problem: the SBML model, a NONMEM-style dataset and what to estimate.

Files of the problem (:func:`petab_files`):

- ``model.xml``: the SBML export of the scenario's typical patient
  (:mod:`cartsim.exporters.sbml`); SBML time 0 is the first simulated day
  (``t_start``), so PEtab time = study day - ``t_start``;
- ``conditions.tsv``: one simulation condition per dataset ``ID``, setting
  ``weight_kg`` from ``WT`` and the amounts ``dose_K`` of the SBML dose events
  from the ID's dose records. Dose times, compartments and durations are fixed
  in the SBML events, so every ID's dose records must follow the scenario's
  schedule; a dataset that does not is refused;
- ``observables.tsv``: one observable per observation type (DVID) in the data,
  with a combined additive + proportional normal error model,
  ``sd = sqrt(sigma_add^2 + (sigma_prop * y)^2)``; both sigmas are estimated;
- ``measurements.tsv``: the observation records (EVID 0, MDV 0);
- ``parameters.tsv``: every free model parameter not set by a condition;
  those of kind ``calibrated`` are estimated (log10 scale, one decade either
  side of the table value; one fitted onto its physical bound 0 on linear scale,
  from 0 to a decade above its uncertainty range), all others fixed at the value
  the SBML holds;
- ``problem.yaml``.

PEtab v1 has no random effects: IDs share one parameter vector (a pooled fit)
and differ only in body weight and dose amounts.
"""

from __future__ import annotations

import re

import libsbml
import numpy as np
import pandas as pd
import yaml

from cartsim.errors import CartsimInputError
from cartsim.exporters import ExportError
from cartsim.exporters.nonmem import BY_DVID, allowed_types, observation_types, quantity_unit
from cartsim.engine import DoseRecord
from cartsim.exporters.sbml import ExportInputs, export_inputs, sbml_document
from cartsim.model.ir import Model
from cartsim.scenario import Scenario

FILES = {"model": "model.xml", "conditions": "conditions.tsv", "observables": "observables.tsv",
         "measurements": "measurements.tsv", "parameters": "parameters.tsv", "problem": "problem.yaml"}
ESTIMATED_KIND = "calibrated"
DECADES = 1.0             # bounds of estimated model parameters: table value / 10**DECADES .. * 10**DECADES
PROPORTIONAL_SD = 0.2     # starting value of every proportional error SD
WEIGHT = "weight_kg"      # model parameter set per condition from the dataset's WT
TOL = 1e-9                # days and amounts: tolerance when matching dose records to the schedule


def petab_files(model: Model, scenario: Scenario, data: pd.DataFrame, dataset_id: str,
                label: str, field: str = "--data") -> dict[str, str]:
    """File name -> text of the PEtab problem for ``data`` (a checked NONMEM-style dataset).

    ``label`` names the data's origin in every condition name. Raises
    :class:`CartsimInputError` for anything PEtab v1 or the SBML model cannot
    express exactly.
    """
    try:
        inputs = export_inputs(model, scenario)
        sbml = libsbml.writeSBMLToString(sbml_document(model, inputs))
    except ExportError as err:
        raise CartsimInputError("--therapy", f"cannot export the model as SBML for PEtab: {err}") from None
    obs = data[(data.EVID == 0) & (data.MDV == 0)]
    if obs.empty:
        raise CartsimInputError(field, "the dataset has no observation records (EVID 0, MDV 0)")
    types = {t.dvid: t for t in observation_types(model, scenario)}
    missing = sorted(set(obs.DVID.astype(int)) - set(types))
    if missing:
        raise CartsimInputError(field, f"column DVID: observation type {missing[0]} is not in this model",
                                allowed_types())
    conditions = _conditions(model, inputs, data, obs, label, field)
    measurements = _measurements(inputs, data, obs, field)
    observables = _observables(model, sorted(set(obs.DVID.astype(int))))
    parameters = _parameters(model, inputs, observables, set(conditions.columns))
    measurements["datasetId"] = dataset_id
    problem = {
        "format_version": 1,
        "parameter_file": FILES["parameters"],
        "problems": [{"sbml_files": [FILES["model"]], "condition_files": [FILES["conditions"]],
                      "measurement_files": [FILES["measurements"]], "observable_files": [FILES["observables"]]}],
    }
    return {FILES["model"]: sbml, FILES["conditions"]: _tsv(conditions),
            FILES["observables"]: _tsv(observables), FILES["measurements"]: _tsv(measurements),
            FILES["parameters"]: _tsv(parameters), FILES["problem"]: yaml.safe_dump(problem, sort_keys=False)}


def condition_id(patient: int) -> str:
    return f"id_{patient}"


def observable_id(quantity: str) -> str:
    return f"obs_{quantity}"


def _conditions(model: Model, inputs: ExportInputs, data: pd.DataFrame, obs: pd.DataFrame, label: str,
                field: str) -> pd.DataFrame:
    rows = []
    for patient in pd.unique(obs.ID):
        records = data[data.ID == patient]
        row: dict[str, object] = {"conditionId": condition_id(int(patient)),
                                  "conditionName": f"{label}, ID {int(patient)}"}
        if WEIGHT in model.parameters and "WT" in data.columns:
            weight = records.WT.dropna().unique()
            if len(weight) != 1 or not weight[0] > 0:
                raise CartsimInputError(field, f"column WT: ID {int(patient)} needs one positive body weight, "
                                               f"found {', '.join(f'{w:g}' for w in weight) or 'none'} "
                                               "(time-varying covariates cannot be expressed)")
            row[WEIGHT] = float(weight[0])
        for k, amount in sorted(_dose_amounts(model, inputs.doses, records, field).items()):
            row[f"dose_{k}"] = amount
        rows.append(row)
    return pd.DataFrame(rows)


def _dose_amounts(model: Model, schedule: tuple[DoseRecord, ...], records: pd.DataFrame, field: str) -> dict[int, float]:
    """SBML dose number -> amount of this ID; its doses must match the schedule but for the amounts."""
    patient = int(records.ID.iloc[0])
    given = records[(records.EVID == 1) & (records.AMT > 0)]
    too_high = given.CMT > len(model.states)
    if too_high.any():
        cmt = int(given.CMT[too_high].iloc[0])
        raise CartsimInputError(field, f"column CMT: ID {patient} doses compartment {cmt}, the model has "
                                       f"{len(model.states)} (CMT = state index + 1)")
    key = lambda d: (d.time, d.state, d.duration)  # noqa: E731
    doses = sorted((DoseRecord.from_nonmem(t, c, a, r, model.state_names)
                    for t, c, a, r in zip(given.TIME, given.CMT, given.AMT, given.RATE)), key=key)
    planned = sorted(enumerate(schedule, start=1), key=lambda kd: key(kd[1]))
    same = len(doses) == len(planned) and all(
        d.state == p.state and abs(d.time - p.time) <= TOL
        and abs(d.duration - p.duration) <= TOL * max(1.0, p.duration)
        for d, (_, p) in zip(doses, planned))
    if not same:
        raise CartsimInputError(
            field, f"ID {patient}: dose records ({_describe(doses)}) differ from the scenario's schedule "
                   f"({_describe([p for _, p in planned])}); PEtab conditions can set dose "
                   "amounts per ID but not dose days, compartments or infusion durations, which the SBML events "
                   "fix: choose the --therapy, --dose, --lymphodepletion or --regimen that gave these doses")
    return {k: d.amount for d, (k, _) in zip(doses, planned)}


def _describe(doses: list[DoseRecord], most: int = 8) -> str:
    """'flu day -5, car_eff day 0, ...' (the first ``most`` doses)."""
    if not doses:
        return "none"
    text = ", ".join(f"{d.state} day {d.time:g}" + (f" over {d.duration:g} days" if d.duration > 0 else "")
                     for d in doses[:most])
    return text + (f", ... ({len(doses)} doses)" if len(doses) > most else "")


def _measurements(inputs: ExportInputs, data: pd.DataFrame, obs: pd.DataFrame, field: str) -> pd.DataFrame:
    early = obs.TIME < inputs.start - TOL
    if early.any():
        raise CartsimInputError(field, f"column TIME: observation on day {obs.TIME[early].iloc[0]:g} (ID "
                                       f"{int(obs.ID[early].iloc[0])}) precedes the first simulated day "
                                       f"{inputs.start:g}; PEtab time cannot be negative")
    doses = data[(data.EVID == 1) & (data.AMT > 0)]
    dose_days = {patient: days.to_numpy() for patient, days in doses.groupby("ID").TIME}
    for patient, t in zip(obs.ID, obs.TIME):
        if np.any(np.abs(dose_days.get(patient, np.empty(0)) - t) <= TOL):
            raise CartsimInputError(field, f"column TIME: ID {int(patient)} has an observation on dose day {t:g}; "
                                           "PEtab does not say whether it is taken before or after the dose: "
                                           "move it slightly (e.g. day - 0.01 for a pre-dose sample)")
    return pd.DataFrame({
        "observableId": [observable_id(BY_DVID[int(d)].quantity) for d in obs.DVID],
        "simulationConditionId": [condition_id(int(p)) for p in obs.ID],
        "measurement": obs.DV.to_numpy(float),
        "time": np.maximum(obs.TIME.to_numpy(float) - inputs.start, 0.0),
    })


def _sigmas(quantity: str) -> tuple[str, str]:
    return f"sigma_add_{quantity}", f"sigma_prop_{quantity}"


def _observables(model: Model, dvids: list[int]) -> pd.DataFrame:
    rows = []
    for dvid in dvids:
        t = BY_DVID[dvid]
        add, prop = _sigmas(t.quantity)
        rows.append({"observableId": observable_id(t.quantity),
                     "observableName": f"{t.label} ({quantity_unit(model, t.quantity)}), DVID {dvid}",
                     "observableFormula": t.quantity, "observableTransformation": "lin",
                     "noiseFormula": f"sqrt({add}^2 + ({prop} * {t.quantity})^2)", "noiseDistribution": "normal"})
    return pd.DataFrame(rows)


def _parameters(model: Model, inputs: ExportInputs, observables: pd.DataFrame, set_by_condition: set[str]
                ) -> pd.DataFrame:
    rows = []
    for name, value in zip(model.parameters, inputs.params):
        if name in set_by_condition:
            continue
        record, prov = model.table[name], inputs.provenance.get(name, {})
        kind = prov.get("kind", record.kind)
        set_by = prov.get("set_by", "")  # a value the therapy sets is fixed, one the disease sets is not
        estimate = kind == ESTIMATED_KIND and (not set_by or set_by.startswith("disease"))
        row = {"parameterId": name, "parameterName": _clean(f"{record.description} ({record.unit}), {kind}"),
               "parameterScale": "lin", "lowerBound": np.nan, "upperBound": np.nan,
               "nominalValue": float(value), "estimate": int(estimate)}
        on_bound = estimate and value == 0 and record.bounds is not None and record.bounds[0] == 0 \
            and record.uncertainty is not None
        if on_bound:    # fitted onto its physical bound 0: linear scale, from 0 to a decade above its range
            row |= {"lowerBound": 0.0, "upperBound": _round(record.uncertainty.high * 10**DECADES)}
        elif estimate:
            if not value > 0:
                raise CartsimInputError("--therapy", f"calibrated parameter {name} = {value:g} cannot be "
                                                     "estimated on log10 scale (it must be positive)")
            row |= {"parameterScale": "log10", "lowerBound": _round(float(value) / 10**DECADES),
                    "upperBound": _round(float(value) * 10**DECADES)}
        rows.append(row)
    for quantity in (f.removeprefix("obs_") for f in observables.observableId):
        t = next(t for t in BY_DVID.values() if t.quantity == quantity)
        unit = quantity_unit(model, quantity)
        add, prop = _sigmas(quantity)
        rows.append({"parameterId": add, "parameterName": f"additive error SD of {t.label} ({unit})",
                     "parameterScale": "log10", "lowerBound": t.additive_sd / 100, "upperBound": t.additive_sd * 100,
                     "nominalValue": t.additive_sd, "estimate": 1})
        rows.append({"parameterId": prop, "parameterName": f"proportional error SD of {t.label} (1)",
                     "parameterScale": "log10", "lowerBound": 0.01, "upperBound": 2.0,
                     "nominalValue": PROPORTIONAL_SD, "estimate": 1})
    return pd.DataFrame(rows)


def _round(value: float) -> float:
    """``value`` to 12 significant digits (bounds print as 0.00139, not 0.0013899999999999998)."""
    return float(f"{value:.12g}")


def _clean(text: str) -> str:
    """One line without tabs, for a TSV cell."""
    return re.sub(r"\s+", " ", text).strip()


def _tsv(df: pd.DataFrame) -> str:
    return df.to_csv(sep="\t", index=False, lineterminator="\n")
