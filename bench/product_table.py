"""The published table of CAR-T products (``product_kinetics.yaml``), as the bench scripts read it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

TABLE = Path(__file__).with_name("product_kinetics.yaml")


def rows() -> list[dict]:
    """Every row of the table, in its order."""
    return yaml.safe_load(TABLE.read_text())


def row(product: str, trial: str) -> dict:
    """The one row of ``product`` in ``trial`` (an error if there is none or more than one)."""
    found = [r for r in rows() if r["product"] == product and r["trial"] == trial]
    if len(found) != 1:
        raise LookupError(f"{len(found)} rows of {product!r} in {trial!r} in {TABLE.name}")
    return found[0]


def count(text: str) -> tuple[int, int]:
    """'11/19' as (events, patients)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"not a count of patients (events/patients): {text!r}")
    return int(m[1]), int(m[2])
