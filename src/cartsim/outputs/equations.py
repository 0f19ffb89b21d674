"""The model's equations as presentation MathML, generated from the one model definition.

For every state, d(state)/dt is written as the signed flows of :meth:`Model.rhs`, one
term per flow with its description. Observables that the flows use (``ld_kill``,
``kill_cd19``, ...) are folded back into named quantities so the terms stay readable;
a folded term is kept only if it evaluates to the original rate, and the observables
are listed with their definitions. The HTML needs no script, stylesheet or font from
anywhere: browsers render MathML natively.
"""

from __future__ import annotations

import html.entities
import random
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from xml.dom.minidom import Element

import sympy as sp
from markupsafe import Markup, escape
from sympy.printing.mathml import MathMLPresentationPrinter

from cartsim.model.ir import Constant, Event, Flow, Model, State

MINUS = "\u2212"
# identifiers exactly as in the parameter table; a visible dot between factors (names have several letters)
SETTINGS = {"disable_split_super_sub": True, "mul_symbol": "dot"}
_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")


class _Printer(MathMLPresentationPrinter):
    """SymPy's presentation printer, with piecewise functions as a brace of cases."""

    def _element(self, tag: str, text: str | None = None) -> Element:
        el = self.dom.createElement(tag)
        if text is not None:
            el.appendChild(self.dom.createTextNode(text))
        return el

    def _print_Piecewise(self, expr: sp.Piecewise) -> Element:
        """Each case's value on one line and its condition indented below it (a phone-width column holds long
        parameter names), the last case's value followed by "otherwise"."""
        row, table = self._element("mrow"), self._element("mtable")
        table.setAttribute("columnalign", "left")
        row.appendChild(self._element("mo", "{"))

        def line(*parts: Element) -> None:
            tr, td = self._element("mtr"), self._element("mtd")
            td.setAttribute("style", "text-align: left")    # MathML Core has no columnalign
            cell = self._element("mrow")
            for part in parts:
                cell.appendChild(part)
            td.appendChild(cell)
            tr.appendChild(td)
            table.appendChild(tr)

        for value, cond in expr.args:
            if cond == sp.true:
                line(self._print(value), self._element("mtext", "\u00a0otherwise"))
            else:
                line(self._print(value))
                line(self._element("mtext", "\u00a0\u00a0\u00a0if\u00a0"), self._print(cond))
        row.appendChild(table)
        return row


def _numeric_entities(text: str) -> str:
    """Named character references (``&InvisibleTimes;``) as numeric ones, valid in HTML and XML alike."""
    def one(m: re.Match) -> str:
        chars = html.entities.html5.get(m.group(1) + ";")
        if chars is None or m.group(1) in ("amp", "lt", "gt", "quot", "apos"):
            return m.group(0)
        return "".join(f"&#x{ord(c):X};" for c in chars)
    return _ENTITY.sub(one, text)


def to_mathml(expr: sp.Expr) -> str:
    """Presentation MathML of ``expr`` (the content of a ``<math>`` element)."""
    text = _numeric_entities(_Printer(SETTINGS).doprint(expr))
    return text.replace("<mo>-</mo>", f"<mo>{MINUS}</mo>").replace("<mn>-", f"<mn>{MINUS}")


def math(content: str, display: str = "inline") -> Markup:
    """``content`` (presentation MathML) as a ``<math>`` element."""
    return Markup(f'<math display="{display}" displaystyle="true">{content}</math>')


# ---- the equations ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Term:
    """One flow in the equation of a state: +rate into it, -rate out of it."""

    flow: Flow
    sign: int
    shown: sp.Expr          # the rate as displayed (observables folded into their names)

    @property
    def partner(self) -> str | None:
        """The state at the other end of the flow (None: outside the system)."""
        return self.flow.source if self.sign > 0 else self.flow.target


@dataclass(frozen=True)
class StateEquation:
    state: State
    terms: tuple[Term, ...]

    def rhs(self) -> sp.Expr:
        """The sum of the signed flow rates: equal to ``model.rhs()[state]``."""
        return sp.Add(*(t.sign * t.flow.rate for t in self.terms))


@dataclass(frozen=True)
class Definition:
    """A derived parameter or an observable: ``name = shown``."""

    name: str
    expr: sp.Expr           # as in the model
    shown: sp.Expr          # as displayed
    unit: str
    description: str


@dataclass(frozen=True)
class Component:
    name: str
    states: tuple[StateEquation, ...]
    derived: tuple[Definition, ...]
    observables: tuple[Definition, ...]


@dataclass(frozen=True)
class Equations:
    components: tuple[Component, ...]
    observables: dict[str, sp.Expr]      # name -> definition in states and parameters, for unfolding
    constants: tuple[Constant, ...] = ()  # named numbers shown by name

    def unfold(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every observable name replaced by its definition and every constant by its value."""
        return expr.xreplace({sp.Symbol(n): e for n, e in self.observables.items()}
                             | {sp.Symbol(c.name): sp.Float(c.value) for c in self.constants})


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-12 * abs(b)


def name_constants(expr: sp.Expr, constants: tuple[Constant, ...]) -> sp.Expr:
    """``expr`` with each number that is a named constant (or its reciprocal) written as the constant's name."""
    subs = {}
    for f in expr.atoms(sp.Float):
        for c in constants:
            if _close(float(f), c.value):
                subs[f] = sp.Symbol(c.name)
            elif _close(float(f), 1.0 / c.value):
                subs[f] = 1 / sp.Symbol(c.name)
    return expr.xreplace(subs) if subs else expr


def _agree(a: sp.Expr, b: sp.Expr, tries: int = 3) -> bool:
    """Whether two expressions take the same value at random positive points."""
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    rng = random.Random(0)
    for _ in range(tries):
        point = {s: sp.Float(rng.uniform(0.5, 2.0)) for s in symbols}
        try:
            va, vb = complex(a.xreplace(point).evalf()), complex(b.xreplace(point).evalf())
        except (TypeError, ValueError):
            return False
        if abs(va - vb) > 1e-9 * max(1.0, abs(va), abs(vb)):
            return False
    return True


class _Folder:
    """Rewrites expressions with observable names (larger observables first), checked numerically."""

    def __init__(self, model: Model):
        taken = {*model.state_names, *model.parameters, *(n for n, _ in model.derived)}
        seen: set[sp.Expr] = set()
        self.named: list[tuple[sp.Symbol, sp.Expr, int]] = []
        for o in model.observables:
            if o.expr.is_Atom or o.expr in seen or o.name in taken:
                continue
            seen.add(o.expr)
            self.named.append((sp.Symbol(o.name), o.expr, sp.count_ops(o.expr)))
        self.named.sort(key=lambda n: -n[2])
        self.definitions = {o.name: o.expr for o in model.observables}

    def fold(self, expr: sp.Expr, below: int | None = None) -> sp.Expr:
        """``expr`` with observables (of fewer than ``below`` operations, if given) folded in."""
        shown = expr
        for symbol, definition, ops in self.named:
            if (below is None or ops < below) and definition.free_symbols <= shown.free_symbols:
                shown = shown.subs(definition, symbol)
        if shown == expr:
            return expr
        unfolded = shown.xreplace({sp.Symbol(n): e for n, e in self.definitions.items()})
        return shown if _agree(unfolded, expr) else expr


def _home(expr: sp.Expr, model: Model) -> str:
    """The component of the states an expression reads most (ties: the first such state)."""
    names = {s.name for s in expr.free_symbols}
    comps = [s.component for s in model.states if s.name in names]
    if not comps:
        params = [model.table[n].component for n in sorted(names) if n in model.table]
        return Counter(params).most_common(1)[0][0] if params else "model"
    counts = Counter(comps)
    best = max(counts.values())
    return next(c for c in comps if counts[c] == best)


@lru_cache(maxsize=4)
def model_equations(model: Model) -> Equations:
    """Every state's equation, derived parameter and observable, grouped by component."""
    folder = _Folder(model)
    named = lambda e: name_constants(e, model.constants)  # noqa: E731
    terms: dict[str, list[Term]] = {s.name: [] for s in model.states}
    for f in model.flows:
        shown = named(folder.fold(f.rate))
        if f.source is not None:
            terms[f.source].append(Term(f, -1, shown))
        if f.target is not None:
            terms[f.target].append(Term(f, 1, shown))
    derived = [Definition(n, e, e, model.table[n].unit if n in model.table else "",
                          model.table[n].description if n in model.table else "") for n, e in model.derived]
    observables = [Definition(o.name, o.expr, named(folder.fold(o.expr, below=sp.count_ops(o.expr))), o.unit,
                              o.description) for o in model.observables]
    homes = {d.name: model.table[d.name].component if d.name in model.table else "model" for d in derived}
    homes |= {d.name: _home(d.expr, model) for d in observables}
    order = list(dict.fromkeys([*(s.component for s in model.states), *homes.values()]))
    components = tuple(
        Component(c, tuple(StateEquation(s, tuple(terms[s.name])) for s in model.states if s.component == c),
                  tuple(d for d in derived if homes[d.name] == c),
                  tuple(d for d in observables if homes[d.name] == c))
        for c in order)
    return Equations(components, folder.definitions, model.constants)


# ---- HTML -----------------------------------------------------------------------------------------

def _lhs(state: str) -> str:
    d = '<mi mathvariant="normal">d</mi>'
    return f"<mfrac><mrow>{d}<mi>{escape(state)}</mi></mrow><mrow>{d}<mi>t</mi></mrow></mfrac><mo>=</mo>"


def term_mathml(term: Term) -> str:
    """``+ rate`` or ``- rate`` (in parentheses when the rate is a sum or starts with a minus)."""
    body = to_mathml(term.shown)
    if isinstance(term.shown, sp.Add) or term.shown.could_extract_minus_sign():
        body = f"<mrow><mo>(</mo>{body}<mo>)</mo></mrow>"
    return f"<mrow><mo>{'+' if term.sign > 0 else MINUS}</mo>{body}</mrow>"


LONG = 36          # characters of a (sub)expression's text above which it is split into pieces that wrap
DOT = "<mo>&#xB7;</mo>"


def _grouped(expr: sp.Expr, lead: str = "") -> list[str]:
    """``(expr)`` as pieces: the opening parenthesis on the first, the closing one on the last."""
    pieces = pieces_of(expr)
    if len(pieces) == 1:
        return [f"{lead}<mrow><mo>(</mo>{pieces[0]}<mo>)</mo></mrow>"]
    return [f"{lead}<mo>(</mo>{pieces[0]}", *pieces[1:-1], f"{pieces[-1]}<mo>)</mo>"]


def pieces_of(expr: sp.Expr, lead: str = "") -> list[str]:
    """``expr`` as MathML pieces that may stand on lines of their own (``lead`` starts the first).

    A long sum is split before each term's sign, a long product before each factor (its denominator written
    after a slash), recursively; a short expression is one piece. Browsers do not break a MathML formula
    themselves, so each piece becomes its own ``<math>`` element."""
    if len(sp.sstr(expr)) <= LONG or not isinstance(expr, (sp.Add, sp.Mul, sp.Pow, sp.Min, sp.Max)):
        return [lead + to_mathml(expr)]
    if isinstance(expr, (sp.Min, sp.Max)):
        args = [pieces_of(a) for a in expr.args]
        out = [f"{lead}<mi>{'min' if isinstance(expr, sp.Min) else 'max'}</mi><mo>(</mo>{args[0][0]}", *args[0][1:]]
        for a in args[1:]:
            out[-1] += "<mo>,</mo>"
            out += a
        out[-1] += "<mo>)</mo>"
        return out
    if isinstance(expr, sp.Pow):
        if expr.exp == sp.Rational(1, 2):
            return _grouped(expr.base, f"{lead}<mo>\u221a</mo>")
        return [lead + to_mathml(expr)]
    if isinstance(expr, sp.Add):
        out: list[str] = []
        for i, t in enumerate(expr.as_ordered_terms()):
            if t.could_extract_minus_sign():
                out += pieces_of(-t, f"<mo>{MINUS}</mo>")
            else:
                out += pieces_of(t, "" if i == 0 else "<mo>+</mo>")
        out[0] = lead + out[0]
        return out
    if expr.could_extract_minus_sign():
        return pieces_of(-expr, f"{lead}<mo>{MINUS}</mo>")
    num, den = [], []
    for f in expr.as_ordered_factors():
        (den.append(1 / f) if f.is_Pow and f.exp.is_number and f.exp.is_negative else num.append(f))
    out, first = [], True
    for f in num:
        head = lead if first else DOT
        out += _grouped(f, head) if isinstance(f, sp.Add) else pieces_of(f, head)
        first = False
    if den:
        d = sp.Mul(*den)
        slash = "<mo>/</mo>" if num else f"{lead}<mn>1</mn><mo>/</mo>"
        out += _grouped(d, slash) if isinstance(d, (sp.Add, sp.Mul)) else pieces_of(d, slash)
    return out


def wrapping(pieces: list[str]) -> Markup:
    """Pieces of one equation as consecutive ``<math>`` elements that wrap onto new lines where the page is
    narrow (browsers do not break a MathML formula themselves)."""
    if len(pieces) == 1:
        return math(pieces[0])
    return Markup('<span class="eqn">') + Markup("").join(math(p) for p in pieces) + Markup("</span>")


def term_html(term: Term) -> Markup:
    """The signed rate of one flow, a sum split into terms that wrap."""
    sign = "+" if term.sign > 0 else MINUS
    if len(sp.sstr(term.shown)) <= LONG:
        return math(term_mathml(term))
    if isinstance(term.shown, sp.Add) or term.shown.could_extract_minus_sign():
        return wrapping(_grouped(term.shown, f"<mo>{sign}</mo>"))
    return wrapping(pieces_of(term.shown, f"<mo>{sign}</mo>"))


def definition_html(d: Definition) -> Markup:
    """``name = definition``, a sum split into terms that wrap."""
    return wrapping(pieces_of(d.shown, f"<mi>{escape(d.name)}</mi><mo>=</mo>"))


def _flow_note(term: Term) -> str:
    partner = term.partner
    where = "" if partner is None else f" ({'from' if term.sign > 0 else 'to'} {partner})"
    return f"{term.flow.description}{where}"


def _state_rows(eq: StateEquation) -> str:
    """The state's heading, then one row per flow: description, then the signed rate (long rates scroll)."""
    s = eq.state
    head = (f'<tr id="eq-{escape(s.name)}" class="state"><th colspan="3">{escape(s.name)}: '
            f"{escape(s.description)} [{escape(s.unit)}]</th></tr>")
    lhs = f'<td rowspan="{max(1, len(eq.terms))}">{math(_lhs(s.name))}</td>'
    if not eq.terms:
        return head + f"<tr>{lhs}<td class='what'>changed only by dose events</td><td>{math('<mn>0</mn>')}</td></tr>"
    rows = [f"<tr>{lhs if i == 0 else ''}<td class='what'>{escape(_flow_note(t))}</td>"
            f"<td>{term_html(t)}</td></tr>" for i, t in enumerate(eq.terms)]
    return head + "".join(rows)


def _definition_rows(defs: tuple[Definition, ...]) -> str:
    return "".join(
        f'<tr id="eq-{escape(d.name)}"><td class="what">{escape(d.description)}'
        f"{f' [{escape(d.unit)}]' if d.unit else ''}</td>"
        f"<td>{definition_html(d)}</td></tr>" for d in defs)


def equations_html(model: Model) -> Markup:
    """The equations of ``model`` as HTML with MathML, one block per component."""
    eqs = model_equations(model)
    parts = []
    if eqs.constants:
        rows = "".join(f'<tr id="eq-{escape(c.name)}"><td class="what">{escape(c.description)} [{escape(c.unit)}]</td>'
                       f'<td>{math(f"<mi>{escape(c.name)}</mi><mo>=</mo><mn>{c.value:g}</mn>")}</td></tr>'
                       for c in eqs.constants)
        parts.append(f'<h3 id="eq-constants">Named constants</h3><table class="eq"><tbody>{rows}</tbody></table>')
    for c in eqs.components:
        parts.append(f'<h3 id="eq-component-{escape(c.name)}">{escape(c.name)}</h3>')
        if c.states:
            parts.append('<table class="eq"><tbody>' + "".join(_state_rows(e) for e in c.states)
                         + "</tbody></table>")
        for title, defs in (("Derived parameters", c.derived), ("Observables", c.observables)):
            if defs:
                parts.append(f'<h4>{title}</h4><table class="eq"><tbody>{_definition_rows(defs)}</tbody></table>')
    if model.bioavailability:
        rows = "".join(
            f'<tr id="eq-F-{escape(f.state)}"><td class="what">{escape(f.description)} ({escape(f.component)})</td>'
            f'<td>{math(f"<msub><mi>F</mi><mi>{escape(f.state)}</mi></msub><mo>=</mo>{to_mathml(f.expr)}")}</td></tr>'
            for f in model.bioavailability)
        parts.append('<h3 id="eq-bioavailability">Dose bioavailability (F)</h3><p class="what">How much of a dose '
                     "enters each state: a dose record of amount AMT adds F &#xd7; AMT, and F is 1 for the states not "
                     "listed.</p>"
                     f'<table class="eq"><tbody>{rows}</tbody></table>')
    if model.events:
        parts.append('<h3 id="eq-events">State-triggered doses</h3><table class="eq"><tbody>'
                     + "".join(_event_row(e) for e in model.events) + "</tbody></table>")
    return Markup("".join(parts))


def _event_row(e: Event) -> str:
    """``when observable >= threshold: state += amount`` (how often; with every therapy or on request)."""
    when = math(f"<mi>{escape(e.observable)}</mi><mo>&#x2265;</mo><mi>{escape(e.threshold)}</mi>")
    then = math(f"<mi>{escape(e.state)}</mi><mo>+=</mo><mi>{escape(e.amount)}</mi>")
    times = "once" if e.max_fires == 1 else f"at most {e.max_fires} times"
    use = "with every therapy" if e.always else "when the scenario asks for it"
    return (f'<tr id="eq-event-{escape(e.name)}"><td class="what">{escape(e.description)} ({times}, {use}; '
            f'{escape(e.component)})</td><td>when {when} is crossed from below: {then}</td></tr>')
