"""The offline HTML template for `dvc plots show` (the pipeline's plots are checked in tests/e2e)."""

from __future__ import annotations

from dvc_render.html import HTML

from szflow.plots import offline_template


def test_offline_template_inlines_vega_and_keeps_dvc_placeholders():
    page = offline_template()
    assert "window.vegaEmbed=" in page  # Vega-Embed, Vega-Lite and Vega are defined in the page
    assert "cdn.jsdelivr" not in page and "<script src=" not in page  # nothing to download
    assert page.count("{plot_divs}") == 1
    # DVC's renderer accepts it and puts the charts where the placeholder was.
    filled = HTML(page).with_element("<div id='chart'></div>").embed()
    assert "<div id='chart'></div>" in filled and "{plot_divs}" not in filled
