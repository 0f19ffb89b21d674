"""MS trials: endpoints in summary.json, re-treatment and maintenance arms, arm parameters, the reset range."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cartsim.cli import app
from cartsim.scenario import Scenario
from cartsim.trial.config import parse_config
from cartsim.trial.durability import durability_range

TOML = """
[trial]
name = "ms arms"
seed = 11
horizon_days = {days}

[population]
n = {n}
disease = "ms"
ms_course = "rrms"

[[arm]]
name = "CAR-T, re-treated, short reset"
therapy = "kyv-101"
retreatment = true
parameters = {{ reset_halflife = 60.0 }}

[[arm]]
name = "CAR-T then ocrelizumab"
therapy = "kyv-101"
maintenance = "ocrelizumab"
regimen = "600 mg IV every 24 weeks from day 180"

[[arm]]
name = "interferon"
therapy = "interferon-beta-1a"
"""


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    out = tmp_path_factory.mktemp("ms")
    cfg = out / "ms.toml"
    cfg.write_text(TOML.format(days=1200, n=8))
    res = CliRunner().invoke(app, ["trial", str(cfg), "--out", str(out / "run"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    return json.loads((out / "run" / "summary.json").read_text())


def test_ms_endpoints_are_reported_by_kind(summary):
    for arm in summary["arms"]:
        e = arm["endpoints"]
        for name in ("annualized_relapse_rate", "gd_lesions_per_scan", "cdp12_fraction", "cdp24_fraction"):
            assert e[name]["value"] is not None and len(e[name]["ci95"]) == 2, (arm["name"], name)
        assert e["edss_change"]["mean"] >= 0
        assert e["cdp24_fraction"]["value"] <= e["cdp12_fraction"]["value"]
        assert 0 <= e["cns_plasma_cell_fraction_day_90"]["median"] <= 1.01


def test_retreatment_and_maintenance_count_infusions(summary):
    retreated, maintained, ifn = summary["arms"]
    rt = retreated["endpoints"]["retreatment_day"]
    assert rt["n_events"] >= 1                           # a 60-day reset half-life: clones return, re-treated
    assert retreated["endpoints"]["infusions_count"]["mean"] == 1 + rt["n_events"] / retreated["n"]
    # one CAR-T infusion, then 600 mg from day 180 every 24 weeks to day 1200: days 180, 348, ..., 1188
    assert maintained["endpoints"]["infusions_count"]["mean"] == 1 + 7
    assert maintained["endpoints"]["retreatment_day"] == {"kind": "time_to_event", "applicable": False}
    assert ifn["endpoints"]["infusions_count"]["mean"] == pytest.approx(1200 / (7 / 3), abs=1)


def test_maintenance_doses_follow_the_car_t_infusion():
    sc = Scenario.make("kyv-101", "ms", 400, maintenance="ocrelizumab", regimen="600 mg IV every 24 weeks from day 180")
    assert [d for d, _ in sc.dosing()] == [0.0, 180.0, 348.0]
    assert "then ocrelizumab" in sc.describe()


@pytest.mark.parametrize("arm, field, words", [
    ('therapy = "ocrelizumab"\nretreatment = true', "arm[0].retreatment", "CAR-T product"),
    ('therapy = "untreated"\nmaintenance = "ocrelizumab"', "arm[0].maintenance", "CAR-T product"),
    ('therapy = "kyv-101"\nmaintenance = "aspirin"', "arm[0].maintenance", "ocrelizumab"),
    ('therapy = "kyv-101"\nparameters = { no_such = 1.0 }', "arm[0].parameters", "unknown model parameter"),
    ('therapy = "kyv-101"\nparameters = { reset_halflife = -1.0 }', "arm[0].parameters", ">= 0"),
    ('therapy = "kyv-101"\nparameters = { cns_b_renewal = 1.0 }', "arm[0].parameters", "derived"),
])
def test_bad_arm_options_name_the_field(tmp_path, arm, field, words):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f'[trial]\nname = "x"\nseed = 1\nhorizon_days = 30\n[population]\nn = 2\ndisease = "ms"\n'
                   f'[[arm]]\nname = "a"\n{arm}\n')
    res = CliRunner().invoke(app, ["trial", str(cfg), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert field in res.output and words in res.output
    assert not (tmp_path / "out").exists()


def test_longer_reset_fewer_autoreactive_returns():
    cfg = parse_config(TOML.format(days=900, n=30))
    table = durability_range(cfg, years=(0.25, 20.0), n=30)
    arm = table[table.arm == "CAR-T then ocrelizumab"]
    assert len(table) == 4 and set(table.reset_halflife_years) == {0.25, 20.0}
    short, long = (arm[arm.reset_halflife_years == y].iloc[0] for y in (0.25, 20.0))
    assert short.autoreactive_return_fraction >= long.autoreactive_return_fraction
    car = table[table.arm == "CAR-T, re-treated, short reset"]
    s, lg = (car[car.reset_halflife_years == y].iloc[0] for y in (0.25, 20.0))
    assert s.autoreactive_return_fraction > lg.autoreactive_return_fraction
    assert s.gd_lesions_per_scan >= lg.gd_lesions_per_scan
