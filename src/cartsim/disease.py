"""Disease baselines as data (``cartsim/data/diseases.toml``)."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from cartsim.model.parameters import checked_overrides, load_table


@dataclass(frozen=True)
class Course:
    """A disease course (MS: rrms, spms, ppms) and the values it sets on top of its disease's."""

    name: str
    description: str
    edss_median: float
    overrides: dict[str, float]
    provenance: dict[str, dict[str, str]]


@dataclass(frozen=True)
class CourseMix:
    """Several disease courses in one population, each with its share of the patients (shares sum to 1).

    Each patient's course is drawn from its own random stream (:func:`cartsim.population.sample`)."""

    shares: tuple[tuple[str, float], ...]

    @staticmethod
    def of(courses: Sequence[str] | Mapping[str, float]) -> "CourseMix":
        """Equal shares of a list of courses, or a table of course: weight (normalised to sum to 1)."""
        weights = dict(courses) if isinstance(courses, Mapping) else dict.fromkeys(courses, 1.0)
        if len(weights) != len(courses) or not weights:
            raise ValueError("must name at least one course, each once")
        if not all(isinstance(w, (int, float)) and math.isfinite(w) and w > 0 for w in weights.values()):
            raise ValueError("every course share must be a number > 0")
        total = float(sum(weights.values()))
        return CourseMix(tuple((c, float(w) / total) for c, w in weights.items()))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.shares)

    @property
    def main(self) -> str:
        """The course with the largest share (the first of equals): the typical patient's."""
        return max(self.shares, key=lambda cs: cs[1])[0]

    def pick(self, u: float) -> str:
        """The course of a patient whose uniform draw is ``u`` (0 <= u < 1)."""
        edge = 0.0
        for name, share in self.shares:
            edge += share
            if u < edge:
                return name
        return self.shares[-1][0]

    def __str__(self) -> str:
        return ", ".join(f"{c} {100 * s:.0f}%" for c, s in self.shares)


Courses = str | CourseMix | None   # one course, a mix, or none (the disease's default course)


def single_course(course: Courses) -> str | None:
    """The one course that stands for ``course``: itself, or a mix's main course."""
    return course.main if isinstance(course, CourseMix) else course


@dataclass(frozen=True)
class Disease:
    name: str
    description: str
    female_share: float
    age_median: float
    overrides: dict[str, float]
    provenance: dict[str, dict[str, str]]
    courses: dict[str, Course] = field(default_factory=dict)
    edss_median: float | None = None
    default_course: str | None = None
    autoantibody: str = "autoantibody"    # what people call the disease's pathogenic antibody (AQP4-IgG)
    short: str = ""            # the disease's name in a sentence ('MS', 'NMOSD'); its key where not set
    about: str = ""            # the disease in plain language, for the web page
    standard: str | None = None    # the antibody treatment people take today, as they know it ('Ocrevus (ocrelizumab)')
    cns: bool = False          # the disease lives in the brain and spinal cord: its CNS compartment is shown

    @property
    def names_autoantibody(self) -> bool:
        """Whether the disease is known by a measured autoantibody (AQP4-IgG, anti-AChR, anti-dsDNA)."""
        return self.autoantibody != "autoantibody"

    def course(self, name: str | None) -> Course | None:
        """The course ``name`` (None: the default course, if the disease has courses)."""
        if name is None:
            name = self.default_course
        if name is None:
            return None
        if name not in self.courses:
            allowed = ", ".join(self.courses) or "none"
            raise ValueError(f"disease {self.name!r} has no course {name!r}; courses: {allowed}")
        return self.courses[name]

    def values(self, course: str | None = None) -> dict[str, float]:
        """Parameter values the disease (and course) set."""
        c = self.course(course)
        return {**self.overrides, **(c.overrides if c else {})}

    def value_provenance(self, course: str | None = None) -> dict[str, dict[str, str]]:
        """Kind and source of each value of :meth:`values`, with who set it."""
        out = {k: {**v, "set_by": f"disease {self.name}"} for k, v in self.provenance.items() if k in self.overrides}
        c = self.course(course)
        if c is not None:
            out |= {k: {**v, "set_by": f"course {c.name}"} for k, v in c.provenance.items() if k in c.overrides}
        return out


@lru_cache(maxsize=1)
def diseases() -> dict[str, Disease]:
    raw = tomllib.loads(resources.files("cartsim.data").joinpath("diseases.toml").read_text())
    table = load_table()
    out = {}
    for name, e in raw.items():
        e = _with_base(name, e, raw)
        prov = e.get("provenance", {})
        overrides = checked_overrides(f"disease {name!r}", e["overrides"], prov, table)
        courses = {}
        for cname, c in e.get("courses", {}).items():
            cprov = c.get("provenance", {})
            courses[cname] = Course(cname, c["description"], float(c["edss_median"]),
                                    checked_overrides(f"disease {name!r} course {cname!r}", c["overrides"], cprov,
                                                      table), cprov)
        edss = e.get("edss_median")
        out[name] = Disease(name, e["description"], float(e["female_share"]), float(e["age_median"]),
                            overrides, prov, courses, None if edss is None else float(edss),
                            e.get("default_course"), e.get("autoantibody", "autoantibody"), e.get("short", name),
                            e.get("about", ""), e.get("standard"), bool(e.get("cns", False)))
    return out


def _with_base(name: str, entry: dict, raw: dict) -> dict:
    """A disease entry with ``base = "other"`` (a form of another disease, e.g. MuSK-antibody myasthenia gravis
    of myasthenia gravis): the base's fields, values and their provenance, with the entry's own on top."""
    base = entry.get("base")
    if base is None:
        return entry
    if base not in raw or "base" in raw[base]:
        allowed = ", ".join(sorted(k for k, v in raw.items() if "base" not in v and k != name))
        raise ValueError(f"disease {name!r}: base {base!r} must be a disease without a base of its own ({allowed})")
    parent = raw[base]
    return {**parent, **entry, "overrides": {**parent["overrides"], **entry.get("overrides", {})},
            "provenance": {**parent.get("provenance", {}), **entry.get("provenance", {})}}
