"""Validation results for reports: every check of :func:`cartsim.validate.run_checks`, cached on disk.

Running the checks takes tens of seconds, so their result is kept in
``$CARTSIM_CACHE/validation/`` (the engine's cache directory), keyed by the model
fingerprint, the targets file, the cartsim version, and the data and code the checks
run through (the fingerprint holds the equations, not the parameter values). A
changed model, target or parameter misses the cache; the file is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cartsim
from cartsim import __version__
from cartsim.engine.compile import cache_dir
from cartsim.model import Model, build_model
from cartsim.outputs.files import write_text_atomic
from cartsim.validate import Check, run_checks

CACHE_FORMAT = "2"     # 2: a check read back keeps its calibrated flag
# what decides the checks' numbers besides the model's equations (paths inside the cartsim package)
KEYED = ("data", "engine", "model", "therapy", "validate.py", "scenario.py", "population.py", "endpoints.py",
         "endpoint_dictionary.py", "disease.py", "ms_outcomes.py", "nmosd_outcomes.py", "mg_outcomes.py")


@dataclass(frozen=True)
class Validation:
    checks: tuple[Check, ...]
    seconds: float          # time the checks took when they were run
    cached: bool            # read from the cache rather than run now

    @property
    def missed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)


def _keyed_files() -> list[Path]:
    root = Path(cartsim.__file__).parent
    files = []
    for name in KEYED:
        path = root / name
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".py", ".toml", ".yaml"))
        elif path.is_file():
            files.append(path)
    return files


def cache_key(model: Model | None = None) -> str:
    """Hash of the model fingerprint, the targets file, the cartsim version and the checks' data and code."""
    model = model or build_model()
    h = hashlib.sha256()
    targets = resources.files("cartsim.data").joinpath("targets.yaml").read_bytes()
    root = Path(cartsim.__file__).parent
    for part in (CACHE_FORMAT.encode(), __version__.encode(), model.fingerprint().encode(), targets):
        h.update(hashlib.sha256(part).digest())
    for path in _keyed_files():
        h.update(str(path.relative_to(root)).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def cache_path(key: str) -> Path:
    return cache_dir() / "validation" / f"{key}.json"


def _read(path: Path) -> Validation | None:
    try:
        doc = json.loads(path.read_text())
        checks = tuple(Check(c["id"], c["metric"], float(c["predicted"]), [float(v) for v in c["accept"]],
                             bool(c["pass"]), bool(c["calibrated"])) for c in doc["checks"])
        return Validation(checks, float(doc["seconds"]), cached=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cached_validation() -> Validation:
    """Every check of the current model with its result: from the cache when the key matches, else run now."""
    path = cache_path(cache_key())
    hit = _read(path)
    if hit is not None:
        return hit
    started = time.perf_counter()
    checks = tuple(run_checks())
    seconds = time.perf_counter() - started
    doc = {"cartsim_version": __version__, "seconds": seconds, "checks": [c.as_json() for c in checks]}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(doc, indent=1))
    except OSError:
        pass        # a read-only cache only costs the next run the time of the checks
    return Validation(checks, seconds, cached=False)
