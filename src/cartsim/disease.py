"""Disease baselines as data (``cartsim/data/diseases.toml``)."""

from __future__ import annotations

import tomllib
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
                            e.get("default_course"))
    return out
