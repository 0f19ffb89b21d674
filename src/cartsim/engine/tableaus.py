"""Coefficients of the Rosenbrock methods in the transformed form used by the kernel (``rosenbrock.py``).

``A`` has ``s + 1`` rows: row ``i < s`` gives stage ``i``'s argument ``y + sum_j A[i, j] k_j``, row ``s`` the
new solution. ``C`` (``s`` x ``s``) couples earlier stages into stage ``i``'s right-hand side as
``sum_j C[i, j] / h * k_j``. ``H`` gives the dense output vectors ``d_l = sum_j H[l, j] k_j``. The methods are
stiffly accurate, so the last stage is the error estimate.

* **Rodas4**: Hairer & Wanner, Solving ODEs II (2nd ed., 1996), section VI.4, order 4(3), L-stable, with a
  dense output of order 3; coefficients (full double precision) as in their Fortran code RODAS (``rodas.f``,
  ``RODAS4`` with ``METH = 1``) and in OrdinaryDiffEq.jl's ``Rodas4Tableau``.
* **Rodas5P**: Steinebach, Construction of Rosenbrock-Wanner method Rodas5P and numerical benchmarks within
  the Julia Differential Equations package, BIT Numer Math 2023;63:27; order 5(4), L-stable, dense output of
  order 4; coefficients as in OrdinaryDiffEq.jl's ``Rodas5PTableau``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RosenbrockTableau:
    name: str
    A: np.ndarray        # (s + 1, s)
    C: np.ndarray        # (s, s)
    H: np.ndarray        # (dense vectors, s)
    gamma: float
    order: int           # of the solution
    error_order: int     # of the embedded solution: the step-size exponent is 1 / (error_order + 1)

    @property
    def stages(self) -> int:
        return self.C.shape[0]

    @property
    def expo(self) -> float:
        return 1.0 / (self.error_order + 1)


def _lower(rows: list[list[float]], s: int) -> np.ndarray:
    out = np.zeros((len(rows), s))
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def _rodas4() -> RosenbrockTableau:
    a5 = [1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950]
    A = _lower([[], [1.544000000000000],
                [0.9466785280815826, 0.2557011698983284],
                [3.314825187068521, 2.896124015972201, 0.9986419139977817],
                a5, a5 + [1.0], a5 + [1.0, 1.0]], 6)
    C = _lower([[], [-5.668800000000000],
                [-2.430093356833875, -0.2063599157091915],
                [-0.1073529058151375, -9.594562251023355, -20.47028614809616],
                [7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160],
                [8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136, -6.058818238834054]],
               6)
    H = _lower([[10.12623508344586, -7.487995877610167, -34.80091861555747, -7.992771707568823, 1.025137723295662],
                [-0.6762803392801253, 6.087714651680015, 16.43084320892478, 24.76722511418386, -6.594389125716872]],
               6)
    return RosenbrockTableau("rodas4", A, C, H, 0.25, 4, 3)


def _rodas5p() -> RosenbrockTableau:
    a6 = [-7.502846399306121, 2.561846144803919, -11.627539656261098, -0.18268767659942256, 0.030198172008377946]
    A = _lower([[], [3.0],
                [2.849394379747939, 0.45842242204463923],
                [-6.954028509809101, 2.489845061869568, -10.358996098473584],
                [2.8029986275628964, 0.5072464736228206, -0.3988312541770524, -0.04721187230404641],
                a6, a6 + [1.0], a6 + [1.0, 1.0], a6 + [1.0, 1.0, 1.0]], 8)
    C = _lower([[], [-14.155112264123755],
                [-17.97296035885952, -2.859693295451294],
                [147.12150275711716, -1.41221402718213, 71.68940251302358],
                [165.43517024871676, -0.4592823456491126, 42.90938336958603, -5.961986721573306],
                [24.854864614690072, -3.0009227002832186, 47.4931110020768, 5.5814197821558125,
                 -0.6610691825249471],
                [30.91273214028599, -3.1208243349937974, 77.79954646070892, 34.28646028294783, -19.097331116725623,
                 -28.087943162872662],
                [37.80277123390563, -3.2571969029072276, 112.26918849496327, 66.9347231244047, -40.06618937091002,
                 -54.66780262877968, -9.48861652309627]], 8)
    H = _lower([[25.948786856663858, -2.5579724845846235, 10.433815404888879, -2.3679251022685204,
                 0.524948541321073, 1.1241088310450404, 0.4272876194431874, -0.17202221070155493],
                [-9.91568850695171, -0.9689944594115154, 3.0438037242978453, -24.495224566215796,
                 20.176138334709044, 15.98066361424651, -6.789040303419874, -6.710236069923372],
                [11.419903575922262, 2.8879645146136994, 72.92137995996029, 80.12511834622643,
                 -52.072871366152654, -59.78993625266729, -0.15582684282751913, 4.883087185713722]], 8)
    return RosenbrockTableau("rodas5p", A, C, H, 0.21193756319429014, 5, 4)


TABLEAUS: dict[str, RosenbrockTableau] = {t.name: t for t in (_rodas4(), _rodas5p())}
