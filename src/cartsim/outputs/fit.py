"""Files of a population fit: ``fit.json``, ``fitted.toml``, ``individual.csv``, ``predictions.csv``, and the
figures ``gof.png`` (goodness of fit), ``individual_fits.png`` and ``vpc.png`` (visual predictive check)."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cartsim import __version__  # noqa: E402
from cartsim.exporters.nonmem import BY_DVID, quantity_unit  # noqa: E402
from cartsim.fit.fitted import to_toml  # noqa: E402
from cartsim.fit.run import FitResult, individual_curves, vpc  # noqa: E402
from cartsim.outputs.plots import FOOTER, save_figure  # noqa: E402

FILES = ("fit.json", "fitted.toml", "individual.csv", "predictions.csv", "gof.png", "individual_fits.png",
         "vpc.png")
VPC_REPLICATES = 100


def _finite(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def fit_document(result: FitResult, dataset: str) -> dict:
    """``fit.json``: what was fitted, the estimates with their uncertainty, the objective and convergence."""
    est, problem = result.estimate, result.problem
    d = problem.data
    doc = {
        "cartsim_version": __version__, "method": result.method,
        "method_description": ("FOCE-I (first-order conditional estimation with interaction; Laplace around "
                               "each patient's conditional mode, log-normal residual error, BLQ by Beal's M3)"
                               if result.method == "foce-i" else
                               "Bayesian: emcee ensemble sampling of the FOCE-I marginal likelihood times "
                               "priors from the parameter table's uncertainty ranges"),
        "therapy": result.scenario.therapy, "disease": result.scenario.disease.name, "dataset": dataset,
        "patients": int(d.n), "observations": int(d.dv.size), "blq_observations": int(d.blq.sum()),
        "observations_by_dvid": {str(k): int((d.dvid == k).sum()) for k in d.dvids},
        "estimated": list(problem.names),
        "parameters": [{k: _finite(v) for k, v in row.items()} for row in result.parameters.to_dict("records")],
        "ofv": est.ofv, "aic": result.aic, "bic": result.bic,
        "convergence": {"success": est.success, "message": est.message, "iterations": est.iterations,
                        "objective_evaluations": est.evaluations, "inner_failures": est.inner_failures,
                        "covariance": est.covariance_message},
        "seconds": round(result.seconds, 2),
    }
    if result.posterior is not None:
        p = result.posterior
        doc["mcmc"] = {"sampler": "emcee EnsembleSampler", "walkers": p.walkers, "steps": p.steps,
                       "burn_in": p.burn, "draws": int(p.draws.shape[0]), "acceptance_fraction": p.acceptance,
                       "autocorrelation_steps": [_finite(float(t)) for t in p.autocorr],
                       "prior_mean_log": p.prior.mean.tolist(), "prior_sd_log": p.prior.sd.tolist()}
    return doc


def write_fit(result: FitResult, out: Path, dataset: str) -> list[Path]:
    """Write every file into a temporary folder inside ``out``, then move them into place."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".cartsim-", dir=out))
    try:
        (tmp / "fit.json").write_text(json.dumps(fit_document(result, dataset), indent=2) + "\n")
        (tmp / "fitted.toml").write_text(to_toml(result.fitted(dataset)))
        result.individual.to_csv(tmp / "individual.csv", index=False)
        result.predictions.to_csv(tmp / "predictions.csv", index=False)
        gof_figure(result, tmp / "gof.png")
        individual_figure(result, tmp / "individual_fits.png")
        vpc_figure(result, tmp / "vpc.png")
        written = []
        for name in FILES:
            (tmp / name).replace(out / name)
            written.append(out / name)
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _label(result: FitResult, dvid: int) -> str:
    t = BY_DVID[dvid]
    return f"{t.label} ({quantity_unit(result.problem.model, t.quantity)})"


def gof_figure(result: FitResult, path: Path) -> None:
    """Observed vs population and individual predictions (log-log, identity line), and IWRES vs time and vs
    IPRED, one colour per observation type; BLQ records as open markers at their limit."""
    p = result.predictions
    fig, axes = plt.subplots(2, 2, figsize=(11, 9), dpi=110)
    for dvid in sorted(p.DVID.unique()):
        q = p[p.DVID == dvid]
        m, b = q[q.BLQ == 0], q[q.BLQ == 1]
        lab = _label(result, int(dvid))
        for ax, col in ((axes[0, 0], "PRED"), (axes[0, 1], "IPRED")):
            ax.plot(m[col], m.DV, "o", ms=3, alpha=0.6, label=lab)
            if len(b):
                ax.plot(b[col], b.DV, "v", ms=4, mfc="none", alpha=0.6, label=f"{lab}: below the limit")
        axes[1, 0].plot(m.TIME, m.IWRES, "o", ms=3, alpha=0.6, label=lab)
        axes[1, 1].plot(m.IPRED, m.IWRES, "o", ms=3, alpha=0.6, label=lab)
    positive = p[["DV", "PRED", "IPRED"]].to_numpy(float)
    positive = positive[np.isfinite(positive) & (positive > 0)]
    lo, hi = (positive.min() / 2, positive.max() * 2) if positive.size else (1e-3, 1e3)
    for ax, col in ((axes[0, 0], "population prediction (PRED, eta = 0)"),
                    (axes[0, 1], "individual prediction (IPRED, EBEs)")):
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel=col, ylabel="observed (DV)")
    for ax, x in ((axes[1, 0], "time (days)"), (axes[1, 1], "individual prediction (IPRED)")):
        ax.axhline(0, color="k", lw=1)
        for y in (-1.96, 1.96):
            ax.axhline(y, color="grey", ls=":", lw=1)
        ax.set(xlabel=x, ylabel="IWRES (log scale, in SDs)")
    axes[1, 1].set_xscale("log")
    for ax in axes.flat:
        ax.grid(alpha=0.25)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Goodness of fit: {result.scenario.therapy}, {result.problem.data.n} patients "
                 f"({result.method})")
    fig.text(0.99, 0.005, FOOTER, ha="right", va="bottom", fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.015, 1, 1))
    save_figure(fig, path)


def individual_layout(patients: int, types: int) -> tuple[int, int]:
    """(rows, columns) of the individual-fit panels: one row per patient and one column per observation type,
    or for a single type the patients in rows of three (a one-column figure would be a strip)."""
    if types == 1:
        cols = min(3, patients)
        return -(-patients // cols), cols
    return patients, types


def display_floor(observed: np.ndarray, limits: np.ndarray) -> float:
    """The lowest value a log axis shows: a tenth of the lowest observation or assay limit, so a curve that
    starts at zero before the first dose does not stretch the axis down to the solver's floor."""
    values = np.concatenate([observed[observed > 0], limits[limits > 0]])
    return float(values.min() / 10) if values.size else 1e-3


def individual_figure(result: FitResult, path: Path, most: int = 9) -> None:
    """``individual_fits.png``: see :func:`individual_plot`."""
    save_figure(individual_plot(result, most), path)


def individual_plot(result: FitResult, most: int = 9) -> plt.Figure:
    """Observations and individual predictions of up to ``most`` patients: one panel per patient and
    observation type. One observation type: its name and unit once, for the whole figure; several: in each
    panel's title."""
    problem = result.problem
    shown = np.arange(min(most, problem.data.n))
    times, values = individual_curves(problem, result.estimate, shown)
    dvids = problem.data.dvids
    rows, cols = individual_layout(len(shown), len(dvids))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.3 * rows + 1.0), dpi=100, squeeze=False,
                             sharex=True)
    p = result.predictions
    for k, i in enumerate(shown):
        pid = problem.data.ids[i]
        for c, dvid in enumerate(dvids):
            ax = axes.flat[k] if len(dvids) == 1 else axes[k, c]
            q = p[(p.ID == pid) & (p.DVID == dvid)]
            floor = display_floor(q.DV.to_numpy(float), problem.data.lloq[(problem.data.patient == i)
                                                                          & (problem.data.dvid == dvid)])
            ax.plot(times, np.maximum(values[k, :, c], floor), color="tab:blue", lw=1.2, label="individual fit")
            ax.plot(q.TIME[q.BLQ == 0], q.DV[q.BLQ == 0], "o", color="k", ms=3, label="observed")
            ax.plot(q.TIME[q.BLQ == 1], q.DV[q.BLQ == 1], "v", mfc="none", color="k", ms=4,
                    label="below the limit (drawn at it)")
            ax.set_yscale("log")
            ax.set_ylim(bottom=floor)
            ax.set_title(f"ID {pid:g}" + (f": {_label(result, dvid)}" if len(dvids) > 1 else ""), fontsize=9)
            ax.grid(alpha=0.25)
    for ax in axes.flat[len(shown) * len(dvids):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("days")
    if len(dvids) == 1:
        fig.supylabel(_label(result, dvids[0]), fontsize=10)
    fig.suptitle(f"Individual fits (first {len(shown)} of {problem.data.n} patients)")
    fig.text(0.99, 0.005, FOOTER, ha="right", va="bottom", fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.015, 1, 0.97))
    return fig


def vpc_figure(result: FitResult, path: Path, replicates: int = VPC_REPLICATES) -> None:
    """Visual predictive check: the 5th, 50th and 95th percentiles of the observations at each sampling time
    against the 95% interval of the same percentiles over ``replicates`` simulated copies of the dataset.
    Values below a record's assay limit count at the limit in both."""
    problem = result.problem
    d = problem.data
    sims = vpc(problem, result.estimate.x, replicates)
    limit = np.zeros(d.dv.size)
    for dvid in d.dvids:                                    # the largest limit the dataset states for the type
        lim = d.lloq[(d.dvid == dvid) & d.blq]
        limit[d.dvid == dvid] = lim.max() if lim.size else 0.0
    sims = np.maximum(sims, limit)
    obs = np.maximum(d.dv, limit)
    fig, axes = plt.subplots(len(d.dvids), 1, figsize=(10, 3.4 * len(d.dvids) + 0.6), dpi=110, squeeze=False)
    for ax, dvid in zip(axes[:, 0], d.dvids):
        sel = d.dvid == dvid
        t = d.time[sel]
        bins = np.unique(t)
        pct = (5, 50, 95)
        ob = np.array([np.percentile(obs[sel][t == b], pct) for b in bins])
        sim = np.array([[np.nanpercentile(s[sel][t == b], pct) for b in bins] for s in sims])   # (R, B, 3)
        band = np.nanpercentile(sim, [2.5, 50, 97.5], axis=0)                               # (3, B, 3)
        labels = (("simulated 5th and 95th percentiles, 95% interval", "observed 5th and 95th percentiles"),
                  ("simulated median, 95% interval", "observed median"), (None, None))
        for j, color in enumerate(("tab:blue", "tab:red", "tab:blue")):
            ax.fill_between(bins, np.maximum(band[0, :, j], 1e-6), np.maximum(band[2, :, j], 1e-6), color=color,
                            alpha=0.18, label=labels[j][0])
            ax.plot(bins, np.maximum(ob[:, j], 1e-6), color=color, lw=1.6 if j == 1 else 1.0,
                    ls="-" if j == 1 else "--", label=labels[j][1])
        ax.plot(t, np.maximum(obs[sel], 1e-6), "o", color="grey", ms=2, alpha=0.5)
        if limit[sel].max() > 0:
            ax.axhline(limit[sel].max(), color="k", ls=":", lw=1, label="assay limit")
        ax.set(yscale="log", xlabel="days", ylabel=_label(result, dvid))
        ax.grid(alpha=0.25)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"Visual predictive check ({replicates} simulated datasets; 5th, 50th, 95th percentiles)")
    fig.text(0.99, 0.005, FOOTER, ha="right", va="bottom", fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.015, 1, 1))
    save_figure(fig, path)
