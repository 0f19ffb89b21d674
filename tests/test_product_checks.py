"""The report's figure of CAR-T products against published windows (cartsim.outputs.product_checks)."""

from __future__ import annotations

import math

import pytest

from cartsim.outputs.product_checks import SHOWN, product_checks, product_figure, window_position
from cartsim.validate import CHECKS, PRODUCT_TARGETS, Check, targets


def test_window_position_is_0_at_the_low_end_1_at_the_high_end():
    assert window_position(0.3, 0.3, 0.9) == 0.0 and window_position(0.9, 0.3, 0.9) == 1.0
    assert window_position(0.6, 0.3, 0.9) == pytest.approx(0.5)             # a share: linear, even over 3-fold
    assert window_position(0.0, 0.0, 0.25) == 0.0                           # a window from 0: linear
    # kinetics spanning more than twofold: log scale, the geometric middle is half-way
    assert window_position(math.sqrt(12.08 * 65.76), 12.08, 65.76) == pytest.approx(0.5)
    assert window_position(731.0, 12.08, 65.76) > SHOWN[1]                  # a 11-fold miss is beyond the range
    assert math.isnan(window_position(1.0, 1.0, 1.0))                      # a yes/no check


def test_every_product_target_is_a_check():
    assert set(PRODUCT_TARGETS) <= set(CHECKS)


def test_figure_draws_a_missed_check_outside_the_window_and_a_passed_one_inside():
    checks = [Check("zuma1_cart_peak", "pop_median", 731.0, [12.08, 65.76], False),
              Check("zuma1_crs_icans", "pop_crs_any", 0.9, [0.75, 1.0], True),
              Check("opera_arr", "pop_ocrelizumab", 0.16, [0.12, 0.2], True)]     # not about a CAR-T product
    assert [c.id for c in product_checks(checks)] == ["zuma1_cart_peak", "zuma1_crs_icans"]
    fig = product_figure(checks)
    ax = fig.axes[0]
    points = {round(float(line.get_ydata()[0])): (float(line.get_xdata()[0]), line.get_color())
              for line in ax.get_lines()}
    assert points[1][0] > 1 and points[1][1] == "tab:red"          # the peak, 11-fold above: drawn as missed
    assert 0 <= points[0][0] <= 1 and points[0][1] == "black"      # CRS inside its window
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["axi-cel, lymphoma (ZUMA-1): CAR-T peak (cells/µL): median",
                      "axi-cel, lymphoma (ZUMA-1): CRS, any grade"]
    assert product_figure([checks[2]]) is None


def test_a_fitted_check_is_drawn_hollow_and_says_so_a_prediction_filled():
    """The figure tells fitted numbers from predictions (the validation table's 'calibrated' column)."""
    checks = [Check("zuma1_cart_peak", "pop_median", 26.0, [12.08, 65.76], True, calibrated=True),
              Check("zuma1_crs_icans", "pop_icans_any", 0.6, [0.4, 0.8], True)]
    ax = product_figure(checks).axes[0]
    faces = {round(float(line.get_ydata()[0])): line.get_markerfacecolor() for line in ax.get_lines()}
    assert faces[1] == "white" and faces[0] == "black"
    texts = [t.get_text() for t in ax.texts]
    assert texts[0].endswith("fitted") and not texts[1].endswith("fitted")


def test_a_yes_no_check_is_written_as_yes_or_no_not_as_a_window():
    checks = [Check("autoimmune_vs_cancer_toxicity", "sle_crs_grade2plus_lower", 1.0, [1.0, 1.0], True),
              Check("autoimmune_vs_cancer_toxicity", "sle_bcell_recovery_faster", 0.0, [1.0, 1.0], False),
              Check("autoimmune_vs_cancer_toxicity", "pop_median_cart_peak_ratio_lymphoma_to_sle", 1.006, [0.333, 3.0],
                    True)]
    texts = [t.get_text() for t in product_figure(checks).axes[0].texts]
    assert texts == ["yes (expected: yes)", "no (expected: yes)", "1.01  [0.333, 3]"]


def test_every_row_label_fits_inside_the_figure():
    """Each product check's label (its target and metric, as the report draws them) lies within the figure: a
    long label was once cut off at the left edge."""
    checks = [Check(tid, metric, 0.5, [0.0, 1.0], True) for tid in PRODUCT_TARGETS for metric in targets()[tid]["accept"]]
    fig = product_figure(checks)
    fig.canvas.draw()
    width = fig.bbox.width
    for label in fig.axes[0].get_yticklabels():
        box = label.get_window_extent()
        assert 0 <= box.x0 and box.x1 <= width, label.get_text()
        # units as the rest of the report writes them (the ZUMA-1 peak once read "peak/uL")
        assert "uL" not in label.get_text(), label.get_text()


def test_every_product_metric_is_named_in_words():
    """Each product check's metric has a label written for people: two once showed their code names ("sle cart
    persistence shorter", "median cart peak ratio dlbcl to ball")."""
    from cartsim.outputs.product_checks import METRICS

    for tid in PRODUCT_TARGETS:
        for metric in targets()[tid]["accept"]:
            assert metric in METRICS, (tid, metric)
