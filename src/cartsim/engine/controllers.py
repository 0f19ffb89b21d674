"""Step-size controllers, as data the driver (``driver.py``) reads.

After an attempt with scaled error norm ``err`` (accepted when ``err <= 1``), the next step is ``h * factor`` with

    factor = clip(safety * err ** -expo, facmin, facmax)

(Hairer, Norsett & Wanner, Solving ODEs I, II.4), where ``expo = 1 / (error order + 1)`` comes from the method.
With ``predictive`` an accepted step's factor is also bounded by Gustafsson's predictive estimate from the last
accepted step (Hairer & Wanner, Solving ODEs II, IV.8; as in RODAS), which keeps a stiff solver from growing
steps that it will then reject. After a rejection the next accepted step does not grow.
"""

from __future__ import annotations

from dataclasses import dataclass

from cartsim.engine.tableaus import Tableau


@dataclass(frozen=True)
class Controller:
    safety: float = 0.9
    facmin: float = 0.2
    facmax: float = 6.0
    predictive: bool = True

    def __post_init__(self) -> None:
        if not (0.0 < self.safety <= 1.0 and 0.0 < self.facmin < 1.0 < self.facmax):
            raise ValueError("a controller needs 0 < safety <= 1 and 0 < facmin < 1 < facmax, "
                             f"got safety={self.safety}, facmin={self.facmin}, facmax={self.facmax}")


PREDICTIVE = Controller()                                    # the Rosenbrock methods' (RODAS's)
INTEGRAL = Controller(facmax=10.0, predictive=False)         # the explicit method's (as scipy's RK45)


def default_controller(method: Tableau) -> Controller:
    return INTEGRAL if method.explicit else PREDICTIVE
