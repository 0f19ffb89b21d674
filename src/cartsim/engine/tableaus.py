"""The integration methods, as data: coefficients in the one form the driver (``driver.py``) steps with.

Every method is written in the transformed form of Hairer & Wanner, Solving ODEs II (2nd ed., 1996), section
IV.7. With ``W = I / (h gamma) - J`` (``J`` the analytic Jacobian at the step's start),

    W k_i = f(y + sum_{j<i} A[i, j] k_j) + sum_{j<i} C[i, j] / h * k_j,   i = 1..s,
    y_new = y + sum_j A[s, j] k_j,   error estimate sum_j E[j] k_j,
    y(t + theta h) = (1 - theta) y + theta y_new + sum_j theta (1 - theta) sum_l theta^l H[l, j] k_j.

An explicit Runge-Kutta method is the case ``J = 0``, ``gamma = 1``: then ``k_i = h f(...)`` and ``C`` is zero
(``explicit``: the driver skips the Jacobian and the factorisation and scales by ``h`` instead).

* **Rodas4**: Hairer & Wanner, section VI.4, order 4(3), L-stable, with a dense output of order 3; coefficients
  (full double precision) as in their Fortran code RODAS (``rodas.f``, ``RODAS4`` with ``METH = 1``) and in
  OrdinaryDiffEq.jl's ``Rodas4Tableau``. Stiffly accurate: the last stage is the error estimate.
* **Rodas5P**: Steinebach, Construction of Rosenbrock-Wanner method Rodas5P and numerical benchmarks within
  the Julia Differential Equations package, BIT Numer Math 2023;63:27; order 5(4), L-stable, dense output of
  order 4; coefficients as in OrdinaryDiffEq.jl's ``Rodas5PTableau``.
* **DP5**: Dormand & Prince, J Comput Appl Math 1980;6:19, order 5(4), explicit, with Shampine's dense output of
  order 4 (Math Comp 1986;46:135), as in ``scipy.integrate.RK45``; its seventh stage is ``f(y_new)``, which the
  error estimate uses. The model's stiffness caps its step size: it is an alternative for checking, not for
  populations.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class Tableau:
    name: str
    A: np.ndarray        # (s + 1, s): stage arguments, then the new solution
    C: np.ndarray        # (s, s)
    H: np.ndarray        # (dense vectors, s)
    E: np.ndarray        # (s,): the error estimate's weights
    gamma: float
    order: int           # of the solution
    error_order: int     # of the embedded solution: the step-size exponent is 1 / (error_order + 1)
    explicit: bool = False

    @property
    def stages(self) -> int:
        return self.C.shape[0]

    @property
    def expo(self) -> float:
        return 1.0 / (self.error_order + 1)

    @property
    def error_stage(self) -> int:
        """The stage that is the error estimate (a stiffly accurate method's last), or -1."""
        nonzero = np.flatnonzero(self.E)
        return int(nonzero[0]) if nonzero.size == 1 and self.E[nonzero[0]] == 1.0 else -1


def _lower(rows: list[list[float]], s: int) -> np.ndarray:
    out = np.zeros((len(rows), s))
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def _last(s: int) -> np.ndarray:
    """Error weights of a stiffly accurate method: the last stage."""
    e = np.zeros(s)
    e[-1] = 1.0
    return e


def _rodas4() -> Tableau:
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
    return Tableau("rodas4", A, C, H, _last(6), 0.25, 4, 3)


def _rodas5p() -> Tableau:
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
    return Tableau("rodas5p", A, C, H, _last(8), 0.21193756319429014, 5, 4)


def _dp5() -> Tableau:
    F = Fraction
    a = [[], [F(1, 5)], [F(3, 40), F(9, 40)], [F(44, 45), F(-56, 15), F(32, 9)],
         [F(19372, 6561), F(-25360, 2187), F(64448, 6561), F(-212, 729)],
         [F(9017, 3168), F(-355, 33), F(46732, 5247), F(49, 176), F(-5103, 18656)]]
    b = [F(35, 384), F(0), F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84), F(0)]
    e = [F(-71, 57600), F(0), F(71, 16695), F(-71, 1920), F(17253, 339200), F(-22, 525), F(1, 40)]
    # Shampine's dense output y + sum_j k_j (P[j,0] th + P[j,1] th^2 + P[j,2] th^3 + P[j,3] th^4), rewritten in
    # the form above: P_j(th) - th b_j vanishes at th = 0 and th = 1, so it is th (1 - th) (H0 + H1 th + H2 th^2)
    P = [[F(1), F(-8048581381, 2820520608), F(8663915743, 2820520608), F(-12715105075, 11282082432)],
         [F(0)] * 4,
         [F(0), F(131558114200, 32700410799), F(-68118460800, 10900136933), F(87487479700, 32700410799)],
         [F(0), F(-1754552775, 470086768), F(14199869525, 1410260304), F(-10690763975, 1880347072)],
         [F(0), F(127303824393, 49829197408), F(-318862633887, 49829197408), F(701980252875, 199316789632)],
         [F(0), F(-282668133, 205662961), F(2019193451, 616988883), F(-1453857185, 822651844)],
         [F(0), F(40617522, 29380423), F(-110615467, 29380423), F(69997945, 29380423)]]
    H = np.zeros((3, 7))
    for j, p in enumerate(P):
        h0 = p[0] - b[j]
        h1 = p[1] + h0
        h2 = p[2] + h1
        assert p[3] + h2 == 0, "the dense output must end at the new solution"
        H[:, j] = [float(h0), float(h1), float(h2)]
    A = _lower([[float(x) for x in row] for row in [*a, b, b]], 7)   # the seventh stage is taken at y_new
    return Tableau("dp5", A, np.zeros((7, 7)), H, np.array([float(x) for x in e]), 1.0, 5, 4, explicit=True)


TABLEAUS: dict[str, Tableau] = {t.name: t for t in (_rodas4(), _rodas5p(), _dp5())}
