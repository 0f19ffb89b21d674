"""The analytic Jacobian of a model's right-hand side, and its sparsity pattern.

Observables are already substituted into the flows (:meth:`ModelBuilder.build`),
so differentiating :meth:`Model.rhs` by each state gives the full Jacobian;
derived parameters stay symbols (``q[...]`` in the generated code), as in the
right-hand side. Symbols are made real before differentiating so that
``Max``/``Min``/``Abs`` differentiate to ``Heaviside``/``sign`` rather than to
expressions in ``re`` and ``im``. ``Piecewise`` terms differentiate branch by
branch (the grade observables are step functions, but they only feed outputs
and triggers, never the right-hand side).

Powers are combined (``u**n / u`` becomes ``u**(n - 1)``) so that a Hill term
with ``n > 1`` has a finite derivative where its argument is zero (no antigen,
no antibody); with ``n < 1`` the derivative there is infinite, and the kernel
uses zero instead.

Entries that are identically zero are left out: the pattern is fixed when the
model is compiled, and the kernel's sparse LU (:mod:`cartsim.engine.sparse_lu`)
is generated for it.
"""

from __future__ import annotations

import sympy as sp

from cartsim.model.ir import Model


def entries(model: Model) -> list[tuple[int, int, sp.Expr]]:
    """(row, column, d rhs[row] / d state[column]) for every entry that is not identically zero."""
    names = [*model.state_names, *model.parameters, *(n for n, _ in model.derived)]
    real = {sp.Symbol(n): sp.Symbol(n, real=True) for n in names}
    plain = {r: s for s, r in real.items()}
    rhs = model.rhs()
    out: list[tuple[int, int, sp.Expr]] = []
    for i, name in enumerate(model.state_names):
        expr = rhs[name].xreplace(real)
        for j, state in enumerate(model.state_names):
            x = real[sp.Symbol(state)]
            if x not in expr.free_symbols:
                continue
            # powsimp: d(u**n)/dx comes out as n*u**n/u*du/dx, which is 0/0 at u = 0; n*u**(n - 1)*du/dx is not
            d = sp.powsimp(sp.diff(expr, x))
            if d != 0:
                out.append((i, j, d.xreplace(plain)))
    return out
