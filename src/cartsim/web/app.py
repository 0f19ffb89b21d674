"""The web application: the comparison page and the JSON API behind it (OpenAPI at ``/openapi.json``).

``create_app`` builds the app for the therapies and diseases the installed model defines, so a new therapy
or output column shows up without code changes. Simulated arms are cached; the compiled solver and the
default comparison are warmed when the server starts, so the default page answers at once.
"""

import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any, Literal, get_args

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from cartsim import __version__
from cartsim.disease import diseases
from cartsim.endpoints import label
from cartsim.errors import CartsimInputError
from cartsim.scenario import THERAPIES_UNTREATED, therapy_names
from cartsim.trial.config import MsCourse
from cartsim.web import arms as arms_mod
from cartsim.web import text
from cartsim.web.arms import (Arm, drawn, kind_of, lymphoma_reference, panel_axis, panel_title, panels,
                              published_safety, shown_for, simulate_arm)
from cartsim.web.schemas import (AnswerOut, ArmOut, Axis, Band, Choice, Comparison, Defaults, Grades,
                                 Limits, Options, PanelInfo, Problem, Proportion, PublishedSafety, Safety)

MAX_SEED = 2**31 - 1
MS = "ms"
DEFAULT_DISEASE = MS
WARM_DISEASES = (MS, "sle")     # simulated in the background after start-up
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'"
COURSE_NOTE = ("The MS course is recorded with each virtual patient; in this model version it does not change "
               "the simulated numbers.")
STATIC = resources.files("cartsim.web").joinpath("static")
ERRORS: dict[int | str, dict[str, Any]] = {422: {"model": Problem, "description": "a field is out of range or "
                                                  "unknown; the body names it and what is allowed"}}


def default_pair() -> tuple[str, str]:
    """kyv-101 against ocrelizumab where the model has it, else against no treatment."""
    names = therapy_names()
    return "kyv-101", "ocrelizumab" if "ocrelizumab" in names else THERAPIES_UNTREATED


def _safety(arm: Arm) -> Safety:
    def grades(name: str) -> Grades | None:
        e = arm.endpoints.get(name)
        return Grades.model_validate(e) if e else None
    irr = text.infusion_reaction(arm)
    return Safety(disease=arm.disease, disease_name=text.disease_name(arm.disease, arm.ms_course), n=arm.n,
                  days=arm.days[-1], crs=grades("crs_max_grade"), icans=grades("icans_max_grade"),
                  tocilizumab=arm.endpoints.get("tocilizumab_given", {}).get("value"),
                  infusion_reaction=Proportion(value=irr["value"], ci95=irr.get("ci95")) if irr else None)


def arm_out(arm: Arm, lymphoma: Arm | None, shown: list[Arm] | None = None) -> ArmOut:
    """One arm for the page; panels that none of ``shown`` (default: the arm itself) has values in are left out,
    and a drug's level where this arm is not given the drug (``shown_for``)."""
    bands = [Band.model_validate(vars(p) | {"title": panel_title(p, shown or [arm])} | arm.bands[p.column])
             for p in panels() if shown_for(p, arm, shown or [arm])]
    return ArmOut(therapy=arm.therapy, kind=arm.kind, description=arm.description, disease=arm.disease, n=arm.n,
                  n_failed=arm.n_failed, days=list(arm.days), panels=bands,
                  doses=list(arm.doses), safety=_safety(arm),
                  lymphoma=_safety(lymphoma) if lymphoma else None,
                  published=[PublishedSafety(**p) for p in published_safety(arm.therapy, arm.disease)],
                  endpoints=arm.endpoints,
                  summary=text.arm_summary(arm, lymphoma))


def _check_course(disease: str, ms_course: str | None) -> None:
    if ms_course is not None and disease != MS:
        raise CartsimInputError("ms_course", f"applies only when disease = 'ms', got disease {disease!r}")


def compare(disease: str, therapy_a: str, therapy_b: str, patients: int, days: int, seed: int,
            ms_course: str | None = None) -> Comparison:
    """Two therapies in the same virtual patients, with the lymphoma reference of each CAR-T product."""
    _check_course(disease, ms_course)
    pair = [simulate_arm(disease, t, patients, float(days), seed, ms_course) for t in (therapy_a, therapy_b)]
    lymphoma = {a.therapy: lymphoma_reference(a.therapy, patients, seed) for a in pair}
    drug_known = any(kind_of(t) == "drug" for t in therapy_names())
    axes = [Axis(column=p.column, **vars(panel_axis(pair, p))) for p in panels() if drawn(p, pair)]
    names = dict.fromkeys(n for a in pair for n in a.endpoints)
    return Comparison(
        disease=disease, disease_name=text.disease_name(disease, ms_course), ms_course=ms_course,
        patients=patients, days=days, seed=seed, arms=[arm_out(a, lymphoma[a.therapy], pair) for a in pair], axes=axes,
        endpoint_labels={n: label(n) for n in names}, glossary=text.GLOSSARY,
        summary=text.comparison_summary(pair),
        questions=[AnswerOut(**vars(q)) for q in text.questions(pair, lymphoma, drug_known)],
        disclaimer=text.DISCLAIMER)


# ---- errors -----------------------------------------------------------------------------------

def _problem(status: int, field: str | None, detail: str, allowed: str | None) -> JSONResponse:
    return JSONResponse(Problem(detail=detail, field=field, allowed=allowed).model_dump(), status_code=status)


def _validation_problem(err: RequestValidationError, limits: Limits, choices: dict[str, list[str]]) -> JSONResponse:
    e = err.errors()[0]
    field = str(e["loc"][-1]) if e.get("loc") else "request"
    bounds = {"patients": (1, limits.max_patients, "patients per request"),
              "days": (limits.min_days, limits.max_days, "days of simulated horizon per request"),
              "seed": (0, MAX_SEED, "")}
    value = e.get("input")
    if field in bounds:
        lo, hi, what = bounds[field]
        allowed = f"a whole number from {lo} to {hi}"
        if e["type"] == "less_than_equal" and what:
            return _problem(422, field, f"{field}: {value} is over the request limit of {hi} {what}", allowed)
        if e["type"] in ("less_than_equal", "greater_than_equal"):
            return _problem(422, field, f"{field}: must be from {lo} to {hi}, got {value}", allowed)
        return _problem(422, field, f"{field}: must be a whole number, got {value!r}", allowed)
    if field in choices:
        return _problem(422, field, f"{field}: unknown {field} {value!r}", ", ".join(choices[field]))
    return _problem(422, field, f"{field}: {e.get('msg', 'invalid')}, got {value!r}", None)


# ---- the app ----------------------------------------------------------------------------------

def warm(limits: Limits) -> float:
    """Compile the solver (or load it from the cache) and simulate the default comparison; returns seconds."""
    started = time.perf_counter()
    a, b = default_pair()
    compare(DEFAULT_DISEASE, a, b, limits.default_patients, limits.default_days, 0)
    return time.perf_counter() - started


def warm_rest(limits: Limits) -> None:
    """Simulate every therapy at the default size in the main diseases, so that any pair of them answers at once."""
    for disease in [d for d in WARM_DISEASES if d in diseases()]:
        for therapy in therapy_names():
            simulate_arm(disease, therapy, limits.default_patients, float(limits.default_days), 0)
            lymphoma_reference(therapy, limits.default_patients, 0)


def create_app(limits: Limits | None = None, warm_up: bool = True) -> FastAPI:
    """The app for the installed model's therapies and diseases; ``warm_up`` simulates the default at start."""
    limits = limits or Limits()
    therapies, disease_names, courses = therapy_names(), sorted(diseases()), list(get_args(MsCourse))
    # the names the installed model knows, as enums of the OpenAPI description
    Therapy = Literal[tuple(therapies)]  # type: ignore[valid-type]
    Disease = Literal[tuple(disease_names)]  # type: ignore[valid-type]
    Course = Literal[tuple(courses)]  # type: ignore[valid-type]
    choices = {"therapy": therapies, "therapy_a": therapies, "therapy_b": therapies, "disease": disease_names,
               "ms_course": courses}
    a_default, b_default = default_pair()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if warm_up:
            print("cartsim serve: compiling the model and simulating the default comparison ...", file=sys.stderr,
                  flush=True)
            print(f"cartsim serve: ready in {warm(limits):.1f} s", file=sys.stderr, flush=True)
            threading.Thread(target=warm_rest, args=(limits,), name="cartsim-warm", daemon=True).start()
        yield

    app = FastAPI(title="cartsim", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="CAR T-cell therapy and anti-CD20 antibodies on virtual cohorts. " + text.DISCLAIMER)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        return _validation_problem(err, limits, choices)

    @app.exception_handler(CartsimInputError)
    async def on_input(_: Request, err: CartsimInputError) -> JSONResponse:
        return _problem(422, err.field, str(err), err.allowed)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    Patients = Annotated[int, Query(ge=1, le=limits.max_patients, description="virtual patients per arm")]
    Days = Annotated[int, Query(ge=limits.min_days, le=limits.max_days, description="days simulated after day 0")]
    Seed = Annotated[int, Query(ge=0, le=MAX_SEED, description="random seed of the virtual cohort")]
    CourseQ = Annotated[Course | None, Query(description="MS course (disease 'ms' only)")]  # type: ignore[valid-type]

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(str(STATIC.joinpath("index.html")), media_type="text/html")

    @app.get("/api/health", summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/api/options", response_model=Options, summary="Diseases, therapies, panels, defaults and limits")
    def options() -> Options:
        return Options(
            diseases=[Choice(name=d, description=diseases()[d].description, about=diseases()[d].about or None)
                      for d in disease_names],
            therapies=[Choice(name=t, description=arms_mod.describe(t), kind=kind_of(t)) for t in therapies],
            ms_courses=courses, ms_course_note=None if arms_mod.ms_course_matters() else COURSE_NOTE,
            panels=[PanelInfo(**vars(p)) for p in panels()],
            defaults=Defaults(disease=DEFAULT_DISEASE, therapy_a=a_default, therapy_b=b_default,
                              patients=limits.default_patients, days=limits.default_days, seed=0),
            limits=limits, disclaimer=text.DISCLAIMER)

    @app.get("/api/arm", response_model=ArmOut, responses=ERRORS, summary="One therapy in one disease")
    def arm(therapy: Annotated[Therapy, Query()] = a_default,  # type: ignore[valid-type]
            disease: Annotated[Disease, Query()] = DEFAULT_DISEASE,  # type: ignore[valid-type]
            patients: Patients = limits.default_patients, days: Days = limits.default_days, seed: Seed = 0,
            ms_course: CourseQ = None) -> ArmOut:
        _check_course(disease, ms_course)
        result = simulate_arm(disease, therapy, patients, float(days), seed, ms_course)
        return arm_out(result, lymphoma_reference(therapy, patients, seed))

    @app.get("/api/compare", response_model=Comparison, responses=ERRORS,
             summary="Two therapies in the same virtual patients, with plain-language summaries")
    def comparison(therapy_a: Annotated[Therapy, Query()] = a_default,  # type: ignore[valid-type]
                   therapy_b: Annotated[Therapy, Query()] = b_default,  # type: ignore[valid-type]
                   disease: Annotated[Disease, Query()] = DEFAULT_DISEASE,  # type: ignore[valid-type]
                   patients: Patients = limits.default_patients, days: Days = limits.default_days,
                   seed: Seed = 0, ms_course: CourseQ = None) -> Comparison:
        return compare(disease, therapy_a, therapy_b, patients, days, seed, ms_course)

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(), host=host, port=port, log_level="info")
