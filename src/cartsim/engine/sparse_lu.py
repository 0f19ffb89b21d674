"""Sparse LU factorisation with a fixed pattern, generated as straight-line code.

The implicit solver factors ``W = I / (h gamma) - J`` at every step. The
Jacobian's sparsity is known when the model is compiled, so the elimination
order, the fill-in and every multiply-add of the factorisation and of the
triangular solves are worked out here, once, and emitted as numba source: no
index arrays, no branches, no pivot search at run time.

There is no pivoting: the pivots are the diagonal entries of ``W`` in a fixed
order (Markowitz's rule on the pattern, ties broken by state index, so the
code is deterministic). ``W`` tends to ``I / (h gamma)`` as the step shrinks,
so the solver reacts to a zero or non-finite pivot by shortening the step, as
KPP's Rosenbrock integrators do (Sandu et al., Atmos Environ 1997;31:3459).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class LUPlan:
    """Elimination order and storage of the factors of an ``n`` x ``n`` matrix with a fixed pattern."""

    n: int
    order: tuple[int, ...]                  # order[k]: the row/column (state) eliminated k-th
    entries: tuple[tuple[int, int], ...]    # (row, column) in elimination positions, in storage order

    @cached_property
    def position(self) -> dict[int, int]:
        """State index -> elimination position."""
        return {s: k for k, s in enumerate(self.order)}

    @cached_property
    def index(self) -> dict[tuple[int, int], int]:
        """(row, column) in elimination positions -> storage index."""
        return {e: k for k, e in enumerate(self.entries)}

    def storage(self, row: int, col: int) -> int:
        """Storage index of entry (row, col) given in state indices."""
        pos = self.position
        return self.index[(pos[row], pos[col])]


def plan(n: int, pattern: Iterable[tuple[int, int]]) -> LUPlan:
    """Order the eliminations (Markowitz) and add the fill-in; the diagonal is always stored."""
    rows: list[set[int]] = [{i} for i in range(n)]   # rows[i]: columns j with (i, j) stored
    cols: list[set[int]] = [{j} for j in range(n)]   # cols[j]: rows i with (i, j) stored
    for i, j in pattern:
        rows[i].add(j)
        cols[j].add(i)
    remaining = set(range(n))
    order: list[int] = []
    while remaining:
        def cost(k: int) -> tuple[int, int, int]:
            r, c = len(rows[k] & remaining) - 1, len(cols[k] & remaining) - 1
            return r * c, r + c, k
        k = min(remaining, key=cost)
        remaining.discard(k)
        order.append(k)
        below = sorted(cols[k] & remaining)
        right = sorted(rows[k] & remaining)
        for i in below:
            for j in right:
                rows[i].add(j)   # fill-in
                cols[j].add(i)
    pos = {s: k for k, s in enumerate(order)}
    entries = sorted((pos[i], pos[j]) for i in range(n) for j in rows[i])
    return LUPlan(n, tuple(order), tuple(entries))


def load_source(p: LUPlan, pattern: list[tuple[int, int]], name: str = "lu_load") -> list[str]:
    """``name(jv, c, lu)``: ``lu`` = c I - J in storage order, from the Jacobian's entries ``jv`` (entry ``k`` is
    ``pattern[k]``, in state indices), as one assignment per entry: no index arrays, fill-in set to 0."""
    k_of = {p.storage(i, j): k for k, (i, j) in enumerate(pattern)}
    diagonal = {p.storage(i, i) for i in range(p.n)}
    lines = [f"def {name}(jv, c, lu):"]
    for s in range(len(p.entries)):
        k = k_of.get(s)
        if s in diagonal:
            value = "c" if k is None else f"c - jv[{k}]"
        else:
            value = "0.0" if k is None else f"-jv[{k}]"
        lines.append(f"    lu[{s}] = {value}")
    return lines


def factor_source(p: LUPlan, name: str = "lu_factor") -> list[str]:
    """``name(a)``: LU in place (unit lower L below the diagonal, U above, 1/pivot on the diagonal)."""
    idx = p.index
    lower = [sorted(i for (i, j) in p.entries if j == k and i > k) for k in range(p.n)]
    upper = [sorted(j for (i, j) in p.entries if i == k and j > k) for k in range(p.n)]
    lines = [f"def {name}(a):"]
    for k in range(p.n):
        d = idx[(k, k)]
        lines.append(f"    a[{d}] = 1.0 / a[{d}]")
        for i in lower[k]:
            m = idx[(i, k)]
            lines.append(f"    a[{m}] *= a[{d}]")
            for j in upper[k]:
                lines.append(f"    a[{idx[(i, j)]}] -= a[{m}] * a[{idx[(k, j)]}]")
    return lines


def tree_sum(terms: list[str]) -> str:
    """Source for the sum of ``terms`` added pairwise (a balanced tree): its chain of dependent additions is as
    long as the tree is deep, not as long as the list."""
    if len(terms) == 1:
        return terms[0]
    half = len(terms) // 2
    return f"({tree_sum(terms[:half])} + {tree_sum(terms[half:])})"


def _minus(head: str, terms: list[str]) -> str:
    """``head`` minus the ``terms`` (ordered by when their values are ready): all but the last summed as a
    tree while the last is still being computed, then the last."""
    if not terms:
        return head
    if len(terms) == 1:
        return f"{head} - {terms[0]}"
    return f"{head} - {tree_sum(terms[:-1])} - {terms[-1]}"


def solve_source(p: LUPlan, name: str = "lu_solve") -> list[str]:
    """``name(a, b)``: overwrite ``b`` (state order) with the solution of ``(L U) x = b``.

    Each unknown's sum of products is added as a tree (:func:`_minus`): the substitutions are chains of
    dependent multiply-adds, so the time of a solve is set by their length rather than by their number."""
    idx = p.index
    lines = [f"def {name}(a, b):"]
    for i in range(p.n):   # forward: L z = P b, unknowns ready in increasing order
        terms = [f"a[{idx[(i, j)]}] * x{j}" for j in range(i) if (i, j) in idx]
        lines.append(f"    x{i} = {_minus(f'b[{p.order[i]}]', terms)}")
    for i in reversed(range(p.n)):   # backward: U x = z, unknowns ready in decreasing order
        terms = [f"a[{idx[(i, j)]}] * x{j}" for j in reversed(range(i + 1, p.n)) if (i, j) in idx]
        lines.append(f"    x{i} = ({_minus(f'x{i}', terms)}) * a[{idx[(i, i)]}]" if terms
                     else f"    x{i} = x{i} * a[{idx[(i, i)]}]")
        lines.append(f"    b[{p.order[i]}] = x{i}")
    return lines


def operations(p: LUPlan) -> tuple[int, int]:
    """Multiply-adds of one factorisation and of one solve (for documentation and tests)."""
    lower = [sum(1 for (i, j) in p.entries if j == k and i > k) for k in range(p.n)]
    upper = [sum(1 for (i, j) in p.entries if i == k and j > k) for k in range(p.n)]
    factor = sum(lo * (1 + up) for lo, up in zip(lower, upper))
    solve = len(p.entries)
    return factor, solve
