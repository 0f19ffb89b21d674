"""The symbolic model representation: states, parameters, flows, observables.

A model is written once, as SymPy expressions, by component modules that call
:class:`ModelBuilder`. Everything else (the compiled solver, the SBML export,
the equations shown in reports) is generated from the frozen :class:`Model`.

Flows move material from one state to another (or from/to outside the
system, ``None``), so mass balance holds by construction; the right-hand side
of each state is the sum of its flows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import sympy as sp

from cartsim.model.parameters import ParameterTable


@dataclass(frozen=True)
class State:
    name: str
    unit: str
    component: str
    description: str
    initial: sp.Expr  # steady state without therapy, in parameters
    cumulative: bool = False  # an integral over time (expected events so far), not a pool at steady state


@dataclass(frozen=True)
class Flow:
    """A rate (amount per day) leaving ``source`` and entering ``target``."""

    source: str | None
    target: str | None
    rate: sp.Expr
    component: str
    description: str


@dataclass(frozen=True)
class Observable:
    name: str
    expr: sp.Expr
    unit: str
    description: str


@dataclass(frozen=True)
class Event:
    """A dose the model state triggers: when ``observable`` crosses parameter ``threshold`` upwards, parameter
    ``amount`` is added to ``state`` (at most ``max_fires`` times). ``always``: part of every therapy (the
    tocilizumab rescue of CRS); otherwise a therapy asks for it (re-treatment)."""

    name: str
    observable: str
    threshold: str
    state: str
    amount: str
    component: str
    description: str
    max_fires: int = 1
    always: bool = True


@dataclass(frozen=True)
class Bioavailability:
    """NONMEM's ``F`` of a compartment, written in the model (mrgsolve's ``F_CMT``): every dose record into
    ``state`` enters as ``expr`` times its amount (times the record's own ``F``). ``expr`` is in parameters and
    may exceed 1 where a record's amount counts something else: the CAR+ cells of an infusion bring their
    untransduced T cells. State-triggered doses (:class:`Event`) add their amount as it is."""

    state: str
    expr: sp.Expr
    component: str
    description: str


@dataclass(frozen=True)
class Constant:
    """A named number of the model definition (a unit conversion such as ``days_per_year``).

    The equations use its value (the compiled model is unchanged by the name); the rendered equations
    show its name, and list its value once."""

    name: str
    value: float
    unit: str
    description: str


@dataclass(frozen=True)
class Model:
    """An immutable, fully specified model."""

    states: tuple[State, ...]
    parameters: tuple[str, ...]          # free (per-patient) parameters, table order
    derived: tuple[tuple[str, sp.Expr], ...]  # evaluated in order from parameters
    flows: tuple[Flow, ...]
    observables: tuple[Observable, ...]
    table: ParameterTable
    constants: tuple[Constant, ...] = ()     # named numbers, for display (see :class:`Constant`)
    events: tuple[Event, ...] = ()           # state-triggered doses (see :class:`Event`)
    bioavailability: tuple[Bioavailability, ...] = ()   # F of doses into a state (1 where none is given)

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @property
    def observable_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.observables)

    def state_index(self, name: str) -> int:
        try:
            return self.state_names.index(name)
        except ValueError:
            raise KeyError(f"unknown state {name!r}; states are {', '.join(self.state_names)}") from None

    def observable_index(self, name: str) -> int:
        try:
            return self.observable_names.index(name)
        except ValueError:
            raise KeyError(f"unknown observable {name!r}") from None

    def parameter_index(self, name: str) -> int:
        return self.parameters.index(name)

    def event(self, name: str) -> Event:
        for e in self.events:
            if e.name == name:
                return e
        raise KeyError(f"unknown event {name!r}; events are {', '.join(e.name for e in self.events)}")

    def dose_factor(self, state: str) -> sp.Expr:
        """``F`` of a dose into ``state`` (1 unless the model gives one)."""
        for f in self.bioavailability:
            if f.state == state:
                return f.expr
        return sp.Integer(1)

    def idle_parameters(self, dosed: Iterable[str], zero_parameters: Iterable[str] = ()) -> frozenset[str]:
        """Parameters that no equation can feel when doses enter only the states ``dosed`` and the parameters
        ``zero_parameters`` are 0 (a disease's rates outside that disease).

        A state that starts at 0, is never dosed and has no inflow that is non-zero while every such state is 0
        stays 0 for good (a drug's compartments when the drug is not given); a parameter that enters only terms
        carrying such a state, or a zero parameter as a factor, is idle. Conservative: a term sympy cannot reduce
        to 0 counts as felt, and a term that a zero parameter would make undefined keeps all its symbols."""
        zero_p = {sp.Symbol(n): sp.Integer(0) for n in zero_parameters}
        zero = {s.name for s in self.states if substitute_derived(self, s.initial).xreplace(zero_p) == 0} - set(dosed)
        while True:
            subs = {sp.Symbol(n): sp.Integer(0) for n in zero}
            fed = {f.target for f in self.flows if f.target in zero and _zeroed(f.rate, subs, zero_p) != 0}
            if not fed:
                break
            zero -= fed
        felt: set[str] = set()
        # derived parameters in free ones, each with the zero parameters set to 0 where it stays defined: a zero
        # switch inside one (a product's CD28 or mRNA switch) then silences what only its other branch uses
        derived: dict[sp.Symbol, sp.Expr] = {}
        for name, d in self.derived:
            expanded = d.xreplace(derived)
            derived[sp.Symbol(name)] = _zeroed(expanded, {}, zero_p)
        doses = (f.expr for f in self.bioavailability if f.state not in zero)   # F of the doses given
        for e in (*(f.rate for f in self.flows), *(o.expr for o in self.observables), *(s.initial for s in self.states),
                  *doses):
            felt |= {x.name for x in _zeroed(e.xreplace(derived), subs, zero_p).free_symbols}
        return frozenset(self.parameters) - felt

    def rhs(self) -> dict[str, sp.Expr]:
        """d(state)/dt as the sum of flows in and out (derived symbols unexpanded)."""
        out: dict[str, sp.Expr] = {s.name: sp.Integer(0) for s in self.states}
        for f in self.flows:
            if f.source is not None:
                out[f.source] -= f.rate
            if f.target is not None:
                out[f.target] += f.rate
        return out

    def symbols(self) -> dict[str, sp.Symbol]:
        names = [*self.state_names, *self.parameters, *(n for n, _ in self.derived)]
        return {n: sp.Symbol(n) for n in names}

    def fingerprint(self) -> str:
        """A stable text of the whole definition, used to key compiled code caches."""
        parts = [f"S {s.name} {sp.srepr(s.initial)}" for s in self.states]
        parts += [f"P {p}" for p in self.parameters]
        parts += [f"D {n} {sp.srepr(e)}" for n, e in self.derived]
        parts += [f"F {f.source} {f.target} {sp.srepr(f.rate)}" for f in self.flows]
        parts += [f"O {o.name} {sp.srepr(o.expr)}" for o in self.observables]
        parts += [f"B {f.state} {sp.srepr(f.expr)}" for f in self.bioavailability]
        return "\n".join(parts)


@dataclass
class ModelBuilder:
    """Mutable collector used by component modules; :meth:`build` freezes it."""

    table: ParameterTable
    _states: dict[str, State] = field(default_factory=dict)
    _params: list[str] = field(default_factory=list)
    _derived: dict[str, sp.Expr] = field(default_factory=dict)
    _flows: list[Flow] = field(default_factory=list)
    _observables: dict[str, Observable] = field(default_factory=dict)
    _constants: dict[str, Constant] = field(default_factory=dict)
    _events: dict[str, Event] = field(default_factory=dict)
    _bioavailability: dict[str, Bioavailability] = field(default_factory=dict)
    _component: str = "model"

    def component(self, name: str) -> "ModelBuilder":
        self._component = name
        return self

    def p(self, name: str) -> sp.Symbol:
        """A parameter from the provenance table (declared on first use)."""
        if name in self._derived:
            return sp.Symbol(name)
        self.table[name]  # raises a clear KeyError if the table lacks it
        if name not in self._params:
            self._params.append(name)
        return sp.Symbol(name)

    def derive(self, name: str, expr: sp.Expr) -> sp.Symbol:
        """A parameter computed from others (e.g. a steady-state source term)."""
        if name in self._derived or name in self._params:
            raise ValueError(f"parameter {name!r} defined twice")
        self.table[name]  # derived parameters are documented in the table too
        self._derived[name] = sp.sympify(expr)
        return sp.Symbol(name)

    def constant(self, name: str, value: float, unit: str, description: str) -> sp.Float:
        """A named number (e.g. ``days_per_year``): its value in the equations, its name where they are shown."""
        if name in self._constants and self._constants[name].value != value:
            raise ValueError(f"constant {name!r} defined twice with different values")
        self._constants[name] = Constant(name, float(value), unit, description)
        return sp.Float(value)

    def state(self, name: str, unit: str, description: str, initial: sp.Expr | float,
              cumulative: bool = False) -> sp.Symbol:
        if name in self._states:
            raise ValueError(f"state {name!r} defined twice")
        self._states[name] = State(name, unit, self._component, description, sp.sympify(initial), cumulative)
        return sp.Symbol(name)

    def flow(self, source: str | None, target: str | None, rate: sp.Expr, description: str) -> None:
        for s in (source, target):
            if s is not None and s not in self._states:
                raise KeyError(f"flow refers to undeclared state {s!r}")
        self._flows.append(Flow(source, target, sp.sympify(rate), self._component, description))

    def observe(self, name: str, expr: sp.Expr, unit: str, description: str) -> sp.Symbol:
        if name in self._observables:
            raise ValueError(f"observable {name!r} defined twice")
        self._observables[name] = Observable(name, sp.sympify(expr), unit, description)
        return sp.Symbol(name)

    def event(self, name: str, observable: str, threshold: str, state: str, amount: str, description: str,
              max_fires: int = 1, always: bool = True) -> None:
        """A state-triggered dose (see :class:`Event`); its threshold and amount are parameters."""
        if name in self._events:
            raise ValueError(f"event {name!r} defined twice")
        if state not in self._states:
            raise KeyError(f"event {name!r} doses undeclared state {state!r}")
        for par in (threshold, amount):
            self.p(par)
        self._events[name] = Event(name, observable, threshold, state, amount, self._component, description,
                                   max_fires, always)

    def bioavailability(self, state: str, expr: sp.Expr, description: str) -> None:
        """``F`` of every dose record into ``state`` (see :class:`Bioavailability`)."""
        if state not in self._states:
            raise KeyError(f"bioavailability of undeclared state {state!r}")
        if state in self._bioavailability:
            raise ValueError(f"bioavailability of {state!r} defined twice")
        self._bioavailability[state] = Bioavailability(state, sp.sympify(expr), self._component, description)

    def build(self) -> Model:
        # Observables may refer to each other (in any order): substitute to a fixed point.
        subs = {sp.Symbol(n): o.expr for n, o in self._observables.items()}
        for _ in range(len(subs) + 1):
            new = {k: v.xreplace(subs) for k, v in subs.items()}
            if new == subs:
                break
            subs = new
        else:  # pragma: no cover - a cycle among observables is a model bug
            raise ValueError("observables refer to each other in a cycle")
        resolved = {n: Observable(n, subs[sp.Symbol(n)], o.unit, o.description)
                    for n, o in self._observables.items()}
        flows = tuple(Flow(f.source, f.target, f.rate.xreplace(subs), f.component, f.description)
                      for f in self._flows)
        known = set(self._states) | set(self._params) | set(self._derived)
        for f in flows:
            _check_symbols(f.rate, known, f"flow {f.source}->{f.target}")
        for o in resolved.values():
            _check_symbols(o.expr, known, f"observable {o.name}")
        for n, e in self._derived.items():
            _check_symbols(e, set(self._params) | set(self._derived), f"derived {n}")
        for s in self._states.values():
            _check_symbols(s.initial, set(self._params) | set(self._derived), f"initial {s.name}")
        for f in self._bioavailability.values():
            _check_symbols(f.expr, set(self._params) | set(self._derived), f"bioavailability of {f.state}")
        for ev in self._events.values():
            if ev.observable not in resolved:
                raise KeyError(f"event {ev.name!r} watches undeclared observable {ev.observable!r}")
        return Model(
            states=tuple(self._states.values()),
            parameters=tuple(self._params),
            derived=tuple(self._derived.items()),
            flows=flows,
            observables=tuple(resolved.values()),
            table=self.table,
            constants=tuple(self._constants.values()),
            events=tuple(self._events.values()),
            bioavailability=tuple(self._bioavailability.values()),
        )


def _zeroed(expr: sp.Expr, states: Mapping[sp.Symbol, sp.Expr], parameters: Mapping[sp.Symbol, sp.Expr]) -> sp.Expr:
    """``expr`` with the zero states and zero parameters set to 0; where zero parameters would make it undefined
    (a division by one), only the states."""
    out = expr.xreplace(states)
    if not parameters:
        return out
    with_p = out.xreplace(parameters)
    return out if with_p.has(sp.zoo, sp.nan, sp.oo, -sp.oo) else with_p


def _check_symbols(expr: sp.Expr, known: Iterable[str], where: str) -> None:
    unknown = {s.name for s in expr.free_symbols} - set(known)
    if unknown:
        raise ValueError(f"{where} uses undefined symbols: {sorted(unknown)}")


def substitute_derived(model: Model, expr: sp.Expr) -> sp.Expr:
    """Expand derived parameters into free parameters (for exporters)."""
    subs: Mapping[sp.Symbol, sp.Expr] = {}
    for name, e in model.derived:
        subs = {**subs, sp.Symbol(name): e.xreplace(subs)}
    return expr.xreplace(subs)
