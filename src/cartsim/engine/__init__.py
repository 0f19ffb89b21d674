"""The engine: compiled, batched solving of a symbolic model (no biology here)."""

from cartsim.engine.doses import DoseRecord, Doses
from cartsim.engine.solve import Solution, Trigger, full_parameters, solve

__all__ = ["DoseRecord", "Doses", "Solution", "Trigger", "full_parameters", "solve"]
