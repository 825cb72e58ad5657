"""The offline HTML template for `dvc plots show` (the pipeline's plots are checked in tests/e2e)."""

from __future__ import annotations

from dvc_render.html import HTML

from szflow.plots import offline_template, operating_point_rows


def test_offline_template_inlines_vega_and_keeps_dvc_placeholders():
    page = offline_template()
    assert "window.vegaEmbed=" in page  # Vega-Embed, Vega-Lite and Vega are defined in the page
    assert "cdn.jsdelivr" not in page and "<script src=" not in page  # nothing to download
    assert page.count("{plot_divs}") == 1
    # DVC's renderer accepts it and puts the charts where the placeholder was.
    filled = HTML(page).with_element("<div id='chart'></div>").embed()
    assert "<div id='chart'></div>" in filled and "{plot_divs}" not in filled


def test_operating_point_rows_carry_the_intervals_and_the_certification():
    block = {"operating_points": {"10": {
        "ovlp": {"fa_per_24h": 5.0, "sensitivity": 0.8, "fa_per_24h_interval": [1.5, 13.0],
                 "sensitivity_interval": [0.7, 0.9]},
        "certification": {"certified": True}}}}
    split = {**block, "baseline": block}
    rows = operating_point_rows({"dev": split, "eval": split})
    assert len(rows) == 4
    assert rows[0]["certified"] is True
    assert (rows[0]["fa_per_24h_low"], rows[0]["fa_per_24h_high"]) == (1.5, 13.0)
    assert (rows[0]["sensitivity_low"], rows[0]["sensitivity_high"]) == (0.7, 0.9)
