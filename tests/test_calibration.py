"""The parameter table holds the values that the recorded calibration chose."""

import json
from pathlib import Path

import pytest

from cartsim.model import build_model

from bench_scripts import bench_module

RECORD = Path(__file__).resolve().parents[1] / "bench" / "calibration.json"


def test_calibrated_values_are_the_best_grid_point():
    record = json.loads(RECORD.read_text())
    table = build_model().table
    assert record["best"] == {k: table.value(k) for k in record["grid"]}
    for name in record["grid"]:
        assert table[name].kind == "calibrated" and "bench/calibrate.py" in table[name].source


def test_best_point_has_the_lowest_loss():
    rows = json.loads(RECORD.read_text())["rows"]
    assert rows[0]["loss"] == min(r["loss"] for r in rows)


CRS_RECORD = RECORD.with_name("calibration_crs.json")


def test_crs_calibration_is_in_the_table():
    """One fit for cytokine release across products (a grid, and the grade-1 thresholds profiled at each of its
    points): the table holds its best point."""
    record = json.loads(CRS_RECORD.read_text())
    table = build_model().table
    fitted = [*record["grid"], *record["profiled"]]
    assert record["profiled"] == ["crs_il6_grade1", "icans_grade1"]
    assert record["best"] == {k: table.value(k) for k in fitted}
    rows = record["rows"]
    assert rows[0]["loss"] == min(r["loss"] for r in rows)
    for name in fitted:
        assert table[name].kind == "calibrated" and "bench/calibrate_crs.py" in table[name].source


def test_each_profiled_threshold_is_the_least_deviance_of_its_scan_and_inside_its_interval():
    """A profiled threshold is the first scan value of least deviance at the best point, its interval holds every
    scan value within 3.84 of that least deviance, and the table's range is that interval."""
    record = json.loads(CRS_RECORD.read_text())
    table = build_model().table
    for name, prof in record["read_out_profiles"].items():
        dev = prof["deviance"]
        assert prof["scan"][dev.index(min(dev))] == record["best"][name]
        inside = [v for v, d in zip(prof["scan"], dev) if d <= min(dev) + 3.84]
        assert prof["interval_95"] == [min(inside), max(inside)]
        u = table[name].uncertainty
        assert (u.low, u.high) == tuple(prof["interval_95"]), name


ANTI_CAR_RECORD = RECORD.with_name("calibration_anti_car.json")


def test_anti_car_calibration_is_in_the_table_and_shares_the_kinetic_objective():
    """The immunity against the CAR is fitted on its own grid with bench/calibrate.py's objective: the table holds
    its best point, which holds the kinetic grid's values (the two were alternated to agreement)."""
    record = json.loads(ANTI_CAR_RECORD.read_text())
    kinetic = json.loads(RECORD.read_text())
    table = build_model().table
    assert record["best"] == {k: table.value(k) for k in record["grid"]}
    assert record["observed"] == kinetic["observed"]
    rows = record["rows"]
    assert rows[0]["loss"] == min(r["loss"] for r in rows)
    # both best points are the same parameter set (the same objective, up to the float noise of two runs)
    assert rows[0]["loss"] == pytest.approx(kinetic["rows"][0]["loss"], rel=1e-9)
    for name in record["grid"]:
        assert table[name].kind == "calibrated" and "bench/calibrate_anti_car.py" in table[name].source


def test_calibrations_read_the_product_table_their_records_were_made_from():
    """bench/calibrate.py and bench/calibrate_lymphoma.py read their observations from bench/product_kinetics.yaml;
    a table edited after the fit makes the record stale, which this catches."""
    calibrate, calibrate_lymphoma = bench_module("calibrate"), bench_module("calibrate_lymphoma")
    count, row = bench_module("product_table").count, bench_module("product_table").row
    peaks = row("axi-cel", "ZUMA-1")["cmax"]["value"]
    assert (calibrate.ZUMA1_PEAK_LOW, calibrate.ZUMA1_PEAK_HIGH) == (min(peaks.values()), max(peaks.values()))
    assert json.loads(RECORD.read_text())["observed"]["lbcl_peak_log"] == list(calibrate.OBSERVED["lbcl_peak_log"])
    lymphoma = json.loads(RECORD.with_name("calibration_lymphoma.json").read_text())
    events, patients = count(row("axi-cel", "real-world single-centre series (Haematologica 2021)")
                             ["bcell_recovery"]["value"]["detectable_year_1"])
    assert calibrate_lymphoma.TARGET == events / patients
    assert lymphoma["observed"]["pop_fraction_detectable_day_365"] == round(calibrate_lymphoma.TARGET, 4)


def test_product_table_refuses_a_count_or_a_row_it_cannot_read():
    """The bench scripts read counts ('11/19') and rows from the product table: anything else is a clear error
    naming what was given, not a silent None or a wrong row."""
    table = bench_module("product_table")
    assert table.count(" 11 / 19 ") == (11, 19)
    with pytest.raises(ValueError, match="not a count of patients.*'11 of 19'"):
        table.count("11 of 19")
    with pytest.raises(LookupError, match="0 rows of 'axi-cel' in 'JULIET'"):
        table.row("axi-cel", "JULIET")
