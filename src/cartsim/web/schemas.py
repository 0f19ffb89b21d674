"""The JSON API's request limits and response models (these make its OpenAPI description)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from cartsim.trial.summary_schema import Endpoint


class Limits(BaseModel):
    """What one request may ask for: the work of a request grows with patients x arms."""

    max_patients: Annotated[int, Field(ge=1)] = 300
    min_days: Annotated[int, Field(ge=1)] = 30
    max_days: Annotated[int, Field(ge=1)] = 1095
    default_patients: Annotated[int, Field(ge=1)] = 100
    default_days: Annotated[int, Field(ge=1)] = 365


class Problem(BaseModel):
    """A request the API refuses: the field at fault, what went wrong, and what is allowed."""

    detail: str
    field: str | None = None
    allowed: str | None = None


class Choice(BaseModel):
    name: str
    description: str
    kind: str | None = None          # therapies: car-t | drug | untreated
    about: str | None = None         # diseases: the disease in plain language


class Reference(BaseModel):
    value: float
    label: str                       # e.g. the flow-cytometry detection limit (endpoint dictionary)
    detection: bool = False          # an assay's detection limit: the page draws no line below it


class PanelInfo(BaseModel):
    column: str
    title: str
    unit: str
    log: bool
    references: list[Reference] = []  # reference lines on the axis (assay limits, lower limit of normal)


class Defaults(BaseModel):
    disease: str
    therapy_a: str
    therapy_b: str
    patients: int
    days: int
    seed: int


class Options(BaseModel):
    diseases: list[Choice]
    therapies: list[Choice]
    ms_courses: list[str]
    ms_course_note: str | None
    panels: list[PanelInfo]
    defaults: Defaults
    limits: Limits
    disclaimer: str


class Band(PanelInfo):
    p05: list[float | None]
    median: list[float | None]
    p95: list[float | None]


class DoseOut(BaseModel):
    day: float
    kind: str                        # lymphodepletion | car-t | dose
    label: str
    duration_days: float
    amount_mg: float | None


class Grades(BaseModel):
    fractions: dict[str, float | None]
    fraction_any: float | None
    fraction_grade2plus: float | None
    fraction_grade3plus: float | None


class Proportion(BaseModel):
    value: float
    ci95: list[float] | None = Field(description="Wilson 95% confidence interval")


class Safety(BaseModel):
    disease: str
    disease_name: str
    n: int
    days: float
    crs: Grades | None
    icans: Grades | None
    tocilizumab: float | None
    infusion_reaction: Proportion | None = Field(
        default=None, description="share of patients with at least one infusion-related reaction; null where the "
                                  "model has no data for the therapy (not applicable, not 0)")


class PublishedSafety(BaseModel):
    """What a trial of the same therapy in the same disease (else in another autoimmune disease) reported
    (``targets.yaml``): shares of its ``n``
    patients; null where the source does not say."""

    label: str                       # the trial ('MG-001')
    population: str                  # its patients, in its words
    source: str
    n: int
    crs_any: float | None = None
    crs_grade2plus: float | None = None
    icans_any: float | None = None
    icans_grade2plus: float | None = None


class Axis(BaseModel):
    """The value axis of a panel, shared by both arms: it contains every drawn value (lo <= value <= hi)."""

    column: str
    log: bool
    lo: float
    hi: float
    ticks: list[float]


class ArmOut(BaseModel):
    therapy: str
    kind: str
    description: str
    disease: str
    n: int
    n_failed: int
    days: list[float]
    panels: list[Band]
    doses: list[DoseOut]
    safety: Safety
    lymphoma: Safety | None = Field(description="the same CAR-T product in large B-cell lymphoma")
    published: list[PublishedSafety] = Field(default=[], description="what trials of the same therapy in the same "
                                                                     "disease reported, beside the simulated safety")
    endpoints: dict[str, Endpoint] = Field(description="summary.json's entry for each endpoint")
    summary: list[str]


class AnswerOut(BaseModel):
    id: str
    question: str
    answer: str


class Comparison(BaseModel):
    disease: str
    disease_name: str
    ms_course: str | None
    patients: int
    days: int
    seed: int
    arms: list[ArmOut]
    axes: list[Axis] = Field(description="one value axis per panel, over both arms")
    endpoint_labels: dict[str, str] = Field(description="the human name of each endpoint")
    glossary: str
    summary: list[str]
    questions: list[AnswerOut]
    disclaimer: str
