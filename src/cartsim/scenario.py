"""A scenario: a disease and a therapy, turned into the engine's inputs for a population."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cartsim.disease import CourseMix, Courses, Disease, diseases, single_course
from cartsim.engine import Doses, Solution, Trigger, solve
from cartsim.errors import CartsimInputError, choose
from cartsim.model import Model, ParameterTable, build_model
from cartsim.model.ir import Event
from cartsim.population import Population, typical_values
from cartsim.therapy import Antibody, CarTProduct, antibodies, lymphodepletion_regimens, products

RETREAT = "retreatment"   # the model's event for a second infusion when autoreactive clones return


def trigger(event: Event) -> Trigger:
    """The engine's trigger for a model event."""
    return Trigger(event.observable, event.threshold, event.state, event.amount, event.max_fires)

THERAPIES_UNTREATED = "untreated"
PLACEBO = "placebo"   # no drug effect (the model has no placebo response); named for trial arms


def therapy_names() -> list[str]:
    return [*products(), *antibodies(), PLACEBO, THERAPIES_UNTREATED]


@dataclass(frozen=True)
class Scenario:
    disease: Disease
    product: CarTProduct | None     # a CAR-T product, or None
    days: float
    antibody: Antibody | None = None  # an anti-CD20 antibody with its regimen, or None
    course: Courses = None            # the disease course (MS: rrms, spms, ppms), a CourseMix, or None
    label: str | None = None          # the therapy's name when there is no drug ('placebo')
    retreat: bool = False             # a second CAR-T infusion when autoreactive clones return
    parameters: tuple[tuple[str, float], ...] = ()   # model parameters the scenario sets (e.g. reset_halflife)
    iiv: tuple[tuple[str, float], ...] = ()   # between-patient SDs (omega) replacing the table's (e.g. from a fit)
    sources: tuple[tuple[str, str], ...] = ()  # where scenario values come from, where known (e.g. a fit)

    @staticmethod
    def make(therapy: str, disease: str = "sle", days: float = 365, dose: str | None = None,
             lymphodepletion: str | None = None, regimen: str | None = None,
             course: Courses = None, maintenance: str | None = None, retreat: bool = False,
             parameters: dict[str, float] | None = None, iiv: dict[str, float] | None = None,
             sources: dict[str, str] | None = None) -> "Scenario":
        """A scenario from names. ``maintenance``: an antibody given after a CAR-T product (its doses from
        ``regimen``); ``retreat``: re-infuse the product when autoreactive clones return; ``parameters``:
        model parameter values for this scenario (each patient's random effect is kept); ``iiv``: between-patient
        SDs of log values that replace the table's (each patient keeps its standard-normal draw); ``sources``: where
        values of ``parameters`` come from (a fit), for the provenance the report shows."""
        dis = choose("--disease", disease, diseases())
        if course is not None:
            if not dis.courses:
                raise CartsimInputError("--ms-course", f"disease {disease!r} has no courses", "no course")
            for c in (course.names if isinstance(course, CourseMix) else (course,)):
                choose("--ms-course", c, dis.courses)
        product, antibody = None, None
        choose("--therapy", therapy, dict.fromkeys(therapy_names()))
        if (maintenance is not None or retreat) and therapy not in products():
            raise CartsimInputError("--maintenance" if maintenance is not None else "--retreat",
                                    f"applies after a CAR-T product, got therapy {therapy!r}", ", ".join(products()))
        if therapy in antibodies():
            if dose is not None or lymphodepletion is not None:
                raise CartsimInputError("--therapy", f"{therapy!r} is an antibody: set its doses with --regimen, "
                                        "not --dose or --lymphodepletion")
            antibody = antibodies()[therapy].with_regimen(regimen)
        elif regimen is not None and maintenance is None:
            raise CartsimInputError("--regimen", f"{therapy!r} takes no regimen; regimens apply to the antibodies",
                                    ", ".join(antibodies()))
        elif therapy in (THERAPIES_UNTREATED, PLACEBO):
            if dose is not None or lymphodepletion is not None:
                raise CartsimInputError("--therapy", f"{therapy!r} takes no --dose or --lymphodepletion")
        else:
            product = products()[therapy].with_dose(dose).with_lymphodepletion(lymphodepletion)
            if maintenance is not None:
                antibody = choose("--maintenance", maintenance, antibodies()).with_regimen(regimen)  # type: ignore[union-attr]
        try:
            days = float(days)
        except (TypeError, ValueError):
            raise CartsimInputError("--days", f"must be a number, got {days!r}", "a whole number of days >= 1")
        if not np.isfinite(days) or days < 1:
            raise CartsimInputError("--days", f"must be at least 1, got {days:g}", "a whole number of days >= 1")
        table = build_model().table
        for name, value in (parameters or {}).items():
            if name not in table:
                raise CartsimInputError("--parameter", f"unknown model parameter {name!r}",
                                        "a parameter of `cartsim parameters`")
            if table[name].kind == "derived":
                raise CartsimInputError("--parameter", f"{name!r} is derived from other parameters; set those",
                                        "a parameter that is not derived")
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise CartsimInputError("--parameter", f"{name} must be a finite number >= 0, got {value!r}",
                                        "a finite number >= 0")
        for name, omega in (iiv or {}).items():
            if name not in table or table[name].iiv_omega <= 0:
                raise CartsimInputError("iiv", f"{name!r} has no between-patient variability in the parameter table "
                                        "to replace", ", ".join(r.name for r in table if r.iiv_omega > 0))
            if isinstance(omega, bool) or not isinstance(omega, (int, float)) or not np.isfinite(omega) or omega <= 0:
                raise CartsimInputError("iiv", f"{name} must be a finite number > 0, got {omega!r}",
                                        "a log-scale SD > 0")
        return Scenario(dis, product, days, antibody, course, PLACEBO if therapy == PLACEBO else None, retreat,
                        tuple(sorted((k, float(v)) for k, v in (parameters or {}).items())),
                        tuple(sorted((k, float(v)) for k, v in (iiv or {}).items())),
                        tuple(sorted((k, str(v)) for k, v in (sources or {}).items() if k in (parameters or {}))))

    @property
    def therapy(self) -> str:
        """The therapy's name ('untreated' when there is none)."""
        drug = self.product or self.antibody
        return drug.name if drug else (self.label or THERAPIES_UNTREATED)

    def describe(self) -> str:
        """One line: the therapy and how it is given."""
        text = self.therapy
        if self.product is not None:
            ld = self.product.lymphodepletion
            text = (f"{self.product.name} ({self.product.schedule}, "
                    + ("no lymphodepletion)" if ld == "none" else f"lymphodepletion {ld})"))
            if self.retreat:
                text += ", re-infused once when autoreactive clones return"
        if self.antibody is not None:
            ab = f"{self.antibody.name} ({self.antibody.regimen})"
            text = f"{text}, then {ab}" if self.product is not None else ab
        if self.parameters:
            text += "; with " + ", ".join(f"{k} = {v:g}" for k, v in self.parameters)
        return text

    def events(self, model: Model | None = None) -> tuple[Event, ...]:
        """The model's state-triggered doses this scenario uses: first those every therapy has (the tocilizumab
        rescue), then re-treatment when asked for. The order is the order of ``Solution.trigger_times``, which the
        endpoints read (``cartsim.endpoints``: the rescue first, re-treatment second)."""
        events = (model or build_model()).events
        asked = (RETREAT,) if self.retreat else ()
        return (*(e for e in events if e.always), *(e for e in events if e.name in asked))

    def triggers(self, model: Model | None = None) -> tuple[Trigger, ...]:
        """:meth:`events` as the engine's triggers."""
        return tuple(trigger(e) for e in self.events(model))

    def dosing(self) -> list[tuple[float, str]]:
        """Drug administrations over the horizon as (day, label); lymphodepletion is not counted."""
        out = ([(d, self._infusion_label()) for d in self.product.infusion_days]
               if self.product is not None else [])
        if self.antibody is not None:
            out += [(d.day, f"{self.antibody.name} {d.label()}")
                    for d in self.antibody.doses(self.days)]
        return out

    def _infusion_label(self) -> str:
        assert self.product is not None
        return f"{self.product.name} infusion ({self.product.dose.plain()})"

    def infusion_reaction_risks(self) -> list[float] | None:
        """Probability of an infusion-related reaction at each antibody infusion over the horizon (None where the
        therapy has no such data: CAR-T products, whose infusion-day reactions are part of CRS, and others)."""
        return self.antibody.infusion_reaction_risks(self.days) if self.antibody is not None else None

    def last_dose_day(self) -> float | None:
        """Day of the last antibody dose within the horizon (None for CAR-T and untreated)."""
        return self.antibody.regimen.last_dose_day(self.days) if self.antibody is not None else None

    def by_course(self) -> list[tuple["Scenario", float]]:
        """This scenario for each course of its mix, with the course's share (itself, share 1, otherwise)."""
        if isinstance(self.course, CourseMix):
            return [(replace(self, course=c), share) for c, share in self.course.shares]
        return [(self, 1.0)]

    def parameter_provenance(self) -> dict[str, dict[str, str]]:
        """Where the values this scenario sets (disease, product, antibody) come from (a mix: its main course;
        see :meth:`by_course`)."""
        out = {k: {"kind": v["kind"], "source": v["source"], "set_by": v["set_by"]}
               for k, v in self.disease.value_provenance(single_course(self.course)).items()}
        if self.product is not None:
            out |= {k: {"source": self.product.source, "set_by": f"product {self.product.name}"}
                    for k in self.product.model_parameters(build_model().table)}
        if self.antibody is not None:
            out |= {k: {**v, "set_by": f"antibody {self.antibody.name}"} for k, v in self.antibody.provenance.items()}
        fitted = dict(self.sources)
        out |= {k: ({"kind": "calibrated", "source": fitted[k], "set_by": "fit"} if k in fitted else
                    {"kind": "assumed", "source": f"scenario value {v:g}", "set_by": "scenario"})
                for k, v in self.parameters}
        return out

    def parameter_values(self, table: ParameterTable) -> dict[str, float]:
        """The typical values this scenario sets (disease and course, product, antibody, scenario values),
        as in :meth:`run` (a mix: its main course; see :meth:`by_course`)."""
        out = dict(self.disease.values(single_course(self.course)))
        if self.product is not None:
            out |= self.product.model_parameters(table)
        if self.antibody is not None:
            out |= self.antibody.model_parameters()
        return out | dict(self.parameters)

    @property
    def start(self) -> float:
        """First simulated day: the first lymphodepletion dose, or day 0 (the first antibody dose)."""
        if self.product is None:
            return 0.0
        reg = lymphodepletion_regimens()[self.product.lymphodepletion]
        days = [d for d, _ in (*reg.fludarabine, *reg.cyclophosphamide)]
        return float(min(days, default=0.0))

    def output_times(self, fine_until: float = 60.0, fine_step: float = 0.1) -> np.ndarray:
        """Fine times around infusion (toxicity peaks are short), then daily."""
        fine = np.arange(self.start, min(fine_until, self.days), fine_step)
        daily = np.arange(np.ceil(min(fine_until, self.days)), np.floor(self.days) + 1)
        return np.unique(np.round(np.concatenate([fine, daily, [self.days]]), 10))

    def patient_inputs(self, model: Model, population: Population) -> tuple[Population, Doses]:
        """Therapy-set parameters and the dose events of every patient."""
        if self.iiv:
            population = population.with_parameters(self._rescaled_variability(model, population))
        population, doses = self._product_inputs(model, population)
        if self.antibody is not None:
            population, more = self._antibody_inputs(model, population)
            doses = doses.concat(more)
        if self.parameters:
            # a scenario value replaces the therapy's where both set one: each patient keeps the random effect
            # around the therapy's value, not the table's
            therapy = (self.product.model_parameters(model.table) if self.product is not None else {}) | (
                self.antibody.model_parameters() if self.antibody is not None else {})
            population = population.with_parameters(self._keep_random_effects(model, population,
                                                                              dict(self.parameters), therapy))
        return population.scaled(), doses      # a parameter-uncertainty set moves every value, therapy-set ones too

    def typical_of(self, model: Model, population: Population) -> np.ndarray:
        """Each patient's typical parameter values (rows), from the disease course the patient has (or the
        scenario's main course)."""
        cov = population.covariates
        courses = list(cov["ms_course"]) if "ms_course" in cov else [single_course(self.course)] * len(population)
        return typical_values(model, self.disease, courses)

    def _rescaled_variability(self, model: Model, population: Population) -> dict[str, np.ndarray]:
        """Each patient's value of the ``iiv`` parameters with its random effect rescaled from the table's omega
        to the scenario's: typical * exp(omega_new * z), z the patient's own standard-normal draw."""
        typical = self.typical_of(model, population)
        out = {}
        for name, omega in self.iiv:
            ref = typical[:, model.parameters.index(name)]
            z = np.log(population.column(name) / ref) / model.table[name].iiv_omega
            out[name] = ref * np.exp(omega * z)
        return out

    def _keep_random_effects(self, model: Model, population: Population, values: dict[str, float],
                             set_by_therapy: dict[str, float] | None = None) -> dict[str, np.ndarray | float]:
        """``values`` as typical values: patients keep their random effect (ratio to their typical value, which
        depends on their disease course, or is the value ``set_by_therapy`` where a therapy set one)."""
        typical = self.typical_of(model, population)
        out: dict[str, np.ndarray | float] = {}
        for name, v in values.items():
            ref = set_by_therapy[name] if name in (set_by_therapy or {}) else typical[:, model.parameters.index(name)]
            if model.table[name].iiv_omega > 0 and np.all(ref != 0):
                out[name] = population.column(name) * (v / ref)
            else:
                out[name] = v
        return out

    def _product_inputs(self, model: Model, population: Population) -> tuple[Population, Doses]:
        n = len(population)
        if self.product is None:
            return population, Doses.empty(n)
        population = population.with_parameters(self.product.model_parameters(model.table))
        weight = population.column("weight_kg")
        blood_ul = weight * model.table.value("blood_volume_per_kg")
        reg = lymphodepletion_regimens()[self.product.lymphodepletion]
        events: list[tuple[float, str, np.ndarray, str, str]] = []   # day, state, amounts, kind, label
        for state, drug, given in (("flu", "fludarabine", reg.fludarabine), ("cy", "cyclophosphamide",
                                                                             reg.cyclophosphamide)):
            unit = model.states[model.state_index(state)].unit
            events += [(d, state, np.full(n, mg), "lymphodepletion", f"{drug} {mg:g} {unit}") for d, mg in given]
        car = np.array([self.product.dose.cells(w) for w in weight]) / blood_ul   # CAR+ cells per uL-eq
        if self.retreat:
            population = population.with_parameters({"car_retreat_dose": car})
        label = self._infusion_label()
        for day in self.product.infusion_days:   # the model's F splits the CAR+ cells and adds untransduced ones
            for state in ("car_eff", "car_mem", "t_endo"):
                events.append((day, state, car, "car-t", label))
        doses = Doses(
            time=np.tile([e[0] for e in events], (n, 1)).astype(float),
            state=np.tile([model.state_index(e[1]) for e in events], (n, 1)).astype(np.int64),
            amount=np.stack([e[2] for e in events], axis=1),
            duration=np.zeros((n, len(events))),
            kinds=tuple(e[3] for e in events), labels=tuple(e[4] for e in events),
        )
        return population, doses

    def _antibody_inputs(self, model: Model, population: Population) -> tuple[Population, Doses]:
        """Antibody parameters (keeping each patient's random effect) and the regimen's dose events."""
        ab = self.antibody
        assert ab is not None
        population = population.with_parameters(self._keep_random_effects(model, population, ab.model_parameters()))
        doses = ab.doses(self.days)
        for d in doses:
            if d.route not in ab.dose_states:
                raise CartsimInputError("--regimen", f"{ab.name} is not given {d.route}",
                                        ", ".join(ab.dose_states))
        events = [(d.day, ab.dose_states[d.route], d.amount_mg, d.duration_days, f"{ab.name} {d.label()}")
                  for d in doses]
        if doses:   # the first dose also starts the clocks of time-dependent clearance and target synthesis
            events += [(doses[0].day, s, 1.0, 0.0, events[0][4]) for s in ab.first_dose_states]
        n = len(population)
        col = lambda k, dtype=float: np.tile(np.array([e[k] for e in events], dtype=dtype), (n, 1))  # noqa: E731
        idx = [model.state_index(e[1]) for e in events]
        amount = col(2)
        per_kg = np.array([d.per_kg for d in doses] + [False] * (len(events) - len(doses)))
        if per_kg.any():    # mg/kg doses: each patient's weight, up to the drug's cap
            weighed = amount[:, per_kg] * population.column("weight_kg")[:, None]
            amount[:, per_kg] = weighed if ab.max_dose_mg is None else np.minimum(weighed, ab.max_dose_mg)
        return population, Doses(time=col(0), state=np.tile(np.array(idx, dtype=np.int64), (n, 1)),
                                 amount=amount, duration=col(3), kinds=("dose",) * len(events),
                                 labels=tuple(e[4] for e in events))

    def run(self, population: Population, columns: tuple[str, ...] | None = None,
            times: np.ndarray | None = None, model: Model | None = None, **solver) -> Solution:
        model = model or build_model()
        population, doses = self.patient_inputs(model, population)
        times = self.output_times() if times is None else times
        return solve(model, population.params, times, columns, doses, self.triggers(model), t0=self.start, **solver)
