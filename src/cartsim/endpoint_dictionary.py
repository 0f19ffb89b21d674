"""The endpoint dictionary: every endpoint cartsim reports, described once.

Each endpoint has its name (the column in ``patients.parquet`` and the key in
``summary.json``), the label people read, its kind (which sets how an arm reports
it, ``cartsim.trial.summary``), its unit, the column that says it was censored (time
to event only) and the assay limit or threshold that defines it, where there is
one. The per-patient values are computed in ``cartsim.endpoints``; the summary,
the tests, the report, the figures and the web page read their names, labels,
kinds, censoring and limits from here, so none keeps a list of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["continuous", "count", "time_to_event", "ordinal", "binary", "rate"]


@dataclass(frozen=True)
class Limit:
    """A threshold on a model quantity: an assay's detection limit, a lower limit of normal."""

    quantity: str       # the model observable it applies to
    value: float
    unit: str
    meaning: str        # what people call it ('detection limit', 'lower limit of normal')
    assay: str = ""     # how it is measured, where that sets it ('flow cytometry', 'qPCR')

    @property
    def text(self) -> str:
        """'detection limit 1/µL', as a reference line is labelled."""
        per = self.unit.replace("cells/uL", "/µL")
        return f"{self.meaning} {self.value:g}{per}"


# The limits that define endpoints and that figures draw on their quantity's axis.
DETECTION = "detection limit"     # an assay's: values below it are not measured, and figures draw no line there
B_DETECTION = Limit("b_blood_per_uL", 1.0, "cells/uL", DETECTION, "flow cytometry")
B_LOWER_NORMAL = Limit("b_blood_per_uL", 80.0, "cells/uL", "lower limit of normal")
CART_DETECTION = Limit("car_blood_per_uL", 0.1, "cells/uL", DETECTION, "qPCR")
AUTOREACTIVE_RETURN = Limit("autoreactive_level", 0.1, "1", "return threshold")
HYPOGAMMA = Limit("igg", 4.0, "g/L", "hypogammaglobulinaemia threshold")
LIMITS: tuple[Limit, ...] = (B_DETECTION, B_LOWER_NORMAL, CART_DETECTION, AUTOREACTIVE_RETURN, HYPOGAMMA)
DRAWN_LIMITS = (B_DETECTION, B_LOWER_NORMAL, CART_DETECTION)     # reference lines on the figures' axes


@dataclass(frozen=True)
class Endpoint:
    name: str
    label: str
    kind: Kind
    unit: str = "1"
    censored_by: str | None = None     # time to event: the column that is True when the event did not happen
    limit: Limit | None = None          # the threshold that defines it, where one does


def _tte(name: str, label: str, unit: str = "day", limit: Limit | None = None, censored_by: str | None = None
         ) -> Endpoint:
    stem = name.rsplit("_", 1)[0]
    return Endpoint(name, label, "time_to_event", unit, censored_by or f"{stem}_censored", limit)


ENDPOINTS: dict[str, Endpoint] = {e.name: e for e in (
    Endpoint("bcell_baseline_per_uL", "Blood B cells at baseline (cells/µL)", "continuous", "cells/uL"),
    Endpoint("bcell_nadir_per_uL", "Lowest blood B-cell count (cells/µL)", "continuous", "cells/uL"),
    _tte("bcell_reappearance_day", "Day B cells reappear in blood (1 cell/µL)", limit=B_DETECTION),
    _tte("bcell_repletion_day", "Day B cells are back to normal (80 cells/µL or baseline)", limit=B_LOWER_NORMAL),
    _tte("bcell_repletion_after_last_dose_week", "Weeks from the last dose until B cells are back to normal", "week",
         B_LOWER_NORMAL),
    Endpoint("naive_fraction_at_reappearance", "Share of naive (new) B cells when they reappear", "continuous"),
    Endpoint("cart_peak_per_uL", "Peak CAR-T cells in blood (cells/µL)", "continuous", "cells/uL"),
    Endpoint("cart_tmax_day", "Day of the CAR-T peak", "continuous", "day"),
    _tte("cart_persistence_day", "Last day CAR-T cells are detectable in blood", limit=CART_DETECTION),
    Endpoint("crs_max_grade", "Cytokine release syndrome (CRS), worst grade", "ordinal", "grade"),
    Endpoint("crs_onset_day", "Day cytokine release syndrome (CRS) starts (patients with CRS)", "continuous", "day"),
    Endpoint("icans_max_grade", "Neurotoxicity (ICANS), worst grade", "ordinal", "grade"),
    Endpoint("tocilizumab_given", "Given tocilizumab for CRS", "binary"),
    Endpoint("infusion_reaction_any", "Infusion-related reaction to the antibody", "binary"),
    Endpoint("igg_nadir_fraction", "Lowest total antibody (IgG) level, share of baseline", "continuous"),
    Endpoint("igg_below_4_g_per_L", "Low antibody level (total IgG below 4 g/L) at any time", "binary",
             limit=HYPOGAMMA),
    Endpoint("autoantibody_fraction_day_90", "Autoantibody level on day 90, share of baseline", "continuous"),
    Endpoint("autoantibody_fraction_day_180", "Autoantibody level on day 180, share of baseline", "continuous"),
    Endpoint("autoantibody_fraction_day_365", "Autoantibody level on day 365, share of baseline", "continuous"),
    Endpoint("cns_plasma_cell_fraction_day_90",
             "Plasma cells in the brain and spinal fluid on day 90, share of baseline", "continuous"),
    Endpoint("intrathecal_igg_fraction_day_180",
             "Antibody made inside the brain and spinal fluid on day 180, share of baseline", "continuous"),
    Endpoint("annualized_relapse_rate", "Relapses per patient-year", "rate", "1/year"),
    Endpoint("gd_lesions_per_scan", "Active (gadolinium-enhancing) MRI lesions per scan", "rate", "lesions"),
    Endpoint("cdp12_fraction", "Disability worsening confirmed after 12 weeks", "binary"),
    Endpoint("cdp24_fraction", "Disability worsening confirmed after 24 weeks", "binary"),
    Endpoint("edss_change", "Change in disability score (EDSS)", "continuous", "EDSS points"),
    Endpoint("annualized_attack_rate", "NMOSD attacks per patient-year", "rate", "1/year"),
    _tte("first_attack_day", "Day of the first NMOSD attack"),
    Endpoint("mg_adl_change_week_4", "Change in MG-ADL score (daily-life myasthenia symptoms, 0-24) at week 4",
             "continuous", "points"),
    Endpoint("mg_adl_change_week_12", "Change in MG-ADL score at week 12", "continuous", "points"),
    Endpoint("mg_adl_change_week_24", "Change in MG-ADL score at week 24", "continuous", "points"),
    Endpoint("mg_adl_change_week_52", "Change in MG-ADL score at week 52", "continuous", "points"),
    Endpoint("qmg_change_week_4", "Change in QMG score (examined myasthenic weakness, 0-39) at week 4",
             "continuous", "points"),
    Endpoint("qmg_change_week_12", "Change in QMG score at week 12", "continuous", "points"),
    Endpoint("qmg_change_week_24", "Change in QMG score at week 24", "continuous", "points"),
    Endpoint("qmg_change_week_52", "Change in QMG score at week 52", "continuous", "points"),
    Endpoint("mg_adl_responder", "MG-ADL responder (2 or more points better for 4 weeks in a row)", "binary"),
    Endpoint("qmg_responder", "QMG responder (3 or more points better for 4 weeks in a row)", "binary"),
    Endpoint("mg_adl_improved_6", "MG-ADL 6 or more points better at a visit in weeks 1-8", "binary"),
    Endpoint("mg_adl_mse", "Minimal symptom expression (MG-ADL 0 or 1) at a visit in weeks 1-8", "binary"),
    Endpoint("infusions_count", "Number of drug administrations", "count"),
    _tte("retreatment_day", "Day of a second CAR-T infusion"),
    _tte("autoreactive_return_day", "Day autoreactive B cells come back (10% of baseline)", limit=AUTOREACTIVE_RETURN),
)}
KINDS: dict[str, Kind] = {n: e.kind for n, e in ENDPOINTS.items()}
CENSORING_COLUMNS = frozenset(e.censored_by for e in ENDPOINTS.values() if e.censored_by)


def label(name: str) -> str:
    """The human name of endpoint ``name`` (the name itself, with spaces, for one not in the dictionary)."""
    e = ENDPOINTS.get(name)
    return e.label if e is not None else name.replace("_", " ")


def censoring(name: str) -> str | None:
    """The censoring column of time-to-event endpoint ``name`` (None for other endpoints)."""
    e = ENDPOINTS.get(name)
    return e.censored_by if e is not None else None


def limits_of(quantity: str) -> tuple[Limit, ...]:
    """The reference lines drawn on ``quantity``'s axis."""
    return tuple(x for x in DRAWN_LIMITS if x.quantity == quantity)
