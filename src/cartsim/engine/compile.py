"""Compile a model once and cache it on disk, keyed by the model's definition.

The generated model code, the lane width, the event helpers (``events.py``)
and the driver (``driver.py``) are written together as one module in the cache
directory and imported from there, so numba's on-disk
cache (``cache=True``) serves every later process, worker or cluster node that
sees the same directory: nothing is pickled and nothing is recompiled.

Generating the model code (the symbolic Jacobian and its common
subexpressions take a few seconds) is cached too, keyed by
:meth:`Model.fingerprint` and the code generator's own source, so a process
that finds the cache pays only for reading it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import ModuleType

from cartsim.engine.codegen import generate
from cartsim.model.ir import Model

ENGINE_VERSION = "2"


def cache_dir() -> Path:
    """``$CARTSIM_CACHE`` if set, else the user's cache directory."""
    env = os.environ.get("CARTSIM_CACHE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("cartsim"))


SOLVER_FILES = ("events.py", "driver.py")   # appended to the model code, in this order
LANE_WIDTHS = (1, 4)                        # patients per vector: 4 doubles fill an AVX2 register (8 ran no faster)
_GENERATOR = ("codegen.py", "hoist.py", "jacobian.py", "sparse_lu.py")  # their source keys the model-code cache


def _engine_text(name: str) -> str:
    return resources.files("cartsim.engine").joinpath(name).read_text()


def model_code(model: Model) -> str:
    """The generated model code (``codegen.generate``), from the cache when this model was generated before."""
    digest = hashlib.sha256(ENGINE_VERSION.encode())
    for name in _GENERATOR:
        digest.update(_engine_text(name).encode())
    digest.update(model.fingerprint().encode())
    path = cache_dir() / "source" / f"model_{digest.hexdigest()[:24]}.py"
    try:
        return path.read_text()
    except OSError:
        pass
    code = generate(model)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(code)
        os.replace(tmp, path)  # atomic: concurrent processes never see half a file
    except OSError:  # a read-only cache still works, it only regenerates
        pass
    return code


def module_source(model: Model, lanes: int = 4) -> str:
    """The compiled module's source: the model code, ``LANES``, then the solver files."""
    if lanes not in LANE_WIDTHS:
        raise ValueError(f"lanes must be one of {LANE_WIDTHS}, got {lanes!r}")
    parts = [model_code(model), f"\nLANES = {lanes}  # patients per vector in the driver\n"]
    for name in SOLVER_FILES:
        parts.append(f"\n# ---- cartsim/engine/{name} ----\n" + _engine_text(name))
    # the driver imports the vector code generator: its source keys the compiled module too
    digest = hashlib.sha256(_engine_text("lanes.py").encode()).hexdigest()[:16]
    parts.append(f"\n# cartsim/engine/lanes.py {digest}\n")
    return "".join(parts)


@lru_cache(maxsize=8)
def _load(key: str, source: str) -> ModuleType:
    directory = cache_dir() / "models"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"cartsim_model_{key}.py"
    if not path.exists() or path.read_text() != source:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)  # atomic: concurrent processes never see half a file
    name = f"cartsim_model_{key}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_BY_MODEL: dict[tuple[int, int], tuple[Model, ModuleType]] = {}


def compiled(model: Model, lanes: int = 4) -> ModuleType:
    """The compiled module for ``model`` with ``lanes`` patients per vector (generated and compiled on first use,
    then kept per model object: assembling the source, even from the cache, takes a tenth of a second, which
    would dominate small batches)."""
    hit = _BY_MODEL.get((id(model), lanes))
    if hit is not None and hit[0] is model:
        return hit[1]
    source = module_source(model, lanes)
    key = hashlib.sha256((ENGINE_VERSION + source).encode()).hexdigest()[:16]
    module = _load(key, source)
    if module.UNTRANSLATABLE is not None:   # the generated code used a construct the vector printer lacks
        raise RuntimeError(f"cartsim cannot compile this model: {module.UNTRANSLATABLE} "
                           "(cartsim.engine.lanes translates the generated code to vector instructions)")
    _BY_MODEL[(id(model), lanes)] = (model, module)
    return module
