"""Antibody dosing regimens as text: parsing, dose events, canonical formatting and errors."""

from __future__ import annotations

import random

import numpy as np
import pytest

from cartsim.errors import CartsimInputError
from cartsim.therapy.regimen import Dose, Regimen, Segment

OCRELIZUMAB = "300 mg IV on days 0 and 14, then 600 mg IV every 24 weeks"
OFATUMUMAB = "20 mg SC on days 0, 7 and 14, then every 4 weeks from day 28"
IV_HOURS = {"IV": 3.5}


def days_and_amounts(text: str, horizon: float, **kw) -> list[tuple[float, float]]:
    return [(d.day, d.amount_mg) for d in Regimen.parse(text, **kw).doses(horizon)]


def test_ocrelizumab_two_years_first_600_mg_six_months_after_first_infusion():
    doses = Regimen.parse(OCRELIZUMAB, default_duration_h=IV_HOURS).doses(2 * 365)
    assert [(d.day, d.amount_mg) for d in doses] == [
        (0, 300), (14, 300), (168, 600), (336, 600), (504, 600), (672, 600)]
    assert all(d.route == "IV" and d.duration_days == pytest.approx(3.5 / 24) for d in doses)
    assert sum(d.amount_mg for d in doses) == 3000


def test_then_segment_keeps_the_clock_of_the_previous_segments_first_dose():
    # one interval after the previous segment's first dose when that is after its last dose ...
    assert days_and_amounts("100 mg IV on days 0 and 14, then every 4 weeks for 2 doses", 1000) == [
        (0, 100), (14, 100), (28, 100), (56, 100)]
    # ... otherwise the first whole number of intervals after it that falls after the last dose
    assert days_and_amounts("100 mg IV every 2 weeks for 3 doses, then 50 mg IV every 4 weeks", 120) == [
        (0, 100), (14, 100), (28, 100), (56, 50), (84, 50), (112, 50)]
    assert days_and_amounts("100 mg IV on days 10 and 12, then every 1 week for 2 doses", 100) == [
        (10, 100), (12, 100), (17, 100), (24, 100)]
    # an explicit start wins
    explicit = Regimen.parse("300 mg IV on days 0 and 14, then 600 mg IV every 24 weeks from day 182")
    assert [d.day for d in explicit.doses(400)] == [0, 14, 182, 350]


def test_ofatumumab_first_year():
    doses = Regimen.parse(OFATUMUMAB).doses(365)
    assert [d.day for d in doses] == [0, 7, 14] + [28 * k for k in range(1, 14)]
    assert {(d.amount_mg, d.route, d.duration_days) for d in doses} == {(20, "SC", 0)}
    assert str(Regimen.parse(OFATUMUMAB)) == "20 mg SC on days 0, 7 and 14, then 20 mg SC every 4 weeks from day 28"
    # the implicit start gives the same schedule as the label's explicit 'from day 28'
    assert Regimen.parse("20 mg SC on days 0, 7, and 14; then every 4 weeks").doses(365) == doses


@pytest.mark.parametrize("text, expected", [
    ("1000 mg IV on days 0 and 14", [(0, 1000), (14, 1000)]),
    ("600 mg IV every 24 weeks", [(0, 600), (168, 600), (336, 600)]),
    ("600 mg IV on day 0", [(0, 600)]),
    ("1 g iv ON DAY 0", [(0, 1000)]),
    ("500 ug sc on day 0", [(0, 0.5)]),
    ("  600mg   IV\tevery 24 Weeks  ", [(0, 600), (168, 600), (336, 600)]),
    ("10 mg SC every 10 days from day 5 for 3 doses", [(5, 10), (15, 10), (25, 10)]),
])
def test_examples(text, expected):
    assert days_and_amounts(text, 400) == expected


@pytest.mark.parametrize("text, hours", [
    ("600 mg IV over 3.5 h every 24 weeks", 3.5),
    ("600 mg IV over 2 hours every 24 weeks", 2.0),
    ("600 mg IV over 30 min every 24 weeks", 0.5),
    ("600 mg IV every 24 weeks", 2.5),  # the caller's per-route default
    ("20 mg SC every 4 weeks", 0.0),  # no default for SC: bolus
])
def test_infusion_duration(text, hours):
    regimen = Regimen.parse(text, default_duration_h={"IV": 2.5})
    doses = regimen.doses(200)
    assert [d.duration_days for d in doses] == pytest.approx([hours / 24] * len(doses))


def test_duration_unset_without_default_and_then_segments_inherit_only_the_same_dose():
    assert Regimen.parse("600 mg IV every 24 weeks").segments[0].duration_h is None
    assert Regimen.parse("600 mg IV every 24 weeks").doses(10)[0].duration_days == 0
    r = Regimen.parse("300 mg IV over 1 h on day 0, then every 2 weeks for 2 doses, then 600 mg every 24 weeks",
                      default_duration_h={"IV": 3.5})
    assert [s.duration_h for s in r.segments] == [1.0, 1.0, 3.5]
    assert [s.route for s in r.segments] == ["IV"] * 3


def test_for_n_doses_and_until_day():
    assert [d.day for d in Regimen.parse("600 mg IV every 24 weeks for 3 doses").doses(10_000)] == [0, 168, 336]
    assert [d.day for d in Regimen.parse("600 mg IV every 24 weeks until day 336").doses(10_000)] == [0, 168, 336]
    assert [d.day for d in Regimen.parse("600 mg IV every 24 weeks until day 335").doses(10_000)] == [0, 168]
    assert [d.day for d in Regimen.parse("6 mg IV every 1 week for 10 doses until day 14").doses(100)] == [0, 7, 14]
    limited = Regimen.parse("100 mg IV every 2 weeks until day 30, then 1 mg SC on day 31")
    assert [d.day for d in limited.doses(100)] == [0, 14, 28, 31]


def test_horizon_keeps_a_straddling_infusion_and_excludes_the_horizon_day():
    r = Regimen.parse(OCRELIZUMAB, default_duration_h=IV_HOURS)
    assert [d.day for d in r.doses(14.05)] == [0, 14]
    assert [d.day for d in r.doses(14)] == [0]
    assert r.doses(0) == []
    assert r.last_dose_day(730) == 672
    assert r.last_dose_day(0) is None
    assert r.doses(200)[-1] == Dose(168, 600, "IV", 3.5 / 24)


def test_parsed_structure():
    assert Regimen.parse(OFATUMUMAB) == Regimen((
        Segment(20, "SC", days=(0, 7, 14)),
        Segment(20, "SC", every_days=28, start_day=28),
    ))


def test_canonical_format():
    assert str(Regimen.parse(OCRELIZUMAB, default_duration_h={"IV": 2.5})) == (
        "300 mg IV over 2.5 h on days 0 and 14, then 600 mg IV over 2.5 h every 24 weeks")
    assert Regimen.parse("1 g IV every 10 days for 1 dose").format() == "1000 mg IV every 10 days for 1 dose"
    assert Regimen.parse("1 mg SC every 7 days").format() == "1 mg SC every 1 week"
    assert Regimen.parse("1 mg SC over 0 min every 7 days").format() == "1 mg SC over 0 h every 1 week"


ROUND_TRIP = [
    OCRELIZUMAB, OFATUMUMAB,
    "1000 mg IV on days 0 and 14", "600 mg IV every 24 weeks", "600 mg IV on day 0",
    "600 mg IV over 3.5 h every 24 weeks", "600 mg IV over 30 min every 24 weeks for 4 doses",
    "0.5 ug SC on days 0.5, 1.25 and 3", "2.5 g IV over 2 hours every 3.5 days until day 30",
    "100 mg IV every 1.5 weeks from day 2 for 3 doses until day 9, then 7 mg SC every 1 day",
    "20 mg sc on days 0, 7 and 14; then every 4 weeks from day 28", "1e-3 mg IV on day 1e2",
    "375 mg IV every 1 week for 4 doses, then 375 mg IV every 8 weeks for 3 doses, then 1000 mg IV on day 400",
    "44 ug SC 3 times weekly", "22 ug SC 3 times weekly for 6 doses, then 44 ug SC 3 times weekly",
    "10 mg/kg IV over 1 h every 1 week for 4 doses", "10 mg/kg IV every 1 week for 4 doses, then 600 mg IV on day 60",
    "5 ug/KG IV on days 0 and 7, then every 1 week from day 56 for 4 doses",
]


def test_per_kg_amounts_and_then_segments_inherit_them():
    r = Regimen.parse("10 mg/kg IV over 1 h every 1 week for 4 doses, then every 1 week from day 56 for 4 doses, "
                      "then 1 g IV on day 100")
    doses = r.doses(200)
    assert [(d.day, d.amount_mg, d.per_kg) for d in doses] == [
        *((7.0 * k, 10.0, True) for k in range(4)), *((56 + 7.0 * k, 10.0, True) for k in range(4)),
        (100.0, 1000.0, False)]
    assert doses[0].label() == "10 mg/kg IV" and doses[-1].label() == "1000 mg IV"
    assert str(r).startswith("10 mg/kg IV over 1 h every 1 week for 4 doses, then 10 mg/kg IV over 1 h every")


def test_times_weekly_is_evenly_spaced():
    r = Regimen.parse("44 ug SC 3 times weekly")
    days = [d.day for d in r.doses(14.0)]
    assert len(days) == 6 and days[0] == 0.0
    assert np.allclose(np.diff(days), 7 / 3)
    assert r.doses(14.0)[0].amount_mg == pytest.approx(0.044)


@pytest.mark.parametrize("text", ROUND_TRIP)
@pytest.mark.parametrize("defaults", [None, {"IV": 4.25, "SC": 0.1}])
def test_round_trip(text, defaults):
    r = Regimen.parse(text, default_duration_h=defaults)
    assert Regimen.parse(r.format()) == r
    if defaults:  # every duration is then explicit, so the canonical string no longer depends on defaults
        assert Regimen.parse(str(r), default_duration_h={"IV": 99.0, "SC": 9.0}) == r


def _random_regimen(rng: random.Random) -> Regimen:
    segments: list[Segment] = []
    last = -1.0
    for i in range(rng.randint(1, 4)):
        amount = rng.choice([rng.uniform(0.001, 2000), float(rng.randint(1, 2000))])
        route = rng.choice(["IV", "SC"])
        duration = rng.choice([None, 0.0, rng.uniform(0, 6), 1 / 3])
        if rng.random() < 0.5:
            lo = last + 0.1 if segments else 0.0
            days = sorted({round(rng.uniform(lo, lo + 60), rng.choice([0, 2, 9])) for _ in range(rng.randint(1, 4))})
            days = [d for d in days if d > last and d >= 0] or [last + 1]
            segments.append(Segment(amount, route, days=tuple(days), duration_h=duration, per_kg=rng.random() < 0.3))
            last = days[-1]
        else:
            every = rng.choice([7.0 * rng.randint(1, 30), rng.uniform(0.5, 100), float(rng.randint(1, 50))])
            start = rng.choice([None, last + rng.uniform(0.1, 50)]) if i else rng.choice([None, 0.0, 3.0])
            first = start if start is not None else (0.0 if not i else None)
            n = rng.randint(1, 6)
            until = None if first is None or rng.random() < 0.5 else first + rng.uniform(0, 200)
            segments.append(Segment(amount, route, None, every, start, n, until, duration, None, rng.random() < 0.3))
            last = Regimen(tuple(segments)).doses(1e9)[-1].day
    return Regimen(tuple(segments))


@pytest.mark.parametrize("seed", range(200))
def test_round_trip_random(seed):
    r = _random_regimen(random.Random(seed))
    assert Regimen.parse(r.format()) == r, r.format()


# marker: the text at the reported position (its last occurrence), or <end> for the end of the string
@pytest.mark.parametrize("text, marker, words", [
    ("300 mgs IV on day 0", "mgs", "mass unit"),
    ("300 mg IM on day 0", "IM", "route"),
    ("mg IV on day 0", "mg", "amount"),
    ("300 mg IV every -4 weeks", "-4", "positive"),
    ("300 mg IV every 0 weeks", "0 weeks", "positive"),
    ("300 mg IV on days 14 and 0", "0", "increase"),
    ("300 mg IV on days 0, 7 and 7", "7", "increase"),
    ("300 mg IV on day 0, then", "<end>", "after 'then'"),
    ("44 ug SC 2.5 times weekly", "2.5", "whole number"),
    ("44 ug SC 3 times daily", "daily", "'weekly'"),
    ("", "<end>", "amount"),
    ("   ", "<end>", "amount"),
    ("0 mg IV on day 0", "0 mg", "positive"),
    ("-300 mg IV on day 0", "-300", "positive"),
    ("600 mg IV every 24 weeks for 0 doses", "0 doses", "whole number"),
    ("600 mg IV every 24 weeks for 2.5 doses", "2.5", "whole number"),
    ("600 mg IV every 24 weeks, then 300 mg IV on day 900", "then", "without end"),
    ("300 mg IV on day 20, then 600 mg IV on day 10", "10", "previous segment"),
    ("300 mg IV on day 20, then every 2 weeks from day 20", "20", "previous segment"),
    ("300 mg IV on day -7", "-7", ">= 0"),
    ("300 mg IV every 2 weeks from day 10 until day 5", "5", "before the first dose"),
    ("300 mg IV over -1 h on day 0", "-1", ">= 0"),
    ("300 mg IV over 2 days on day 0", "days", "'h' or 'min'"),
    ("300 mg IV every 2 months", "months", "'days' or 'weeks'"),
    ("500 mg/m2 IV every 4 weeks", "m2", "'kg' after '/'"),
    ("10 mg/ IV every 1 week", "IV", "'kg' after '/'"),
    ("10 mg kg IV every 1 week", "kg", "a route"),
    ("10 mg IV / kg on day 0", "/", "'on day(s)', 'every'"),
    ("300 mg IV on day 0,", "<end>", "'then'"),
    ("300 mg IV on day 0 and", "<end>", "a day"),
    ("300 mg IV", "<end>", "'on day(s)', 'every' or '<n> times weekly'"),
    ("300 mg IV on day 0 until day 9", "until", "', then' or end of text"),
    ("1e999 mg IV on day 0", "1e999", "finite"),
])
def test_malformed(text, marker, words):
    with pytest.raises(CartsimInputError) as info:
        Regimen.parse(text)
    err = info.value
    position = len(text) if marker == "<end>" else text.rindex(marker)
    assert err.field == "--regimen"
    assert f"at position {position}:" in str(err), str(err)
    assert repr(text) in str(err) and words in str(err)
    assert err.allowed


def test_error_names_the_callers_field_and_lists_routes():
    with pytest.raises(CartsimInputError) as info:
        Regimen.parse("300 mg IM on day 0", field="arm[1].regimen")
    assert info.value.field == "arm[1].regimen"
    assert info.value.allowed == "IV, SC"
    assert str(info.value).startswith("arm[1].regimen: '300 mg IM on day 0' at position 7: expected a route, got 'IM'")
    with pytest.raises(CartsimInputError):
        Regimen.parse(None)  # type: ignore[arg-type]


def test_cell_doses_read_plainly():
    """Regression (web page dose marks): a CAR-T infusion was labelled '1e+08 cells'."""
    from cartsim.therapy import CellDose

    assert CellDose(1e8, False).plain() == "100 million cells"
    assert CellDose(5.25e7, True).plain() == "52.5 million cells per kg"
    assert CellDose(2e9, False).plain() == "2 billion cells"
    assert CellDose(5e5, True).plain() == "500,000 cells per kg"
