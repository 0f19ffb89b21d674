"""Generate numba source for a :class:`~cartsim.model.ir.Model`.

The generated functions index flat arrays: ``y`` (states), ``p`` (free
parameters, table order) and ``q`` (free then derived parameters, then the
per-patient constants of :mod:`cartsim.engine.hoist`; ``N_Q + N_C`` long).
Common subexpressions are shared with SymPy's ``cse``. Besides the right-hand
side and the observables, the module has the analytic Jacobian in sparse form
(``jv[k]`` is entry ``JAC_ROW[k], JAC_COL[k]``) and the fixed-pattern LU
factorisation and solve of ``I / (h gamma) - J`` used by the implicit solver.
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from cartsim.engine import jacobian, sparse_lu
from cartsim.engine.hoist import Hoister
from cartsim.model.ir import Model


# Every generated function only reads and writes the arrays it is given, so it is compiled without numba's
# reference counting (``_nrt=False``): with it, each call atomically increments and decrements the reference
# counts of its array arguments, which cost about a tenth of the solve time (see events.py). Division by zero
# gives inf or NaN as in NumPy (``error_model='numpy'``), not an exception that would stop the whole batch: a
# parameter of 0 where a limit is meant (a CSF/serum ratio of 0 puts an EC50 at infinity) gives that limit, and a
# non-finite state fails that patient alone, with its reason.
_LEAF = "@nb.njit(cache=True, _nrt=False, error_model='numpy')"


class _Printer(PythonCodePrinter):
    """Prints a model symbol as its array element (``q[12]``, ``y[3]``) through ``names``."""

    def __init__(self, names: Mapping[str, str]):   # a _Names: any other name (t, a temporary) prints as itself
        super().__init__({"standard": "python3", "fully_qualified_modules": True})
        self._names = names

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self._names[expr.name]

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:  # from differentiating Max, Min and Abs
        x = self._print(expr.args[0])
        return f"(1.0 if {x} > 0 else (0.0 if {x} < 0 else 0.5))"

    def _print_DiracDelta(self, expr: sp.DiracDelta) -> str:  # derivative of a step: zero almost everywhere
        return "0.0"

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        if expr.exp.is_Number:
            return super()._print_Pow(expr, rational)
        return f"_pow({self._print(expr.base)}, {self._print(expr.exp)})"   # an exponent known at run time


# Powers whose exponent is a parameter (Hill coefficients): libm's pow costs about ten multiplications, and
# whole exponents are common (car_stim_hill = 3, il6_myeloid_hill = 2, n - 1 in the Jacobian), so those are
# multiplied out. The branch depends on a parameter only, so it is predicted perfectly.
_POW = '''
@nb.njit(cache=True, _nrt=False, error_model='numpy')
def _pow(x, n):
    """``x ** n``; whole exponents 1 to 4 by multiplication."""
    if n == 2.0:
        return x * x
    if n == 3.0:
        return x * x * x
    if n == 1.0:
        return x
    if n == 4.0:
        x2 = x * x
        return x2 * x2
    return x ** n
'''


# Expressions keep the model's names until they are printed, and only the printer maps a name to its array
# element. SymPy orders the terms of a sum or product by their symbols' names, and floating-point addition and
# multiplication are not associative, so printing ``q[12]`` ordered by index would tie the rounding of every
# result to where each parameter sits in the table: adding one parameter would move every number at rounding
# level. Ordered by name, a model change moves only the arithmetic it changes.
class _Names(dict):
    """Model name -> array element; hoisted constants ``_c<k>`` follow the ``n_q`` parameters in ``q``."""

    def __init__(self, items: Mapping[str, str], n_q: int):
        super().__init__(items)
        self.n_q = n_q

    def __missing__(self, name: str) -> str:
        if name.startswith(_CONSTANT) and name[len(_CONSTANT):].isdigit():
            return f"q[{self.n_q + int(name[len(_CONSTANT):])}]"
        return name


_CONSTANT = "_c"


def _print(expr: sp.Expr, names: Mapping[str, str]) -> str:
    return _Printer(names).doprint(expr)


def _body(assignments: list[tuple[str, sp.Expr]], names: Mapping[str, str],
          hoister: Hoister | None = None, assign: str = " = ") -> list[str]:
    exprs = [e for _, e in assignments]
    if hoister is not None:
        exprs = hoister(exprs)
    temps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_x"), optimizations="basic")
    lines = [f"    {s} = {_print(e, names)}" for s, e in temps]
    lines += [f"    {target}{assign}{_print(e, names)}" for (target, _), e in zip(assignments, reduced)]
    return lines


def generate(model: Model) -> str:
    """Python source defining N_STATES, N_P, N_Q, N_C, N_OBS, derive, init, rhs, observe, observable, jac,
    lu_factor, lu_solve, the Jacobian's pattern and bioavailability."""
    ns, npar = len(model.states), len(model.parameters)
    q_names = [*model.parameters, *(n for n, _ in model.derived)]
    nq = len(q_names)
    q_set = set(q_names)
    names = _Names({**{n: f"q[{i}]" for i, n in enumerate(q_names)},
                    **{n: f"y[{i}]" for i, n in enumerate(model.state_names)}}, nq)
    hoister = Hoister(lambda s: s.name in q_set, lambda k: sp.Symbol(f"{_CONSTANT}{k}"))

    rhs = model.rhs()
    per_step = ["", _LEAF, "def rhs(t, y, q, dy):"]
    per_step += _body([(f"dy[{i}]", rhs[n]) for i, n in enumerate(model.state_names)], names, hoister)
    per_step += ["", _LEAF, "def observe(t, y, q, o):"]
    per_step += _body([(f"o[{i}]", o.expr) for i, o in enumerate(model.observables)], names, hoister)
    per_step += _observable(model, names, hoister)
    per_step += _jacobian(model, names, hoister)
    constants = hoister.definitions

    out = [
        "# Generated by cartsim.engine.codegen from the symbolic model. Do not edit.",
        "import math",
        "import numba as nb",
        "import numpy as np",
        f"N_STATES = {ns}",
        f"N_P = {npar}",
        f"N_Q = {nq}",
        f"N_C = {len(constants)}  # per-patient constants after the parameters in q",
        f"N_OBS = {len(model.observables)}",
        _POW,
        _LEAF,
        "def derive(p, q):",
        f"    for i in range({npar}):",
        "        q[i] = p[i]",
    ]
    # derived parameters in order: each may use free ones and earlier derived ones
    for i, (name, expr) in enumerate(model.derived):
        out.append(f"    q[{npar + i}] = {_print(expr, names)}")
    out += [f"    {names[s.name]} = {_print(e, names)}" for s, e in constants]
    out += ["", _LEAF, "def init(q, y):"]
    out += _body([(f"y[{i}]", s.initial) for i, s in enumerate(model.states)], names) or ["    pass"]
    out += per_step
    out += _bioavailability(model, names)
    return "\n".join(out) + "\n"


def _bioavailability(model: Model, names: Mapping[str, str]) -> list[str]:
    """``bioavailability(s, q)``: ``F`` of a dose into state ``s`` (the model's, else 1), evaluated at each dose."""
    out = ["", _LEAF, "def bioavailability(s, q):"]
    for f in model.bioavailability:
        out += [f"    if s == {model.state_index(f.state)}:", f"        return {_print(f.expr, names)}"]
    out.append("    return 1.0")
    return out


def _observable(model: Model, names: Mapping[str, str], hoister: Hoister) -> list[str]:
    """``observable(k, t, y, q)``: observable ``k`` alone (a trigger, an output column), without the others."""
    out = ["", _LEAF, "def observable(k, t, y, q):"]
    for k, o in enumerate(model.observables):
        out.append(f"    if k == {k}:")
        out += ["    " + line for line in _body([("return", o.expr)], names, hoister, assign=" ")]
    out.append("    return math.nan")
    return out


def _ints(values: list[int]) -> str:
    return f"np.array([{', '.join(map(str, values))}], dtype=np.int64)"


def _jacobian(model: Model, names: Mapping[str, str], hoister: Hoister) -> list[str]:
    """``jac`` (non-zero entries), its pattern, and the LU factorisation and solve for that pattern.

    ``error_model='numpy'``: an entry may be 0/0 or infinite where a fractional power meets zero (a Hill
    term at zero concentration); the kernel replaces non-finite entries by zero instead of raising."""
    ns = len(model.states)
    ents = jacobian.entries(model)
    lu = sparse_lu.plan(ns, [(i, j) for i, j, _ in ents])
    out = [
        "",
        f"N_JAC = {len(ents)}",
        f"JAC_ROW = {_ints([i for i, _, _ in ents])}",
        f"JAC_COL = {_ints([j for _, j, _ in ents])}",
        f"N_LU = {len(lu.entries)}",
        f"LU_DIAG = {_ints([lu.storage(i, i) for i in range(ns)])}  # storage index of each state's diagonal",
        "",
        _LEAF,
        "def jac(t, y, q, jv):",
    ]
    out += _body([(f"jv[{k}]", d) for k, (_, _, d) in enumerate(ents)], names, hoister) or ["    pass"]
    out += ["", _LEAF, *sparse_lu.load_source(lu, [(i, j) for i, j, _ in ents])]
    out += ["", _LEAF, *sparse_lu.factor_source(lu)]
    out += ["", _LEAF, *sparse_lu.solve_source(lu)]
    return out
