"""The engine: compiled, batched solving of a symbolic model (no biology here)."""

from cartsim.engine.solve import Doses, Solution, Trigger, full_parameters, solve

__all__ = ["Doses", "Solution", "Trigger", "full_parameters", "solve"]
