"""The typed contract of ``summary.json`` (pydantic), with its JSON Schema.

``cartsim.trial.summary`` computes the statistics; every ``summary.json`` is checked
against :class:`TrialSummary` before it is written, so a field that drifts from what
the endpoint dictionary's kinds promise fails the write instead of reaching a
reader. ``TrialSummary.model_json_schema()`` gives the schema for other tools.
Unknown fields are refused (``extra = "forbid"``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from cartsim.endpoint_dictionary import Kind

Number = float | None       # JSON has no NaN: an undefined statistic is null


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SetInterval(_Strict):
    """An arm statistic over the parameter-uncertainty sets (``cartsim trial --uncertainty``)."""

    median: Number
    p025: Number
    p975: Number
    n_sets: int
    n_sets_undefined: int


class _Endpoint(_Strict):
    kind: Kind
    parameter_uncertainty: dict[str, SetInterval] | None = None


class _Stats(_Endpoint):
    """The statistics over the patients with a value (``cartsim.stats.describe``)."""

    mean: Number
    sd: Number
    median: Number
    p05: Number
    p25: Number
    p75: Number
    p95: Number
    n: int


class Described(_Stats):
    """continuous and count: the statistics over the patients with a value."""

    kind: Literal["continuous", "count"]


class TimeToEvent(_Stats):
    """time to event: the statistics over observed events, the counts, and the Kaplan-Meier median."""

    kind: Literal["time_to_event"]
    n_events: int
    n_censored: int
    km_median: Number
    km_median_ci95: list[Number] | None
    n_not_applicable: int | None = None


class NotApplicable(_Endpoint):
    """time to event that applies to no patient of the arm (a return needs a fall first)."""

    kind: Literal["time_to_event"]
    applicable: Literal[False]


class Ordinal(_Endpoint):
    """ordinal (grades 0-4): the share of patients at each grade and at or above 1, 2 and 3."""

    kind: Literal["ordinal"]
    fractions: dict[str, Number]
    fraction_any: Number
    fraction_grade2plus: Number
    fraction_grade3plus: Number


class Proportion(_Endpoint):
    """binary and rate: the value with its 95% confidence interval."""

    kind: Literal["binary", "rate"]
    value: Number
    ci95: list[Number] | None


Endpoint = Described | TimeToEvent | NotApplicable | Ordinal | Proportion


class Results(_Strict):
    """Patients, failures and endpoint statistics of a group of patients (an arm, or one disease course in it)."""

    n: int
    n_failed: int
    endpoints: dict[str, Endpoint]


class ArmSummary(Results):
    name: str
    therapy: str
    seed: int
    n_by_ms_course: dict[str, int] | None = None
    by_ms_course: dict[str, Results] | None = None


class TrialSummary(_Strict):
    trial: str
    seed: int
    cartsim_version: str
    config: dict[str, Any]                       # the trial file as read (cartsim.trial.config.TrialConfig)
    arms: list[ArmSummary]
    parameter_uncertainty: dict[str, Any] | None = None   # the parameter sets, where --uncertainty ran


def checked(summary: dict) -> dict:
    """``summary`` itself, after checking it against :class:`TrialSummary` (raises ``ValidationError``)."""
    TrialSummary.model_validate(summary)
    return summary
