"""Snakemake's HTML report of a tiny run, opened in a real headless browser.

The tiny configuration (tests/cluster_support.py) with two queries on its
synthetic scene is run to completion, ``snakemake --report`` builds the
self-contained page, and Chromium (tests/browser.py) loads it: no script
error, every embedded image decodes, the removal video loads, the categories
hold every scene's products, and a click on a query's products shows them.
A screenshot of that view is saved beside the report.

Without a browser the test skips, except where ``N3F_BROWSER=1`` (CI, whose
``.ci/run`` installs Debian's ``chromium``): there a missing browser fails.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.browser import Browser, find_chromium
from tests.cluster_support import run_snakemake, tiny_config, write_config

QUERIES = [{"name": "cube", "frame": 0, "box": [12, 8, 36, 28]}, {"name": "spot", "frame": 3, "point": [24, 18], "radius": 4}]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("html_report")
    config = tiny_config(workdir)
    config["scenes"][0]["queries"] = QUERIES
    configfile = write_config(workdir / "config.yaml", config)
    run = run_snakemake(workdir, configfile, "--cores", "2")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    built = run_snakemake(workdir, configfile, "--report", str(workdir / "report.html"))
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-5000:]
    return workdir / "report.html"


def _embedded(report: Path, name: str) -> dict:
    """A ``var <name> = {...};`` object of the page, as the browser would see it."""
    html = report.read_text()
    start = html.index(f"var {name} = {{") + len(f"var {name} = ")
    return json.JSONDecoder().raw_decode(html[start:])[0]


@pytest.mark.slow
def test_report_holds_every_product_in_its_category(report):
    results = _embedded(report, "results")
    files = set(results)
    # the scene's figures, both tables, the tasks' figures and point clouds, every query product
    assert any(p.endswith("figures/grid_dsift_retrieval.png") for p in files)
    assert {p for p in files if p.endswith(("retrieval_map.md", "tasks.md"))}, files
    for task, suffix in (("amodal", ".png"), ("edit", ".png"), ("segment3d", ".ply")):
        assert any(f"/{task}/" in p and p.endswith(suffix) for p in files), task
    assert not any(p.endswith("_highlight.ply") for p in files), "whole-cloud copies are left out of the page"
    for query in QUERIES:
        for method in ("n3f", "fused"):  # every query runs on the distilled field and on the fused one
            mine = {p for p in files if f"/queries/{query['name']}/" in p and ("/fused/" in p) == (method == "fused")}
            for product in ("segment2d", "masks", "amodal", "removal"):
                views = {Path(p).stem for p in mine if f"/{product}/" in p}
                assert {"frame_0000" if query["frame"] == 0 else "frame_0003", "novel_00"} <= views, (method, product, views)
            assert any(p.endswith("segment3d.ply") for p in mine) and any(p.endswith("removal.mp4") for p in mine)
            labels = [results[p]["labels"] for p in mine]
            assert all(lab["query"] == query["name"] and lab["product"] and lab["method"] == method for lab in labels)


@pytest.mark.slow
def test_report_opens_in_a_headless_browser(report, tmp_path):
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("N3F_BROWSER") == "1":
            pytest.fail("N3F_BROWSER=1 but no chromium on PATH: install Debian's `chromium` (.ci/run does)")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    with Browser(chromium, tmp_path / "profile") as browser:
        browser.open(report.resolve().as_uri())
        assert browser.evaluate("typeof results") == "object"
        menu = browser.evaluate("document.body.innerText")
        for category in ("Scenes", "Tables", "Tasks", "Queries"):
            assert category in menu, menu[:500]
        # every embedded image decodes in the browser; the removal videos load their first frame
        media = browser.evaluate("""(async () => {
            const out = {images: 0, decoded: 0, videos: 0, playable: 0, failed: []};
            for (const [path, r] of Object.entries(results)) {
                if (r.mime_type.startsWith("image/")) {
                    out.images++;
                    const img = new Image();
                    img.src = r.data_uri;
                    try { await img.decode(); if (img.naturalWidth > 0) out.decoded++; else out.failed.push(path); }
                    catch (e) { out.failed.push(path + ": " + e); }
                } else if (r.mime_type === "video/mp4") {
                    out.videos++;
                    const v = document.createElement("video");
                    v.muted = true; v.preload = "auto"; v.src = r.data_uri;
                    const ok = await new Promise(res => { v.onloadeddata = () => res(v.videoWidth > 0);
                                                          v.onerror = () => res(false);
                                                          setTimeout(() => res(false), 20000); });
                    if (ok) out.playable++; else out.failed.push(path + ": video did not load");
                }
            }
            return out;
        })()""")
        assert media["images"] > 50 and media["decoded"] == media["images"], media
        assert media["videos"] == 2 * len(QUERIES) and media["playable"] == media["videos"], media  # distilled, fused
        # a user's path: the Queries category (one scene: its table directly), then the eye of a 2D segmentation
        clicked = browser.evaluate("""(() => {
            const el = [...document.querySelectorAll('a, li, span')]
                .filter(e => e.innerText && e.innerText.trim() === 'Queries' && e.offsetParent !== null).pop();
            if (!el) return false; el.click(); return true; })()""")
        assert clicked, "no visible 'Queries' entry in the menu"
        browser.evaluate("new Promise(r => setTimeout(r, 500))")
        listing = browser.evaluate("document.body.innerText")
        for query in QUERIES:
            assert query["name"] in listing, listing[:1000]
        shown = browser.evaluate("""(async () => {
            const row = [...document.querySelectorAll('tr')].find(t => t.innerText.includes('2D segmentation'));
            if (!row) return 'no 2D segmentation row';
            row.querySelector('a[iconname="eye"]').click();
            await new Promise(r => setTimeout(r, 1000));
            const img = [...document.querySelectorAll('img')].find(i => i.offsetParent !== null && i.src.startsWith('data:image/png'));
            if (!img) return 'no image shown';
            await img.decode();
            return [img.naturalWidth, img.naturalHeight];
        })()""")
        assert isinstance(shown, list) and shown[0] == 4 * 48 and shown[1] == 36, shown
        # the Tasks category lists the distilled and the fused field's figures, by method
        browser.evaluate("""(() => {
            const el = [...document.querySelectorAll('a, li, span')]
                .filter(e => e.innerText && e.innerText.trim() === 'Tasks' && e.offsetParent !== null).pop();
            if (el) el.click(); })()""")
        browser.evaluate("new Promise(r => setTimeout(r, 500))")
        tasks = browser.evaluate("document.body.innerText")
        assert "fused" in tasks and "n3f" in tasks, tasks[:1000]
        assert browser.errors() == []
        shot = browser.screenshot(report.parent / "report_queries.png")
    import imageio.v2 as imageio

    pixels = np.asarray(imageio.imread(shot))
    assert pixels.shape[0] > 500 and pixels.std() > 10, "the screenshot is blank"
