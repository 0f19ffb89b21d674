"""Trial configuration: a TOML file read into validated, immutable models.

Every error is a :class:`CartsimInputError` naming the field path (for
example ``arm[1].therapy``), the bad value, the allowed values and, when it
can be found, the line of the TOML file.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cartsim.disease import CourseMix, Courses, diseases
from cartsim.endpoint_dictionary import KINDS
from cartsim.ms_outcomes import MRI_INTERVAL_WEEKS
from cartsim.errors import CartsimInputError
from cartsim.scenario import THERAPIES_UNTREATED, Scenario, therapy_names
from cartsim.therapy import products

MsCourse = Literal["rrms", "spms", "ppms"]
EDSS_DISEASES = ("ms", "nmosd")
EDSS_RANGE = (0.0, 10.0)
EDSS_STEPS = (0.0, *(1.0 + 0.5 * k for k in range(19)))   # the EDSS scale: 0, 1.0, 1.5, ..., 10
AGE_RANGE = (0.0, 120.0)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrialSection(_Strict):
    name: str = Field(min_length=1)
    seed: int = Field(ge=0)
    horizon_days: float = Field(ge=1)
    primary_endpoint: str | None = None                 # a name from the endpoint dictionary
    alpha: float = 0.05                                 # two-sided significance level of the primary test
    comparison: tuple[str, str] | None = None           # two arm names; default: the first two arms
    mri_interval_weeks: float = Field(default=MRI_INTERVAL_WEEKS, gt=0)   # scheduled MRI scans (MS disease activity)

    @field_validator("alpha")
    @classmethod
    def _alpha(cls, v: float) -> float:
        if not 0.0 < v < 1.0:
            raise ValueError("must satisfy 0 < alpha < 1")
        return v


def _check_range(value: tuple[float, float] | None, bounds: tuple[float, float]) -> tuple[float, float] | None:
    if value is not None and not bounds[0] <= value[0] <= value[1] <= bounds[1]:
        raise ValueError(f"must be [low, high] with {bounds[0]:g} <= low <= high <= {bounds[1]:g}")
    return value


COURSE_FORMS = ('one of rrms, spms, ppms; a list of them (equal shares), e.g. ["ppms", "spms"]; or a table of '
                'shares, e.g. {ppms = 0.4, spms = 0.6}')


class PopulationSection(_Strict):
    n: int = Field(ge=1)
    disease: str
    ms_course: str | list[str] | dict[str, float] | None = None   # one course, or a mix (see ``courses``)
    age: tuple[float, float] | None = None
    edss: tuple[float, float] | None = None

    @field_validator("ms_course", mode="before")
    @classmethod
    def _ms_course(cls, v: object) -> object:
        names = v if isinstance(v, (list, dict)) else [v] if v is not None else []
        bad = [c for c in names if c not in get_args(MsCourse)]
        if bad or (isinstance(v, (list, dict)) and not v) or not isinstance(v, (str, list, dict, type(None))):
            raise ValueError(f"must be {COURSE_FORMS}")
        try:
            CourseMix.of(v) if isinstance(v, (list, dict)) else None
        except ValueError as err:
            raise ValueError(f"{err} ({COURSE_FORMS})") from None
        return v

    @property
    def courses(self) -> Courses:
        """The course (a name), or a :class:`CourseMix` when the population mixes courses."""
        v = self.ms_course
        if isinstance(v, (list, dict)):
            mix = CourseMix.of(v)
            return mix.names[0] if len(mix.names) == 1 else mix
        return v

    @field_validator("age")
    @classmethod
    def _age(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        return _check_range(v, AGE_RANGE)

    @field_validator("edss")
    @classmethod
    def _edss(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        v = _check_range(v, EDSS_RANGE)
        if v is not None and not any(v[0] <= s <= v[1] for s in EDSS_STEPS):
            raise ValueError("must contain a step of the EDSS scale (0, 1.0, 1.5, ..., 10)")
        return v


class ArmSection(_Strict):
    name: str = Field(min_length=1)
    therapy: str
    dose: str | None = None
    lymphodepletion: str | None = None
    regimen: str | None = None
    maintenance: str | None = None          # an antibody after a CAR-T product (its doses: regimen)
    retreatment: bool = False               # re-infuse the CAR-T product when autoreactive clones return
    parameters: dict[str, float] | None = None   # model parameter values for this arm (e.g. reset_halflife)
    iiv: dict[str, float] | None = None          # between-patient SDs (omega) replacing the table's (from a fit)
    sources: dict[str, str] | None = None        # where values of ``parameters`` come from (set by --parameters)
    n: int | None = Field(default=None, ge=1)   # patients in this arm; default population.n


DURABILITY_HORIZON_YEARS = (1.0, 50.0)     # allowed range of [durability] horizon_years


class DurabilitySection(_Strict):
    """The report's re-runs of the CAR-T arms across reset half-lives (``cartsim.trial.durability``)."""

    horizon_years: float = 10.0     # their own horizon: autoreactive clones return years after the infusion

    @field_validator("horizon_years")
    @classmethod
    def _horizon(cls, v: float) -> float:
        lo, hi = DURABILITY_HORIZON_YEARS
        if not lo <= v <= hi:
            raise ValueError(f"must be between {lo:g} and {hi:g} years")
        return v


class TrialConfig(_Strict):
    trial: TrialSection
    population: PopulationSection
    arm: list[ArmSection] = Field(min_length=1)
    durability: DurabilitySection = DurabilitySection()

    def scenario(self, arm: int) -> Scenario:
        """The scenario of arm ``arm`` (index into ``self.arm``)."""
        a = self.arm[arm]
        extra = {"regimen": a.regimen} if a.regimen is not None else {}
        return Scenario.make(a.therapy, self.population.disease, self.trial.horizon_days, a.dose,
                             a.lymphodepletion, course=self.population.courses, maintenance=a.maintenance,
                             retreat=a.retreatment, parameters=a.parameters, iiv=a.iiv,
                             sources=a.sources, **extra)

    @property
    def trial_mri_interval_days(self) -> float:
        """Days between scheduled MRIs (``trial.mri_interval_weeks``, 24 weeks by default)."""
        return 7.0 * self.trial.mri_interval_weeks

    def arm_n(self, arm: int) -> int:
        """Patients in arm ``arm``: its own ``n``, else ``population.n``."""
        return self.arm[arm].n or self.population.n

    def comparison_arms(self) -> tuple[int, int]:
        """Indices of the two compared arms (``trial.comparison``, default the first two arms)."""
        if self.trial.comparison is None:
            if len(self.arm) < 2:
                raise CartsimInputError("arm", f"a comparison needs two arms, the trial has {len(self.arm)}")
            return 0, 1
        names = [a.name for a in self.arm]
        first, second = self.trial.comparison
        return names.index(first), names.index(second)

    def with_n(self, n: int | None) -> "TrialConfig":
        """The same trial with ``n`` patients in every arm (``None``: unchanged)."""
        if n is None:
            return self
        if n < 1:
            raise CartsimInputError("--n", f"must be at least 1, got {n}", "an integer >= 1")
        return self.model_copy(update={"population": self.population.model_copy(update={"n": n}),
                                       "arm": [a.model_copy(update={"n": None}) for a in self.arm]})

    def with_fitted(self, fitted) -> "TrialConfig":
        """The same trial with a fit's typical values and between-patient SDs (:class:`cartsim.fit.fitted.Fitted`)
        in every arm: an arm's own ``parameters`` and ``iiv`` win, an arm of another therapy keeps the values its
        therapy sets itself, and an SD applies where the parameter table gives the parameter variability."""
        from cartsim.fit.fitted import arm_values
        from cartsim.model import build_model

        table = build_model().table
        arms = []
        for i, a in enumerate(self.arm):
            values = arm_values(fitted, self.scenario(i), table)
            omegas = {k: v for k, v in fitted.iiv.items() if k in values and table[k].iiv_omega > 0}
            own = a.parameters or {}
            sources = {k: fitted.describe() for k in values if k not in own}
            arms.append(a.model_copy(update={"parameters": (values | own) or None,
                                             "iiv": (omegas | (a.iiv or {})) or None,
                                             "sources": (sources | (a.sources or {})) or None}))
        return self.model_copy(update={"arm": arms})

    def with_seed(self, seed: int | None) -> "TrialConfig":
        """The same trial with random seed ``seed`` (``None``: unchanged)."""
        if seed is None:
            return self
        if seed < 0:
            raise CartsimInputError("--seed", f"must be at least 0, got {seed}", "an integer >= 0")
        return self.model_copy(update={"trial": self.trial.model_copy(update={"seed": seed})})


# ---- loading and error reporting -------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")
_OPTION = {"--therapy": "therapy", "--dose": "dose", "--lymphodepletion": "lymphodepletion",
           "--regimen": "regimen", "--maintenance": "maintenance", "--retreat": "retreatment",
           "--parameter": "parameters", "iiv": "iiv"}


def line_of(text: str, loc: tuple[str | int, ...]) -> int | None:
    """1-based line of ``loc`` (e.g. ``("arm", 1, "therapy")``) in TOML ``text``, if it can be found."""
    if not loc:
        return None
    section, index = str(loc[0]), loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    key = next((str(p) for p in loc[1:] if not isinstance(p, int)), None)
    current: str | None = None
    count: dict[str, int] = {}
    header_line: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if m := _HEADER.match(line):
            current = m[2]
            count[current] = count.get(current, -1) + 1
            if current == section and (index is None or count[current] == index):
                header_line = number
                if key is None:
                    return number
            continue
        wanted = key if current is not None else (section if len(loc) == 1 else None)   # top-level keys
        here = current is None or (current == section and (index is None or count.get(current) == index))
        if here and wanted is not None and (m := _KEY.match(line)) and m[1] == wanted:
            return number
    return header_line


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The config model class that holds the last key of ``loc``."""
    sections: dict[str, type[BaseModel]] = {"trial": TrialSection, "population": PopulationSection,
                                            "arm": ArmSection, "durability": DurabilitySection}
    return TrialConfig if len(loc) == 1 else sections.get(str(loc[0]))


def _path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _where(source: str, text: str, loc: tuple[str | int, ...]) -> str:
    line = line_of(text, loc)
    return f" ({source} line {line})" if line else f" ({source})"


def _from_pydantic(err: ValidationError, source: str, text: str) -> CartsimInputError:
    e = min(err.errors(), key=lambda e: e["type"] != "extra_forbidden")  # a misspelt key explains the rest
    loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and "[" in p))  # drop union tags
    where = _where(source, text, loc)
    if e["type"] == "extra_forbidden":
        model = _model_at(loc)
        allowed = ", ".join(model.model_fields) if model else None
        return CartsimInputError(_path(loc), f"unknown key {str(loc[-1])!r}{where}", allowed)
    if e["type"] == "missing" and not isinstance(loc[-1], int):
        return CartsimInputError(_path(loc), f"missing required key{where}")
    msg = e["msg"].removeprefix("Value error, ")
    allowed = None
    if e["type"] == "literal_error":
        msg, allowed = "unknown value", e["ctx"]["expected"]
    elif "ge" in e.get("ctx", {}):
        allowed = f">= {e['ctx']['ge']}"
    elif "gt" in e.get("ctx", {}):
        allowed = f"> {e['ctx']['gt']}"
    elif loc[-1] == "alpha":
        allowed = "a number between 0 and 1, e.g. 0.05"
    elif tuple(loc) == ("durability", "horizon_years"):
        allowed = "years from {:g} to {:g}, e.g. 10".format(*DURABILITY_HORIZON_YEARS)
    return CartsimInputError(_path(loc), f"{msg}, got {e['input']!r}{where}", allowed)


def _relabel(err: CartsimInputError, field: str, where: str) -> CartsimInputError:
    """``err`` re-labelled with a config field path and location."""
    message = str(err).removeprefix(f"{err.field}: ")
    if err.allowed:
        message = message.removesuffix(f" (allowed: {err.allowed})")
    return CartsimInputError(field, message + where, err.allowed)


def _check_analysis(cfg: TrialConfig, source: str, text: str) -> None:
    """``trial.primary_endpoint`` names an endpoint of the dictionary; ``trial.comparison`` two arms."""
    at = lambda *loc: _where(source, text, loc)  # noqa: E731
    ep = cfg.trial.primary_endpoint
    if ep is not None and ep not in KINDS:
        raise CartsimInputError("trial.primary_endpoint", f"unknown endpoint {ep!r}"
                                f"{at('trial', 'primary_endpoint')}", ", ".join(sorted(KINDS)))
    names = [a.name for a in cfg.arm]
    if cfg.trial.comparison is not None:
        for i, name in enumerate(cfg.trial.comparison):
            if name not in names:
                raise CartsimInputError(f"trial.comparison[{i}]", f"unknown arm {name!r}"
                                        f"{at('trial', 'comparison')}", ", ".join(repr(n) for n in names))
        if cfg.trial.comparison[0] == cfg.trial.comparison[1]:
            raise CartsimInputError("trial.comparison", f"compares arm {cfg.trial.comparison[0]!r} with itself"
                                    f"{at('trial', 'comparison')}", "two different arm names")


def _check_semantics(cfg: TrialConfig, source: str, text: str) -> None:
    pop = cfg.population
    at = lambda *loc: _where(source, text, loc)  # noqa: E731
    if pop.disease not in diseases():
        raise CartsimInputError("population.disease", f"unknown disease {pop.disease!r}{at('population', 'disease')}",
                                ", ".join(sorted(diseases())))
    if pop.ms_course is not None and pop.disease != "ms":
        raise CartsimInputError("population.ms_course", f"applies only when disease = 'ms', got disease "
                                f"{pop.disease!r}{at('population', 'ms_course')}")
    if pop.edss is not None and pop.disease not in EDSS_DISEASES:
        raise CartsimInputError("population.edss", f"applies only to {', '.join(EDSS_DISEASES)}, got disease "
                                f"{pop.disease!r}{at('population', 'edss')}")
    names = therapy_names()
    for i, arm in enumerate(cfg.arm):
        if arm.name in [a.name for a in cfg.arm[:i]]:
            raise CartsimInputError(f"arm[{i}].name", f"duplicate arm name {arm.name!r}{at('arm', i, 'name')}",
                                    "a name not used by another arm")
        if arm.therapy not in names:
            raise CartsimInputError(f"arm[{i}].therapy", f"unknown therapy {arm.therapy!r}{at('arm', i, 'therapy')}",
                                    ", ".join(sorted(names)))
        if arm.regimen is not None and arm.maintenance is None and \
                (arm.therapy in products() or arm.therapy == THERAPIES_UNTREATED):
            kind = "a CAR-T product (set dose and lymphodepletion)" if arm.therapy in products() else "no treatment"
            raise CartsimInputError(f"arm[{i}].regimen", f"{arm.therapy!r} is {kind}; a regimen applies only to "
                                    f"repeated-dose therapies, got {arm.regimen!r}{at('arm', i, 'regimen')}")
        try:
            cfg.scenario(i)
        except CartsimInputError as err:
            key = _OPTION.get(err.field)
            if key is None:
                raise
            raise _relabel(err, f"arm[{i}].{key}", at("arm", i, key)) from None
    _check_analysis(cfg, source, text)


def parse_config(text: str, source: str = "config") -> TrialConfig:
    """Validate TOML ``text``; ``source`` names the file in error messages."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise CartsimInputError("CONFIG", f"{source} is not valid TOML: {err}") from None
    try:
        cfg = TrialConfig.model_validate(raw)
    except ValidationError as err:
        raise _from_pydantic(err, source, text) from None
    _check_semantics(cfg, source, text)
    return cfg


def load_config(path: str | Path) -> TrialConfig:
    """Read and validate the trial configuration at ``path``."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise CartsimInputError("CONFIG", f"cannot read {str(path)!r} ({err.strerror})") from None
    except UnicodeDecodeError:
        raise CartsimInputError("CONFIG", f"{str(path)!r} is not a UTF-8 text file") from None
    return parse_config(text, path.name)
