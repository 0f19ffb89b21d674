"""The one-value root search shared by the calibration scripts that fit a single value to a single number.

SciPy's brentq finds where a check of ``cartsim validate`` crosses its published value; the record (fitted
value, target, final check, every evaluation) is written atomically as JSON beside the script.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from scipy.optimize import brentq

from cartsim.outputs.files import write_text_atomic


def fit_one(name: str, check: Callable[[float], dict[str, float]], key: tuple[str, str], target: float,
            bracket: tuple[float, float], out: Path, *, method: str, digits: int,
            to_value: Callable[[float], float] = float) -> tuple[float, dict[str, float]]:
    """Fit ``name`` so that metric ``key[1]`` of ``check(value)`` equals ``target``: brentq over ``bracket`` (on
    the scale that ``to_value`` maps to the value, e.g. ``math.exp`` for a log scale), xtol 1e-3, the value rounded
    to ``digits`` significant digits. Writes the record to ``out``; returns the value and its final check."""
    trace: list[dict] = []

    def gap(x: float) -> float:
        value = to_value(x)
        got = check(value)
        trace.append({name: value, **got})
        print(f"{name} {value:.5g}: {got}", flush=True)
        return got[key[1]] - target

    value = float(f"{to_value(brentq(gap, *bracket, xtol=1e-3)):.{digits}g}")
    final = check(value)
    doc = {"fitted": {name: value}, "targets": [list(key)], "observed": {key[1]: round(target, 4)},
           "predicted": final, "method": method, "evaluations": trace}
    write_text_atomic(out, json.dumps(doc, indent=1) + "\n")
    return value, final


def fit_one_main(doc: str, out_name: str, name: str, check: Callable[[float], dict[str, float]], key: tuple[str, str],
                 target: float, bracket: tuple[float, float], *, method: str, digits: int,
                 to_value: Callable[[float], float] = float, label: str | None = None) -> None:
    """The command line of a calibration script that fits one value: ``--out`` (default ``out_name`` beside the
    scripts; ``doc``'s first line is the help), :func:`fit_one`, and a line saying what was fitted."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name(out_name))
    out = ap.parse_args().out
    value, final = fit_one(name, check, key, target, bracket, out, method=method, digits=digits, to_value=to_value)
    print(f"fitted {label or name} = {value}; {final}; wrote {out}")
