"""The same population fit by cartsim and by a peer NLME library, on the same datasets, in one run.

Each case simulates a cohort with known parameters (`cartsim.fit.cohort`: only the estimated parameters vary
between patients, log-normal residual error 0.15) and fits the typical values, log-normal between-patient SDs and
the residual SD of the estimated parameters twice:

- **cartsim**: `cartsim.fit.run.fit` (FOCE-I; all patients and gradient points solved in one engine call);
- **pynlme** (MATLAB's nlmefit/nlmefitsa algorithms, checked by its authors against MATLAB, R nlme and saemix):
  Lindstrom-Bates (`LME`, the algorithm of R's nlme), FOCE, and SAEM (the algorithm of saemix and Monolix), with
  `ParamTransform` log (THETA * EXP(ETA)) and the exponential error model (log-normal residuals). Its model
  function simulates each patient with libRoadRunner (CVODE) on cartsim's PEtab export of the same dataset
  (`cartsim.exporters.petab`: `model.xml` and one condition per patient), at the tolerances of cartsim's fit.

PEtab itself has no random effects, so PEtab + pyPESTO cannot express this fit; pynlme is the NLME peer that
installs here. Records below the assay limit are dropped from both fits' data (pynlme has no M3 method), so the
two fits see the same observations. For the CAR-T case pynlme has one residual SD for both observation types and
cartsim one per type (the cohort was simulated with the same SD for both).

    .venv/bin/python bench/fit_peers.py                          # ocr15, all three peer methods (up to 95 min)
    .venv/bin/python bench/fit_peers.py --methods LME --limit 2400  # the Lindstrom-Bates fit to the end (~30 min)
    .venv/bin/python bench/fit_peers.py --cases ocr300 --methods LME --limit 1200

Prints a table and writes bench/results/fit_peers.json atomically.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pynlme
import roadrunner

from cartsim.exporters.nonmem import check_dataset
from cartsim.exporters.petab import FILES, condition_id, petab_files
from cartsim.fit.cohort import cohort, true_values
from cartsim.fit.problem import ATOL, RTOL
from cartsim.fit.run import fit
from cartsim.model import build_model
from cartsim.outputs.files import write_text_atomic
from cartsim.scenario import Scenario

sys.path.insert(0, str(Path(__file__).parent))
from fit import CASES, SD  # noqa: E402  (bench/ is a folder of scripts, not a package)
from peers import _event_variables, _solver_output  # noqa: E402

METHODS = ("LME", "FOCE", "SAEM")


class OutOfTime(Exception):
    """The peer's fit ran past ``--limit`` seconds."""


class PetabSimulator:
    """libRoadRunner on a PEtab problem's model: each call sets one condition's values and the estimated
    parameters, resets, and simulates that patient's observation times."""

    def __init__(self, files: dict[str, str], names: list[str], limit: float):
        roadrunner.Logger.setLevel(roadrunner.Logger.LOG_FATAL)
        text = files[FILES["model"]]
        self.rr = roadrunner.RoadRunner(text)
        integrator = self.rr.getIntegrator()
        integrator.relative_tolerance, integrator.absolute_tolerance = RTOL, ATOL
        integrator.setValue("maximum_num_steps", 1_000_000)
        self.restart = _event_variables(text)
        conditions = pd.read_csv(io.StringIO(files[FILES["conditions"]]), sep="\t").set_index("conditionId")
        self.conditions = conditions.drop(columns="conditionName")
        self.observables = pd.read_csv(io.StringIO(files[FILES["observables"]]), sep="\t")
        self.rr.timeCourseSelections = ["time", *self.observables.observableFormula]
        self.names = names
        self.solves = 0
        self.deadline = time.perf_counter() + limit

    def simulate(self, patient: int, phi: np.ndarray, times: np.ndarray, column: np.ndarray) -> np.ndarray:
        """Predictions at ``times`` (observation order) of observable ``column`` (index into observables)."""
        for name, value in self.conditions.loc[condition_id(patient)].items():
            self.rr.setValue(name, float(value))
        for name, value in zip(self.names, phi):
            self.rr.setValue(name, float(value))
        for name, value in self.restart.items():
            self.rr.setValue(name, value)
        self.rr.reset()
        grid = np.unique(times)
        self.solves += 1
        if time.perf_counter() > self.deadline:
            raise OutOfTime
        try:
            sim = np.asarray(self.rr.simulate(times=[0.0, *grid]))[1:]
        except RuntimeError:
            return np.full(times.size, np.nan)
        return sim[np.searchsorted(grid, times), 1 + column]

    def model(self, p: dict, x: dict, v: dict) -> np.ndarray:
        """pynlme's vectorised model function: one simulation per run of rows with the same patient and
        parameters (a group, or a finite-difference perturbation of one)."""
        phi = np.column_stack([np.broadcast_to(p[n], x["time"].shape) for n in self.names])
        patient = np.broadcast_to(v["patient"], x["time"].shape)
        key = np.column_stack([phi, patient])
        new = np.ones(len(key), bool)
        new[1:] = np.any(key[1:] != key[:-1], axis=1)
        out = np.empty(len(key))
        bounds = [*np.flatnonzero(new), len(key)]
        for a, b in zip(bounds[:-1], bounds[1:]):
            out[a:b] = self.simulate(int(patient[a]), phi[a], x["time"][a:b], x["column"][a:b].astype(int))
        return out


def peer_fit(files: dict[str, str], names: list[str], start: np.ndarray, method: str, seed: int, limit: float,
             compat: str = "matlab") -> dict:
    sim = PetabSimulator(files, names, limit)
    meas = pd.read_csv(io.StringIO(files[FILES["measurements"]]), sep="\t")
    column = {o: k for k, o in enumerate(sim.observables.observableId)}
    data = {"dv": meas.measurement.to_numpy(float), "time": meas.time.to_numpy(float),
            "column": meas.observableId.map(column).to_numpy(float),
            "patient": meas.simulationConditionId.str.removeprefix("id_").astype(int).to_numpy()}
    options = {"error_model": "exponential", "compat": compat}
    if method == "SAEM":
        options["random_state"] = seed
    messages: list[str] = []
    began = time.perf_counter()
    error = None
    try:
        with _solver_output(messages):
            r = pynlme.fit(sim.model, data, response="dv", group="patient", start=dict(zip(names, start)),
                           predictors=["time", "column"], group_predictors=["patient"],
                           transform={n: "log" for n in names}, method=method, **options)
    except OutOfTime:
        r, error = None, f"not finished in {limit:g} s"
    except Exception as err:  # a peer that fails is reported, not fatal
        r, error = None, f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - began
    out = {"method": f"pynlme {method}" + (f" ({compat})" if compat != "matlab" else ""), "seconds": round(seconds, 1), "solves": sim.solves,
           "solver_warnings": sum("WARNING" in line for line in messages), "error": error}
    if r is not None:
        err = np.atleast_1d(np.asarray(r["error"]["parameters"], float))
        out["estimates"] = {**{("theta", n): r["typical"][n] for n in names},
                            **{("omega", n): float(np.sqrt(r["psi"]["variances"][n])) for n in names},
                            ("sigma", "all"): float(err[0])}
    return out


def cartsim_fit(data: pd.DataFrame, therapy: str, disease: str, names: list[str], dvids: list[int]) -> dict:
    began = time.perf_counter()
    r = fit(data, therapy, names, disease, dvids)
    seconds = time.perf_counter() - began
    est = {(row.role, row.parameter): float(row.estimate) for row in r.parameters.itertuples()}
    return {"method": "cartsim FOCE-I", "seconds": round(seconds, 1), "ofv": r.estimate.ofv,
            "converged": bool(r.estimate.success), "estimates": est, "error": None}


def run_case(name: str, seed: int, methods: list[str], limit: float, compat: str = "matlab") -> dict:
    therapy, disease, names, dvids, n = CASES[name]
    model = build_model()
    scenario = Scenario.make(therapy, disease, 365)
    data = check_dataset(cohort(model, scenario, n, seed, names, SD))
    keep = (data.EVID == 1) | ((data.BLQ == 0) & data.DVID.isin(dvids))
    data = data[keep].drop(columns=["BLQ", "LLOQ"]).reset_index(drop=True)
    truth = true_values(model, scenario, names)
    files = petab_files(model, scenario, data, "bench", name)
    start = np.array([truth[p][0] for p in names])      # the table's values: where cartsim's fit starts too
    fits = [cartsim_fit(data, therapy, disease, names, dvids)]
    print(f"{name}: cartsim FOCE-I {fits[0]['seconds']} s", flush=True)
    for m in methods:
        fits.append(peer_fit(files, names, start, m, seed, limit, compat))
        print(f"{name}: pynlme {m} {fits[-1]['seconds']} s, {fits[-1]['solves']} solves"
              + (f", {fits[-1]['error']}" if fits[-1]["error"] else ""), flush=True)
    true = {**{("theta", p): truth[p][0] for p in names}, **{("omega", p): truth[p][1] for p in names}}
    for f in fits:
        if "estimates" in f:
            f["estimates"] = [{"role": role, "parameter": p, "estimate": v,
                               "truth": true.get((role, p), SD if role == "sigma" else None)}
                              for (role, p), v in f["estimates"].items()]
    ours = fits[0]["seconds"]
    for f in fits[1:]:
        f["ratio_to_cartsim"] = round(f["seconds"] / ours, 1) if f["error"] is None else None
    return {"case": name, "therapy": therapy, "patients": n, "observations": int((data.EVID == 0).sum()),
            "estimated": len(names) * 2 + 1, "fits": fits}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="ocr15", help="comma-separated: " + ", ".join(CASES))
    ap.add_argument("--methods", default=",".join(METHODS), help="pynlme methods: " + ", ".join(METHODS))
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--limit", type=float, default=1800.0, help="seconds each peer fit may run (1800)")
    ap.add_argument("--compat", choices=("matlab", "r"), default="matlab",
                    help="pynlme's conventions: MATLAB nlmefit/nlmefitsa (default) or R nlme/saemix")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fit_peers.json")
    args = ap.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    methods = [m.strip().upper() for m in args.methods.split(",") if m.strip()]
    for field, values, allowed in (("--cases", cases, CASES), ("--methods", methods, METHODS)):
        bad = [v for v in values if v not in allowed]
        if bad:
            ap.error(f"{field}: unknown value {bad[0]!r} (allowed: {', '.join(allowed)})")
    results = []
    for c in cases:
        res = run_case(c, args.seed, methods, args.limit, args.compat)
        results.append(res)
        print(f"\n{c}: {res['patients']} patients, {res['observations']} observations, "
              f"{res['estimated']} estimated values")
        for f in res["fits"]:
            ratio = f" ({f['ratio_to_cartsim']}x cartsim's time)" if f.get("ratio_to_cartsim") else ""
            print(f"  {f['method']:<16}{f['seconds']:>8.1f} s{ratio}" + (f"  FAILED: {f['error']}" if f["error"]
                                                                       else ""))
            for e in f.get("estimates", []):
                truth = "" if e["truth"] is None else f"  truth {e['truth']:.4g}"
                print(f"      {e['role']:<6}{e['parameter']:<26}{e['estimate']:>10.4g}{truth}")
    doc = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(),
                       "pynlme": pynlme.__version__, "libroadrunner": roadrunner.__version__},
           "seed": args.seed, "residual_sd": SD, "cases": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
