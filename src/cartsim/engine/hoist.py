"""Move subexpressions that depend on parameters only out of the per-step functions.

The right-hand side and the Jacobian are evaluated thousands of times per
patient with the same parameters; terms such as ``K**n`` (a Hill constant to a
fractional power), ``log(2) / half_life`` or products of rate constants need
computing once. :func:`hoist` replaces every maximal parameter-only
subexpression (and the parameter-only part of a sum or product) by a new
symbol and returns the definitions, which the generated ``derive`` evaluates
once per patient. Numeric results are the same up to rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sympy as sp

_RECURSE = (sp.Add, sp.Mul, sp.Pow, sp.Function, sp.Max, sp.Min)


class Hoister:
    """Collects parameter-only subexpressions across several expression lists (shared definitions)."""

    def __init__(self, is_parameter: Callable[[sp.Symbol], bool], name: Callable[[int], sp.Symbol]):
        self._is_parameter = is_parameter
        self._name = name
        self._constants: dict[sp.Expr, sp.Symbol] = {}
        self._memo: dict[sp.Expr, sp.Expr] = {}

    @property
    def definitions(self) -> list[tuple[sp.Symbol, sp.Expr]]:
        """(symbol, parameter-only expression), in order of first use."""
        return [(s, e) for e, s in self._constants.items()]

    def _parameter_only(self, e: sp.Expr) -> bool:
        return all(self._is_parameter(s) for s in e.free_symbols)

    def _constant(self, e: sp.Expr) -> sp.Expr:
        if e.is_Atom or (isinstance(e, sp.Mul) and len(e.args) == 2 and e.args[0] == -1 and e.args[1].is_Atom):
            return e   # a symbol, a number or a negated symbol: nothing to save
        if e not in self._constants:
            self._constants[e] = self._name(len(self._constants))
        return self._constants[e]

    def __call__(self, exprs: Sequence[sp.Expr]) -> list[sp.Expr]:
        return [self._visit(e) for e in exprs]

    def _visit(self, e: sp.Expr) -> sp.Expr:
        if e.is_Atom:
            return e
        hit = self._memo.get(e)
        if hit is not None:
            return hit
        if self._parameter_only(e):
            out = self._constant(e)
        elif isinstance(e, (sp.Add, sp.Mul)):
            fixed = [a for a in e.args if self._parameter_only(a)]
            rest = [self._visit(a) for a in e.args if not self._parameter_only(a)]
            head = [self._constant(e.func(*fixed))] if fixed else []
            out = e.func(*head, *rest)
        elif isinstance(e, sp.Piecewise):
            out = sp.Piecewise(*((self._visit(x), self._visit(c)) for x, c in e.args))
        elif isinstance(e, (*_RECURSE, sp.core.relational.Relational)):
            out = e.func(*(self._visit(a) for a in e.args))
        else:
            out = e    # anything else is kept whole
        self._memo[e] = out
        return out
