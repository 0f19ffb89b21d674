"""Cell doses such as ``"1e6 cells/kg"`` or ``"1e8 cells"``."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from cartsim.errors import CartsimInputError

_DOSE = re.compile(r"^\s*(?P<num>[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(?:x\s*10\^(?P<exp>[+-]?\d+)\s*)?"
                   r"cells\s*(?P<per>/\s*kg)?\s*$")
ALLOWED = "'<number> cells/kg' or '<number> cells', e.g. '1e6 cells/kg', '1e8 cells', '2 x 10^6 cells/kg'"


@dataclass(frozen=True)
class CellDose:
    value: float
    per_kg: bool

    @staticmethod
    def parse(text: str, field: str = "dose") -> "CellDose":
        if isinstance(text, CellDose):
            return text
        m = _DOSE.match(str(text))
        if not m:
            if str(text).strip().startswith("-"):
                raise CartsimInputError(field, f"dose must not be negative, got {text!r}", ALLOWED)
            raise CartsimInputError(field, f"cannot read dose {text!r}", ALLOWED)
        value = float(m["num"]) * (10.0 ** int(m["exp"]) if m["exp"] else 1.0)
        if not math.isfinite(value):
            raise CartsimInputError(field, f"dose must be finite, got {text!r}", ALLOWED)
        return CellDose(value, bool(m["per"]))

    def cells(self, weight_kg: float) -> float:
        return self.value * weight_kg if self.per_kg else self.value

    def __str__(self) -> str:
        return f"{self.value:g} cells" + ("/kg" if self.per_kg else "")

    def plain(self) -> str:
        """For people: '100 million cells', '1 million cells per kg'."""
        v = self.value
        count = (f"{v / 1e9:.3g} billion" if v >= 1e9 else f"{v / 1e6:.3g} million" if v >= 1e6
                 else f"{v:,.0f}")
        return f"{count} cells" + (" per kg" if self.per_kg else "")
