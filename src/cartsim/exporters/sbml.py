"""SBML Level 3 Version 2 export of the model, one patient and a scenario's doses.

Everything is generated from the symbolic :class:`~cartsim.model.ir.Model`:

- each state is a non-constant parameter with a rate rule (the sum of its
  flows, plus the rates of running infusions) and an initial assignment (the
  untreated steady state);
- free parameters carry the chosen patient's values; derived parameters are
  assignment rules of them, so a simulator that changes a free parameter and
  resets (libRoadRunner: ``rr[name] = value; rr.reset()``) keeps the derived
  parameters and the initial states consistent with it;
- observables are assignment rules;
- doses are events: boluses add to their state, infusions switch a rate on and off,
  each times the model's bioavailability of that state (NONMEM's F; the split of
  an infused CAR-T product into effector, memory and untransduced cells);
- the model's state-triggered doses (its events: the tocilizumab rescue,
  re-treatment when the scenario asks for it) are SBML events, named as in
  the model, that fire when the observable reaches the threshold from below,
  at most ``max_fires`` times, as in the engine;
- unit, kind, component and source of every parameter are an annotation.

SBML time starts at 0, a scenario at ``scenario.start`` (lymphodepletion begins
before the infusion on day 0): SBML time ``t`` is cartsim day ``t + t_start``,
which the assignment rule ``study_day`` gives. No model expression uses time,
so the shift is exact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

import libsbml
import numpy as np
import sympy as sp

from cartsim import __version__
from cartsim.engine import DoseRecord
from cartsim.exporters import ExportError
from cartsim.model.ir import Model
from cartsim.population import Population, typical
from cartsim.model.ir import Event
from cartsim.scenario import Scenario

LEVEL, VERSION = 3, 2
PROVENANCE_NS = "urn:cartsim:provenance"
TIME_OFFSET = "t_start"
STUDY_DAY = "study_day"
TIME = sp.Dummy("time")  # SBML's time csymbol in the expressions handed to :class:`_MathWriter`

# (kind, exponent, scale, multiplier) of an SBML <unit>
UnitTerm = tuple[int, float, int, float]

_PREFIX = {"p": -12, "n": -9, "u": -6, "m": -3, "c": -2, "d": -1, "k": 3}
_BASE = {"g": libsbml.UNIT_KIND_GRAM, "L": libsbml.UNIT_KIND_LITRE, "m": libsbml.UNIT_KIND_METRE,
         "s": libsbml.UNIT_KIND_SECOND, "mol": libsbml.UNIT_KIND_MOLE}
_NAMED: dict[str, list[UnitTerm]] = {
    "grade": [],
    "points": [],          # a clinical score (MG-ADL, QMG): dimensionless
    "cell": [(libsbml.UNIT_KIND_ITEM, 1, 0, 1.0)],
    "cells": [(libsbml.UNIT_KIND_ITEM, 1, 0, 1.0)],
    "h": [(libsbml.UNIT_KIND_SECOND, 1, 0, 3600.0)],
    "day": [(libsbml.UNIT_KIND_SECOND, 1, 0, 86400.0)],
    "year": [(libsbml.UNIT_KIND_SECOND, 1, 0, 86400.0 * 365.25)],
    "lesions": [(libsbml.UNIT_KIND_ITEM, 1, 0, 1.0)],
    "nM": [(libsbml.UNIT_KIND_MOLE, 1, -9, 1.0), (libsbml.UNIT_KIND_LITRE, -1, 0, 1.0)],
    "kDa": [(libsbml.UNIT_KIND_GRAM, 1, 3, 1.0), (libsbml.UNIT_KIND_MOLE, -1, 0, 1.0)],
}
_FACTOR = re.compile(r"([A-Za-z]+)(?:-eq)?(\d*)")  # 'uL-eq': blood-equivalent microlitres, 'm2': square metres


@dataclass(frozen=True)
class ExportInputs:
    """Everything besides the model that an export needs: one patient's numbers and events."""

    params: np.ndarray                 # free parameters, model.parameters order
    doses: tuple[DoseRecord, ...]
    triggers: tuple[Event, ...]        # the model's state-triggered doses in use
    start: float                       # cartsim day at SBML time 0
    provenance: dict[str, dict[str, str]]  # per-parameter overrides of the table's kind/source
    title: str


def to_sbml(model: Model, scenario: Scenario | None = None, population: Population | None = None,
            row: int = 0) -> str:
    """SBML L3V2 text of ``model`` for patient ``row`` of ``population`` under ``scenario``.

    ``population`` defaults to the scenario disease's typical patient (the
    parameter table without a scenario). Without a scenario there are no doses
    or triggers and SBML time is cartsim day.
    """
    return libsbml.writeSBMLToString(sbml_document(model, export_inputs(model, scenario, population, row)))


def export_inputs(model: Model, scenario: Scenario | None = None, population: Population | None = None,
                  row: int = 0) -> ExportInputs:
    """The export inputs of one patient, as :meth:`Scenario.run` would simulate them."""
    if scenario is None:
        params = (population.params[row] if population is not None
                  else np.array([model.table.value(p) for p in model.parameters]))
        return ExportInputs(np.asarray(params, float), (), (), 0.0, {}, "cartsim model, no therapy")
    population = population if population is not None else typical(model, scenario.disease, scenario.course)
    population, doses = scenario.patient_inputs(model, population)
    events = doses.records(row, model.state_names)
    provenance = scenario.parameter_provenance()
    return ExportInputs(population.params[row].astype(float), events, scenario.events(model), scenario.start, provenance,
                        f"{scenario.describe()} in {scenario.disease.name}, patient {row}")


def sbml_document(model: Model, inputs: ExportInputs) -> libsbml.SBMLDocument:
    """Build and validate the SBML document; raises :class:`ExportError` for what SBML cannot express exactly."""
    _check_triggers(model, inputs)
    w = _Writer()
    w.notes(w.model, _model_notes(model, inputs))
    w.model.setTimeUnits(w.units.id("day") or "")
    w.parameter(TIME_OFFSET, inputs.start, unit="day", note="cartsim day at SBML time 0")
    w.parameter(STUDY_DAY, None, constant=False, unit="day", note="cartsim day (day 0: CAR-T infusion)")
    w.rule(STUDY_DAY, TIME + sp.Symbol(TIME_OFFSET), rate=False)
    _write_parameters(w, model, inputs)
    infusions = _write_doses(w, model, inputs)
    _write_states(w, model, infusions)
    for o in model.observables:
        w.parameter(o.name, None, constant=False, unit=o.unit, note=o.description, tag="observable")
        w.rule(o.name, o.expr, rate=False)
    _write_triggers(w, inputs.triggers)
    return w.finish()


def _check_triggers(model: Model, inputs: ExportInputs) -> None:
    """The engine fires a trigger only when its observable crosses during integration, never at a jump.

    SBML events also fire when a bolus or another trigger's dose makes the
    condition true, so such models are refused rather than exported wrong.
    """
    jumps = {d.state for d in inputs.doses if d.duration == 0}
    for k, trig in enumerate(inputs.triggers):
        others = {t.state for j, t in enumerate(inputs.triggers) if j != k}
        expr = model.observables[model.observable_index(trig.observable)].expr
        hit = sorted({s.name for s in expr.free_symbols} & (jumps | others))
        if hit:
            raise ExportError(f"trigger on {trig.observable!r} depends on {', '.join(hit)}, which doses change "
                              "in jumps: SBML would fire it at the jump, cartsim does not")


def _write_parameters(w: _Writer, model: Model, inputs: ExportInputs) -> None:
    for name, value in zip(model.parameters, inputs.params):
        w.parameter(name, float(value), **_provenance(model, name, inputs))
    for name, expr in model.derived:
        w.parameter(name, None, constant=False, **_provenance(model, name, inputs))
        w.rule(name, expr, rate=False)


def _provenance(model: Model, name: str, inputs: ExportInputs) -> dict:
    r = model.table[name]
    prov = {"component": r.component, "kind": r.kind, "source": r.source} | inputs.provenance.get(name, {})
    return {"unit": r.unit, "note": r.description, "provenance": prov}


def _write_doses(w: _Writer, model: Model, inputs: ExportInputs) -> dict[str, list[str]]:
    """Dose parameters and one event per dose time; returns the infusion rate ids of each state."""
    units = {s.name: s.unit for s in model.states}
    # SBML time -> variable -> its value after the event; simultaneous boluses into a state add up
    actions: dict[float, dict[str, sp.Expr]] = {}

    def at_time(day: float) -> dict[str, sp.Expr]:
        """The actions on cartsim ``day`` (SBML time ``day - start``)."""
        return actions.setdefault(day - inputs.start, {})

    early = [d for d in inputs.doses if d.amount > 0 and d.start < inputs.start]
    if early:                     # as the engine: a dose before the start would be given late, silently
        raise ExportError(f"a dose into {early[0].state} on day {early[0].start:g} comes before the start "
                          f"(day {inputs.start:g})")

    infusions: dict[str, list[str]] = {}
    for k, d in enumerate(inputs.doses, start=1):
        amount = f"dose_{k}"
        what = "bolus" if d.duration == 0 else f"infusion over {d.duration:g} days"
        given = f" ({d.label})" if d.label else ""
        w.parameter(amount, d.delivered, unit=units[d.state],
                    note=f"{what} into {d.state} on cartsim day {d.start:g}{given}")
        at = at_time(d.start)
        f = model.dose_factor(d.state)   # the model's F of the state (1 for most)
        if d.duration == 0:
            at[d.state] = at.get(d.state, sp.Symbol(d.state)) + sp.Symbol(amount) * f
            continue
        rate, duration = f"{amount}_rate", f"{amount}_duration"
        w.parameter(duration, d.duration, unit="day", note=f"duration of {amount}")
        w.parameter(rate, 0.0, constant=False, unit=f"{units[d.state]}/day", note=f"infusion rate of {amount}")
        at[rate] = sp.Symbol(amount) / sp.Symbol(duration) * f
        at_time(d.start + d.duration)[rate] = sp.Integer(0)
        infusions.setdefault(d.state, []).append(rate)
    for k, (t, assign) in enumerate(sorted(actions.items()), start=1):
        w.event(f"dose_event_{k}", TIME >= t, assign.items(), initial_value=False)
    return infusions


def _write_states(w: _Writer, model: Model, infusions: dict[str, list[str]]) -> None:
    rhs = model.rhs()
    for s in model.states:
        w.parameter(s.name, None, constant=False, unit=s.unit, note=s.description, tag="state",
                    provenance={"component": s.component})
        w.initial(s.name, s.initial)
        w.rule(s.name, rhs[s.name] + sum((sp.Symbol(r) for r in infusions.get(s.name, ())), sp.Integer(0)),
               rate=True)


def _write_triggers(w: _Writer, triggers: tuple[Event, ...]) -> None:
    for trig in triggers:
        fires = f"{trig.name}_fires"
        w.parameter(fires, 0.0, constant=False, unit="1", note=f"times {trig.name} has fired: {trig.description}")
        when = sp.And(sp.Symbol(trig.observable) >= sp.Symbol(trig.threshold), sp.Symbol(fires) < trig.max_fires)
        w.event(trig.name, when, [(trig.state, sp.Symbol(trig.state) + sp.Symbol(trig.amount)),
                                  (fires, sp.Symbol(fires) + 1)], initial_value=True)


def _model_notes(model: Model, inputs: ExportInputs) -> str:
    lines = [
        (f"Generated by cartsim {__version__} from its symbolic model: {len(model.states)} states, "
         f"{len(model.parameters)} free and {len(model.derived)} derived parameters, "
         f"{len(model.observables)} observables."),
        f"Patient and therapy: {inputs.title}.",
        (f"Time: SBML time t is cartsim day t + {TIME_OFFSET} ({TIME_OFFSET} = {inputs.start:g}); "
         f"the assignment rule {STUDY_DAY} gives the cartsim day. Time unit: day."),
        ("States are parameters with rate rules, initialised by initial assignments to the untreated steady "
         "state; derived parameters are assignment rules of the free ones."),
        ("Doses: events named dose_event_N (boluses add dose_K to their state; infusions set dose_K_rate "
         "for dose_K_duration days)."),
        ("State-triggered doses (the model's events, e.g. tocilizumab_rescue) add their dose when the observable "
         "reaches its threshold from below (at most once unless NAME_fires allows more), not when it is already "
         "above at time 0."),
        ("All states are non-negative amounts; the cartsim engine projects numerical round-off below zero "
         "back to zero, which SBML does not express."),
        f"Parameter annotations (namespace {PROVENANCE_NS}) give unit, kind, component and source.",
    ]
    return "".join(f"<p>{escape(line)}</p>" for line in lines)


class _Writer:
    """A libSBML model under construction: checked ids, units, and math set once every id is declared."""

    def __init__(self) -> None:
        self.doc = libsbml.SBMLDocument(LEVEL, VERSION)
        self.model = self.doc.createModel()
        self.model.setId("cartsim")
        self.model.setName("cartsim: CAR T-cell therapy in autoimmune disease")
        self.units = _Units(self.model)
        self._unit_of: dict[str, str | None] = {}          # SBML id -> unit id
        self._math: list[tuple[libsbml.SBase, sp.Basic, str | None]] = []  # element, math, id whose units it has

    def _new_id(self, sid: str, unit: str | None) -> str:
        if not libsbml.SyntaxChecker.isValidSBMLSId(sid):
            raise ExportError(f"{sid!r} is not a valid SBML identifier")
        if sid in self._unit_of:
            raise ExportError(f"{sid!r} is defined twice (a model name clashes with an export name)")
        self._unit_of[sid] = unit
        return sid

    def parameter(self, sid: str, value: float | None, *, constant: bool = True, unit: str = "",
                  note: str = "", tag: str = "parameter", provenance: dict[str, str] | None = None) -> None:
        unit_id = self.units.id(unit) if unit else None
        p = self.model.createParameter()
        p.setId(self._new_id(sid, unit_id))
        p.setConstant(constant)
        if value is not None:
            p.setValue(value)
        if unit_id:
            p.setUnits(unit_id)
        if note:
            self.notes(p, f"<p>{escape(note)}</p>")
        attrs = {"unit": unit, **(provenance or {})}
        text = " ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items())
        _ok(p.setAnnotation(f'<cartsim:{tag} xmlns:cartsim="{PROVENANCE_NS}" {text}/>'), f"annotation of {sid}")

    def notes(self, element: libsbml.SBase, xhtml: str) -> None:
        _ok(element.setNotes(f'<body xmlns="http://www.w3.org/1999/xhtml">{xhtml}</body>'), "notes")

    def initial(self, sid: str, expr: sp.Expr) -> None:
        ia = self.model.createInitialAssignment()
        ia.setSymbol(sid)
        self._math.append((ia, expr, sid))

    def rule(self, sid: str, expr: sp.Expr, *, rate: bool) -> None:
        r = self.model.createRateRule() if rate else self.model.createAssignmentRule()
        r.setVariable(sid)
        self._math.append((r, expr, None if rate else sid))

    def event(self, sid: str, when: sp.Basic, assignments: Iterable[tuple[str, sp.Expr]], *,
              initial_value: bool) -> None:
        e = self.model.createEvent()
        e.setId(self._new_id(sid, None))
        e.setUseValuesFromTriggerTime(True)
        trig = e.createTrigger()
        trig.setInitialValue(initial_value)
        trig.setPersistent(True)
        self._math.append((trig, when, None))
        for target, expr in assignments:
            ea = e.createEventAssignment()
            ea.setVariable(target)
            self._math.append((ea, expr, target))

    def finish(self) -> libsbml.SBMLDocument:
        """Set all math, then refuse the document if libSBML finds any error in it."""
        to_math = _MathWriter(self._unit_of, self.units.id("day"))
        for element, expr, like in self._math:
            unit = self._unit_of.get(like) if like else None
            _ok(element.setMath(to_math(expr, unit)), f"math of {element.getElementName()}")
        self.doc.checkConsistency()
        log = self.doc.getErrorLog()
        errors = [log.getError(i) for i in range(log.getNumErrors())]
        errors = [e for e in errors if e.getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
        if errors:
            raise ExportError("invalid SBML: " + "; ".join(e.getMessage().strip() for e in errors[:3]))
        return self.doc


def _ok(code: int, what: str) -> None:
    if code != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise ExportError(f"libSBML rejected the {what}: {libsbml.OperationReturnValue_toString(code)}")


# ---- units -----------------------------------------------------------------------------------------------


class _Units:
    """SBML unit definitions of the table's unit strings, created on first use."""

    def __init__(self, model: libsbml.Model) -> None:
        self._model = model
        self._ids: dict[str, str | None] = {}

    def id(self, text: str) -> str | None:
        """The unit id of ``text``; None for a unit the parser does not know (left undeclared)."""
        if text not in self._ids:
            self._ids[text] = self._define(text)
        return self._ids[text]

    def _define(self, text: str) -> str | None:
        terms = parse_unit(text)
        if terms is None:
            return None
        if not terms:
            return "dimensionless"
        uid = _unit_id(text, {i for i in self._ids.values() if i})
        ud = self._model.createUnitDefinition()
        ud.setId(uid)
        ud.setName(text)
        for kind, exponent, scale, multiplier in terms:
            u = ud.createUnit()
            u.setKind(kind)
            u.setExponent(exponent)
            u.setScale(scale)
            u.setMultiplier(multiplier)
        return uid


def parse_unit(text: str) -> list[UnitTerm] | None:
    """SBML unit terms of a table unit such as ``'pg/mL/day per (cells/uL-eq)'``; None if not understood."""
    head, per, tail = text.partition(" per ")
    terms = _quotient(head)
    if not per:
        return terms
    tail = tail.strip()
    if terms is None or not (tail.startswith("(") and tail.endswith(")")):
        return None
    denominator = _quotient(tail[1:-1])
    return None if denominator is None else terms + [(k, -e, s, m) for k, e, s, m in denominator]


def _quotient(text: str) -> list[UnitTerm] | None:
    terms: list[UnitTerm] = []
    for i, token in enumerate(text.strip().split("/")):
        factor = _factor(token.strip())
        if factor is None:
            return None
        sign = 1 if i == 0 else -1
        terms += [(k, sign * e, s, m) for k, e, s, m in factor]
    return terms


def _factor(token: str) -> list[UnitTerm] | None:
    if token == "1":
        return []
    match = _FACTOR.fullmatch(token)
    if not match:
        return None
    name, power = match.group(1), int(match.group(2) or 1)
    if name in _NAMED:
        base = _NAMED[name]
    elif name in _BASE:
        base = [(_BASE[name], 1, 0, 1.0)]
    elif name[0] in _PREFIX and name[1:] in _BASE:
        base = [(_BASE[name[1:]], 1, _PREFIX[name[0]], 1.0)]
    else:
        return None
    return [(k, e * power, s, m) for k, e, s, m in base]


def _unit_id(text: str, taken: set[str]) -> str:
    uid = re.sub(r"\W+", "_", text.replace("/", " per ")).strip("_")
    if uid[0].isdigit() or libsbml.UnitKind_forName(uid) != libsbml.UNIT_KIND_INVALID:
        uid = "u_" + uid
    candidate, n = uid, 1
    while candidate in taken:
        n += 1
        candidate = f"{uid}_{n}"
    return candidate


# ---- math ------------------------------------------------------------------------------------------------

_FUNCTIONS = {sp.exp: libsbml.AST_FUNCTION_EXP, sp.log: libsbml.AST_FUNCTION_LN, sp.Abs: libsbml.AST_FUNCTION_ABS,
              sp.Min: libsbml.AST_FUNCTION_MIN, sp.Max: libsbml.AST_FUNCTION_MAX,
              sp.floor: libsbml.AST_FUNCTION_FLOOR, sp.ceiling: libsbml.AST_FUNCTION_CEILING}
_RELATIONS = {sp.StrictLessThan: libsbml.AST_RELATIONAL_LT, sp.LessThan: libsbml.AST_RELATIONAL_LEQ,
              sp.StrictGreaterThan: libsbml.AST_RELATIONAL_GT, sp.GreaterThan: libsbml.AST_RELATIONAL_GEQ,
              sp.Eq: libsbml.AST_RELATIONAL_EQ, sp.Ne: libsbml.AST_RELATIONAL_NEQ}
_LOGIC = {sp.And: libsbml.AST_LOGICAL_AND, sp.Or: libsbml.AST_LOGICAL_OR, sp.Not: libsbml.AST_LOGICAL_NOT,
          sp.Xor: libsbml.AST_LOGICAL_XOR}
_CONSTANTS = {sp.true: libsbml.AST_CONSTANT_TRUE, sp.false: libsbml.AST_CONSTANT_FALSE,
              sp.pi: libsbml.AST_CONSTANT_PI, sp.E: libsbml.AST_CONSTANT_E}


class _MathWriter:
    """SymPy to libSBML math (``TIME`` is SBML time); raises :class:`ExportError` on anything else.

    Number literals get units where the context fixes them: coefficients,
    exponents and arguments of exp/log are dimensionless; a number added to,
    compared with or chosen instead of a quantity of known units has those
    units. Elsewhere no unit is declared.
    """

    def __init__(self, unit_of: dict[str, str | None], time_unit: str | None) -> None:
        self._unit_of = unit_of
        self._time_unit = time_unit

    def __call__(self, expr: sp.Basic, unit: str | None = None) -> libsbml.ASTNode:
        if expr == TIME:
            return libsbml.ASTNode(libsbml.AST_NAME_TIME)
        if isinstance(expr, sp.Symbol):
            node = libsbml.ASTNode(libsbml.AST_NAME)
            node.setName(expr.name)
            return node
        if expr in _CONSTANTS:
            return libsbml.ASTNode(_CONSTANTS[expr])
        if isinstance(expr, sp.Number):
            return self._number(expr, unit)
        if isinstance(expr, (sp.Add, sp.Min, sp.Max, sp.Abs, sp.floor, sp.ceiling)):
            op = libsbml.AST_PLUS if isinstance(expr, sp.Add) else _FUNCTIONS[expr.func]
            unit = unit or self._unit(expr)
            return self._apply(op, [(a, unit) for a in expr.args])
        if isinstance(expr, sp.Mul):
            return self._product(expr, unit)
        if isinstance(expr, sp.Pow):
            base, exponent = expr.args
            if exponent.is_number and exponent.is_negative:
                return self._divide([], [_inverse(expr)])
            return self._apply(libsbml.AST_POWER, [(base, None), (exponent, "dimensionless")])
        if isinstance(expr, (sp.exp, sp.log)):
            return self._apply(_FUNCTIONS[expr.func], [(a, "dimensionless") for a in expr.args])
        if isinstance(expr, sp.Piecewise):
            return self._piecewise(expr, unit or self._unit(expr))
        if expr.func in _RELATIONS:
            side = self._unit(expr.lhs) or self._unit(expr.rhs)
            return self._apply(_RELATIONS[expr.func], [(a, side) for a in expr.args])
        if expr.func in _LOGIC:
            return self._apply(_LOGIC[expr.func], [(a, None) for a in expr.args])
        raise ExportError(f"cannot express {type(expr).__name__} in SBML: {expr}")

    def _unit(self, expr: sp.Basic) -> str | None:
        """The unit id of ``expr`` where a symbol in it fixes it (sums, choices), else None."""
        if expr == TIME:
            return self._time_unit
        if isinstance(expr, sp.Symbol):
            return self._unit_of.get(expr.name)
        if isinstance(expr, (sp.Add, sp.Min, sp.Max)):
            return next((u for u in map(self._unit, expr.args) if u), None)
        if isinstance(expr, sp.Piecewise):
            return next((u for u in (self._unit(v) for v, _ in expr.args) if u), None)
        if isinstance(expr, sp.Mul) and len(expr.as_coeff_mul()[1]) == 1:
            return self._unit(expr.as_coeff_mul()[1][0])
        symbols = expr.free_symbols
        if symbols and all(self._unit_of.get(s.name) == "dimensionless" for s in symbols):
            return "dimensionless"
        return None

    def _number(self, value: sp.Number, unit: str | None) -> libsbml.ASTNode:
        if isinstance(value, sp.Rational) and not isinstance(value, sp.Integer):
            return self._apply(libsbml.AST_DIVIDE, [(sp.Integer(value.p), unit),
                                                    (sp.Integer(value.q), "dimensionless")])
        if isinstance(value, sp.Integer):
            node = libsbml.ASTNode(libsbml.AST_INTEGER)
            node.setValue(int(value))
        elif isinstance(value, sp.Float):
            node = libsbml.ASTNode(libsbml.AST_REAL)
            node.setValue(float(value))
        else:
            raise ExportError(f"cannot express the number {value} in SBML")
        if unit:
            _ok(node.setUnits(unit), "literal units")
        return node

    def _apply(self, op: int, args: Iterable[tuple[sp.Basic, str | None]]) -> libsbml.ASTNode:
        return _join(op, *(self(a, u) for a, u in args))

    def _product(self, expr: sp.Mul, unit: str | None) -> libsbml.ASTNode:
        """a*b/(c*d) as a division, a leading -1 as a unary minus."""
        coeff, factors = expr.as_coeff_mul()
        if coeff == -1:
            return _join(libsbml.AST_MINUS, self(sp.Mul(*factors), unit))
        num: list[sp.Basic] = [] if coeff == 1 else [coeff]
        den: list[sp.Basic] = []
        for f in factors:
            if isinstance(f, sp.Pow) and f.exp.is_number and f.exp.is_negative:
                den.append(_inverse(f))
            else:
                num.append(f)
        return self._divide(num, den) if den else self._times(num)

    def _divide(self, num: list[sp.Basic], den: list[sp.Basic]) -> libsbml.ASTNode:
        return _join(libsbml.AST_DIVIDE, self._times(num), self._times(den))

    def _times(self, factors: list[sp.Basic]) -> libsbml.ASTNode:
        """The product of ``factors``, whose numbers are dimensionless coefficients."""
        args = [(f, "dimensionless" if f.is_number else None) for f in factors or [sp.Integer(1)]]
        return self(*args[0]) if len(args) == 1 else self._apply(libsbml.AST_TIMES, args)

    def _piecewise(self, expr: sp.Piecewise, unit: str | None) -> libsbml.ASTNode:
        node = libsbml.ASTNode(libsbml.AST_FUNCTION_PIECEWISE)
        for value, cond in expr.args:
            _ok(node.addChild(self(value, unit)), "piecewise")
            if cond != sp.true:
                _ok(node.addChild(self(cond)), "piecewise")
        return node


def _inverse(power: sp.Pow) -> sp.Basic:
    """1/power, for a power with a negative numeric exponent."""
    return power.base if power.exp == -1 else sp.Pow(power.base, -power.exp, evaluate=False)


def _join(op: int, *children: libsbml.ASTNode) -> libsbml.ASTNode:
    node = libsbml.ASTNode(op)
    for c in children:
        _ok(node.addChild(c), "math")
    return node
