"""SIMD versions of the generated model functions: one vector lane per patient.

The Rosenbrock kernel spends most of its time in the generated straight-line
code (right-hand side, Jacobian, and the fixed-pattern LU factorisation and
solves). That code has no loop for a compiler to vectorise, and its branches
(``_pow``'s whole exponents, ``max``) and libm calls stop LLVM's loop
vectoriser when the same code is wrapped in a loop over patients. So it is
translated here, statement by statement, into LLVM IR on ``<W x double>``
vectors: lane ``l`` computes patient ``l``'s value with exactly the operations
and rounding of the scalar function (no reassociation, no fused multiply-add),
so a patient's numbers do not depend on whether or beside whom it is solved.

Why by hand: numba has no vector type, and no library turns straight-line
scalar code into lane-parallel code with bit-identical results.

The translation reads the scalar function's source (``inspect.getsource``, the
generated module on disk), so the vector code is generated from the one model
definition too. Arrays are laid out lanes-last: a scalar ``y[i]`` becomes the
contiguous vector ``y[i, 0:W]`` of a C-contiguous ``(n, W)`` array, and a scalar
argument (``lu_load``'s ``c``) becomes a ``(W,)`` array.
"""

from __future__ import annotations

import ast
import inspect
import math
import operator
import textwrap
from typing import Any

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

_DOUBLE = ir.DoubleType()
_BINARY = {ast.Add: "fadd", ast.Sub: "fsub", ast.Mult: "fmul", ast.Div: "fdiv"}
_FOLD = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_COMPARE = {ast.Gt: ">", ast.Lt: "<", ast.GtE: ">=", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!="}


# math functions of one argument the generated code may call: the same numba implementation, lane by lane
_MATH = {name: getattr(math, name) for name in ("exp", "log", "log10", "log1p", "expm1", "tanh", "sin", "cos", "atan")}


class _DryRun:
    """A stand-in for numba's target context: enough to translate a function without compiling it."""

    def compile_internal(self, builder: ir.IRBuilder, fn: Any, sig: Any, args: Any) -> ir.Value:
        return ir.Constant(_DOUBLE, 0.0)


class _Translator:
    """Emit one scalar function's statements as vector instructions."""

    def __init__(self, context: Any, builder: ir.IRBuilder, width: int, pointers: dict[str, ir.Value],
                 scalars: dict[str, ir.Value], functions: dict[str, Any]):
        self.context, self.b, self.w = context, builder, width
        self.functions = functions    # the scalar function's module globals: the numba functions it calls
        self.vt = ir.VectorType(_DOUBLE, width)
        self.pointers = pointers      # array argument -> double* to its data
        self.env = dict(scalars)      # local names -> vector values
        self.cache: dict[tuple[str, int], ir.Value] = {}   # array elements already loaded or stored

    # ---- values -------------------------------------------------------------------------------------------
    def splat(self, value: float) -> ir.Constant:
        return ir.Constant(self.vt, [float(value)] * self.w)

    def _address(self, array: str, index: int) -> ir.Value:
        ptr = self.b.gep(self.pointers[array], [ir.Constant(ir.IntType(64), index * self.w)])
        return self.b.bitcast(ptr, self.vt.as_pointer())

    def load(self, array: str, index: int) -> ir.Value:
        key = (array, index)
        if key not in self.cache:
            self.cache[key] = self.b.load(self._address(array, index), align=8)
        return self.cache[key]

    def store(self, array: str, index: int, value: ir.Value) -> None:
        self.cache[(array, index)] = value
        self.b.store(value, self._address(array, index), align=8)

    # ---- expressions ----------------------------------------------------------------------------------------
    def constant(self, e: ast.expr) -> float | None:
        """The value of a constant subexpression (as CPython folds it in the scalar code), else None."""
        if isinstance(e, ast.Constant) and isinstance(e.value, (int, float)) and not isinstance(e.value, bool):
            return e.value
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
            v = self.constant(e.operand)
            return None if v is None else -v
        if isinstance(e, ast.BinOp) and type(e.op) in _FOLD:
            a, b = self.constant(e.left), self.constant(e.right)
            if a is not None and b is not None:
                return _FOLD[type(e.op)](a, b)
        return None

    def expr(self, e: ast.expr) -> ir.Value:
        c = self.constant(e)
        if c is not None:
            return self.splat(c)
        if isinstance(e, ast.Name):
            return self.env[e.id]
        if isinstance(e, ast.Subscript):
            return self.load(e.value.id, self._index(e))
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
            return self.b.fneg(self.expr(e.operand))
        if isinstance(e, ast.BinOp) and isinstance(e.op, ast.Pow):
            return self.power(e.left, e.right)
        if isinstance(e, ast.BinOp) and type(e.op) in _BINARY:
            return getattr(self.b, _BINARY[type(e.op)])(self.expr(e.left), self.expr(e.right))
        if isinstance(e, ast.IfExp):   # Heaviside: both arms are constants, so a select is exact
            return self.b.select(self.compare(e.test), self.expr(e.body), self.expr(e.orelse))
        if isinstance(e, ast.Call):
            return self.call(e)
        raise NotImplementedError(f"cannot vectorise {ast.unparse(e)!r}")

    @staticmethod
    def _index(e: ast.Subscript) -> int:
        if not (isinstance(e.slice, ast.Constant) and isinstance(e.slice.value, int)):
            raise NotImplementedError(f"cannot vectorise the subscript {ast.unparse(e)!r}")
        return e.slice.value

    def compare(self, e: ast.expr) -> ir.Value:
        if not (isinstance(e, ast.Compare) and len(e.ops) == 1 and type(e.ops[0]) in _COMPARE):
            raise NotImplementedError(f"cannot vectorise the condition {ast.unparse(e)!r}")
        return self.b.fcmp_ordered(_COMPARE[type(e.ops[0])], self.expr(e.left), self.expr(e.comparators[0]))

    def power(self, base: ast.expr, exponent: ast.expr) -> ir.Value:
        n = self.constant(exponent)
        if isinstance(n, int):   # numba's static_power_impl: square-and-multiply, then 1/r for negative powers
            a, r, k = self.expr(base), None, abs(n)
            while k:
                if k & 1:
                    r = a if r is None else self.b.fmul(r, a)
                k >>= 1
                if k:
                    a = self.b.fmul(a, a)
            r = self.splat(1.0) if r is None else r
            return self.b.fdiv(self.splat(1.0), r) if n < 0 else r
        return self.lanewise(lambda x, y: x ** y, base, exponent)

    def call(self, e: ast.Call) -> ir.Value:
        name = e.func.attr if isinstance(e.func, ast.Attribute) else getattr(e.func, "id", "")
        if name == "sqrt" and len(e.args) == 1:
            name = f"llvm.sqrt.v{self.w}f64"
            fn = self.b.module.globals.get(name) or ir.Function(self.b.module, ir.FunctionType(self.vt, [self.vt]), name)
            return self.b.call(fn, [self.expr(e.args[0])])
        if name == "max" and len(e.args) == 2:   # numba's max(a, b): b if b >= a else a
            a, v = self.expr(e.args[0]), self.expr(e.args[1])
            return self.b.select(self.b.fcmp_ordered(">=", v, a), v, a)
        if name == "min" and len(e.args) == 2:   # min(a, b): b if b <= a else a
            a, v = self.expr(e.args[0]), self.expr(e.args[1])
            return self.b.select(self.b.fcmp_ordered("<=", v, a), v, a)
        helper = self.functions.get(name) if isinstance(e.func, ast.Name) else None
        if hasattr(helper, "py_func"):   # a numba function of the generated code (``_pow``): itself, lane by lane
            return self.lanewise(helper.py_func, *e.args)
        if isinstance(e.func, ast.Attribute) and name in _MATH and len(e.args) == 1:
            return self.lanewise(_MATH[name], *e.args)
        raise NotImplementedError(f"cannot vectorise the call {ast.unparse(e)!r}")

    def lanewise(self, fn: Any, *args: ast.expr) -> ir.Value:
        """``fn`` of scalars, compiled by numba, applied lane by lane (libm's ``pow`` has no vector form here)."""
        values = [self.expr(a) for a in args]
        sig = types.float64(*([types.float64] * len(values)))
        out = ir.Constant(self.vt, ir.Undefined)
        for lane in range(self.w):
            i = ir.Constant(ir.IntType(32), lane)
            r = self.context.compile_internal(self.b, fn, sig, [self.b.extract_element(v, i) for v in values])
            out = self.b.insert_element(out, r, i)
        return out

    # ---- statements -----------------------------------------------------------------------------------------
    def statement(self, st: ast.stmt) -> None:
        if isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant):   # a docstring
            return
        if isinstance(st, ast.Pass):
            return
        if isinstance(st, ast.Assign) and len(st.targets) == 1:
            self.assign(st.targets[0], self.expr(st.value))
            return
        if isinstance(st, ast.AugAssign) and type(st.op) in _BINARY:
            value = getattr(self.b, _BINARY[type(st.op)])(self.expr(st.target), self.expr(st.value))
            self.assign(st.target, value)
            return
        raise NotImplementedError(f"cannot vectorise the statement {ast.unparse(st)!r}")

    def assign(self, target: ast.expr, value: ir.Value) -> None:
        if isinstance(target, ast.Name):
            self.env[target.id] = value
        elif isinstance(target, ast.Subscript):
            self.store(target.value.id, self._index(target), value)
        else:
            raise NotImplementedError(f"cannot vectorise the assignment to {ast.unparse(target)!r}")


def _globals(fn: Any) -> dict[str, Any]:
    return getattr(getattr(fn, "py_func", fn), "__globals__", {})


def _definition(fn: Any) -> ast.FunctionDef:
    source = textwrap.dedent(inspect.getsource(getattr(fn, "py_func", fn)))
    tree = ast.parse(source).body[0]
    assert isinstance(tree, ast.FunctionDef)
    return tree


def translatable(fn: Any, drop: tuple[str, ...] = ("t",)) -> str | None:
    """None if :func:`vectorize` can translate ``fn``, else what it cannot (``compile.compiled`` then refuses the model)."""
    try:
        definition = _definition(fn)
    except (OSError, TypeError) as exc:   # no source to read
        return f"no source for {getattr(fn, '__name__', fn)!r}: {exc}"
    names = [a.arg for a in definition.args.args if a.arg not in drop]
    module = ir.Module()
    vt = ir.VectorType(_DOUBLE, 2)
    func = ir.Function(module, ir.FunctionType(ir.VoidType(), [_DOUBLE.as_pointer()] * len(names)), "dry")
    builder = ir.IRBuilder(func.append_basic_block())
    arrays = _arrays(definition)
    t = _Translator(_DryRun(), builder, 2, {n: a for n, a in zip(names, func.args) if n in arrays},
                    {n: ir.Constant(vt, ir.Undefined) for n in names if n not in arrays}, _globals(fn))
    try:
        for st in definition.body:
            t.statement(st)
    except (NotImplementedError, KeyError) as exc:
        return str(exc)
    return None


def _arrays(definition: ast.FunctionDef) -> set[str]:
    return {node.value.id for node in ast.walk(definition)
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)}


def vectorize(fn: Any, width: int, drop: tuple[str, ...] = ("t",)) -> Any:
    """A numba intrinsic doing what the generated scalar function ``fn`` does, for ``width`` patients at once.

    Its arguments are ``fn``'s, less those in ``drop`` (the time of an autonomous right-hand side): each array
    argument as a C-contiguous ``(n, width)`` float64 array, each scalar argument as a ``(width,)`` array."""
    definition = _definition(fn)
    names = [a.arg for a in definition.args.args if a.arg not in drop]
    scalars = set(names) - _arrays(definition)
    functions = _globals(fn)

    def typer(typingctx: Any, *args: Any) -> Any:
        if len(args) != len(names):
            raise TypeError(f"{definition.name}: {len(names)} arguments expected")

        def codegen(context: Any, builder: ir.IRBuilder, sig: Any, values: Any) -> None:
            pointers, lanes = {}, {}
            for name, ty, value in zip(names, sig.args, values):
                data = context.make_array(ty)(context, builder, value).data
                if name in scalars:
                    lanes[name] = builder.load(builder.bitcast(data, ir.VectorType(_DOUBLE, width).as_pointer()),
                                               align=8)
                else:
                    pointers[name] = data
            t = _Translator(context, builder, width, pointers, lanes, functions)
            for st in definition.body:
                t.statement(st)
            return context.get_dummy_value()

        return types.void(*args), codegen

    typer.__name__ = f"{definition.name}_lanes"
    return intrinsic(prefer_literal=False)(_with_arity(typer, len(names)))


def _with_arity(typer: Any, n: int) -> Any:
    """numba's ``intrinsic`` reads the typing function's signature: give it ``n`` named arguments."""
    args = ", ".join(f"a{i}" for i in range(n))
    namespace: dict[str, Any] = {"typer": typer}
    exec(f"def {typer.__name__}(typingctx, {args}):\n    return typer(typingctx, {args})\n", namespace)
    return namespace[typer.__name__]



# ---- loops over the lanes of a whole vector of states ----------------------------------------------------------
# The solver's own arithmetic between model functions (stage combinations, error norms, dense output) is a loop
# over states with a coefficient per lane. numba compiles such loops (``out[k * W + l] += c[l] * x[k * W + l]``)
# to scalar code, since it cannot prove that ``out`` and ``x`` do not overlap; these emit the <W x double>
# operations directly. Arrays are flat and lanes-last: vector ``v`` is elements ``v * W`` to ``v * W + W - 1``.


def _vectors(context: Any, builder: ir.IRBuilder, ty: Any, value: Any, width: int) -> tuple[ir.Value, ir.Value]:
    """The array's data as ``<width x double>*`` and its number of vectors."""
    arr = context.make_array(ty)(context, builder, value)
    data = builder.bitcast(arr.data, ir.VectorType(_DOUBLE, width).as_pointer())
    n = builder.udiv(arr.nitems, ir.Constant(arr.nitems.type, width))
    return data, n


def _load(builder: ir.IRBuilder, ptr: ir.Value, index: ir.Value) -> ir.Value:
    return builder.load(builder.gep(ptr, [index]), align=8)


def _store(builder: ir.IRBuilder, value: ir.Value, ptr: ir.Value, index: ir.Value) -> None:
    builder.store(value, builder.gep(ptr, [index]), align=8)


def _splat(builder: ir.IRBuilder, value: ir.Value, width: int) -> ir.Value:
    """A scalar double in every lane."""
    vt = ir.VectorType(_DOUBLE, width)
    one = builder.insert_element(ir.Constant(vt, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vt, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), width), [0] * width))


def lane_loops(width: int) -> tuple[Any, Any, Any]:
    """``axpy``, ``blend`` and ``error_norm`` intrinsics for ``width`` lanes (see the functions' docstrings)."""
    vt = ir.VectorType(_DOUBLE, width)
    zero = ir.Constant(vt, [0.0] * width)

    @intrinsic(prefer_literal=False)
    def axpy(typingctx: Any, out: Any, a: Any, x: Any, offset: Any) -> Any:
        """``out[v] += a * x[offset + v]`` for every vector ``v`` of ``out``, in the lanes where ``a`` is not 0
        (``a``: ``(width,)``; as scalar code's ``if a != 0.0: out[i] += a * x[i]``)."""
        def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
            po, n = _vectors(context, builder, sig.args[0], args[0], width)
            pa, _ = _vectors(context, builder, sig.args[1], args[1], width)
            px, _ = _vectors(context, builder, sig.args[2], args[2], width)
            av = _load(builder, pa, ir.Constant(n.type, 0))
            use = builder.fcmp_unordered("!=", av, zero)
            off = context.cast(builder, args[3], sig.args[3], types.intp)
            with cgutils.for_range(builder, n) as loop:
                o = _load(builder, po, loop.index)
                xv = _load(builder, px, builder.add(loop.index, off))
                _store(builder, builder.select(use, builder.fadd(o, builder.fmul(av, xv)), o), po, loop.index)
            return context.get_dummy_value()
        return types.void(out, a, x, offset), codegen

    @intrinsic(prefer_literal=False)
    def blend(typingctx: Any, out: Any, theta: Any, y_old: Any, y_new: Any) -> Any:
        """``out[v] = (1 - theta) * y_old[v] + theta * y_new[v]`` (``theta``: ``(width,)``)."""
        def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
            po, n = _vectors(context, builder, sig.args[0], args[0], width)
            pt, _ = _vectors(context, builder, sig.args[1], args[1], width)
            p0, _ = _vectors(context, builder, sig.args[2], args[2], width)
            p1, _ = _vectors(context, builder, sig.args[3], args[3], width)
            th = _load(builder, pt, ir.Constant(n.type, 0))
            one_minus = builder.fsub(ir.Constant(vt, [1.0] * width), th)
            with cgutils.for_range(builder, n) as loop:
                v = builder.fadd(builder.fmul(one_minus, _load(builder, p0, loop.index)),
                                 builder.fmul(th, _load(builder, p1, loop.index)))
                _store(builder, v, po, loop.index)
            return context.get_dummy_value()
        return types.void(out, theta, y_old, y_new), codegen

    @intrinsic(prefer_literal=False)
    def error_norm(typingctx: Any, norm: Any, err: Any, offset: Any, y: Any, y_new: Any, atol: Any,
                   rtol: Any) -> Any:
        """``norm += (err[offset + v] / (atol[v] + rtol * max(|y[v]|, |y_new[v]|))) ** 2`` over the vectors
        ``v`` of ``y``, in order (``atol``: one value per state, the same in every lane)."""
        def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
            pn, _ = _vectors(context, builder, sig.args[0], args[0], width)
            pe, _ = _vectors(context, builder, sig.args[1], args[1], width)
            py, n = _vectors(context, builder, sig.args[3], args[3], width)
            pz, _ = _vectors(context, builder, sig.args[4], args[4], width)
            atol_arr = context.make_array(sig.args[5])(context, builder, args[5])
            off = context.cast(builder, args[2], sig.args[2], types.intp)
            rt = _splat(builder, args[6], width)
            fabs = builder.module.globals.get(f"llvm.fabs.v{width}f64") or ir.Function(
                builder.module, ir.FunctionType(vt, [vt]), f"llvm.fabs.v{width}f64")
            acc = cgutils.alloca_once_value(builder, _load(builder, pn, ir.Constant(n.type, 0)))
            with cgutils.for_range(builder, n) as loop:
                a = builder.call(fabs, [_load(builder, py, loop.index)])
                b = builder.call(fabs, [_load(builder, pz, loop.index)])
                big = builder.select(builder.fcmp_ordered(">=", b, a), b, a)
                at = builder.load(builder.gep(atol_arr.data, [loop.index]))
                sc = builder.fadd(_splat(builder, at, width), builder.fmul(rt, big))
                q = builder.fdiv(_load(builder, pe, builder.add(loop.index, off)), sc)
                builder.store(builder.fadd(builder.load(acc), builder.fmul(q, q)), acc)
            _store(builder, builder.load(acc), pn, ir.Constant(n.type, 0))
            return context.get_dummy_value()
        return types.void(norm, err, offset, y, y_new, atol, rtol), codegen

    return axpy, blend, error_norm
