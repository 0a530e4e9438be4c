"""`gpusim report`: PNG + SVG figures and an HTML index that references them; the page is loaded
in a real headless browser where one is installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gpusim.cli import main
from gpusim.errors import MissingExtraError
from gpusim.io import ResultWriter, open_results
from gpusim.runner import run
from gpusim.scenario import load_scenario

pytest.importorskip("matplotlib", reason="plots need the optional extra gpusim[plot]")

SMALL = ["domain.x_voxels=20", "domain.y_voxels=20", "tumour.radius_um=100",
         "run.output_interval_hours=2", "run.snapshot_interval_hours=2", "run.days=0.3",
         "run.replicates=3"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    run(load_scenario("quickstart", SMALL), d / "a.h5")
    run(load_scenario("quickstart", SMALL + ["run.seed=2"]), d / "b.h5")
    return d


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.refs.append(a["src"])
        if tag == "a":
            self.refs.append(a["href"])


def _check_page(out: Path, expect: set[str]) -> list[str]:
    page = out / "index.html"
    p = _Refs()
    p.feed(page.read_text(encoding="utf-8"))
    names = {r.rsplit(".", 1)[0] for r in p.refs}
    assert names == expect, names
    for ref in p.refs:
        f = out / ref
        assert f.is_file(), ref
        if ref.endswith(".png"):
            assert f.read_bytes()[:8] == PNG
        else:
            root = ET.parse(f).getroot()
            assert root.tag.endswith("svg")
    return p.refs


def test_report_two_arms(runs, tmp_path):
    out = tmp_path / "rep"
    r = CliRunner().invoke(main, ["report", str(runs / "a.h5"), str(runs / "b.h5"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    expect = {"tumour_burden", "antigen_classes", "car_t", "snapshots_0", "snapshots_1"}
    if any(m.startswith("il6") for m in open_results(runs / "a.h5").timeseries):
        expect.add("il6")  # the model writes IL-6: it must be plotted
    refs = _check_page(out, expect)
    assert len(refs) == 2 * len(expect)  # each figure: PNG shown, SVG linked
    html = (out / "index.html").read_text()
    assert "a.h5" in html and "b.h5" in html
    # an existing non-empty directory is not written into without --force
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    r = CliRunner().invoke(main, ["report", str(runs / "a.h5"), "-o", str(out)])
    assert r.exit_code == 2 and "--force" in r.output
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_report_plots_il6_when_present(tmp_path):
    R = 4
    metrics = {m: ("cells", "x") for m in ("tumour_cells", "car_t_blood", "car_t_tumour",
                                            "tumour_a_pos_b_pos")}
    metrics["il6_pg_ml"] = ("pg/mL", "serum IL-6")
    with ResultWriter(tmp_path / "il6.h5", replicates=R, attrs={}, scenario_toml="",
                      metrics=metrics, endpoints={"cleared": ("int8", "1", "x")}) as w:
        for i in range(5):
            w.append(float(i), {m: np.arange(R) * (i + 1.0) for m in metrics})
        w.finish({"cleared": np.zeros(R, np.int8)})
    out = tmp_path / "rep"
    from gpusim.report import report

    report([str(tmp_path / "il6.h5")], out)
    _check_page(out, {"tumour_burden", "antigen_classes", "car_t", "il6"})


def test_report_errors(runs, tmp_path, monkeypatch):
    r = CliRunner().invoke(main, ["report", str(tmp_path / "none.h5"), "-o", str(tmp_path / "r")])
    assert r.exit_code == 2 and "no such file" in r.output and not (tmp_path / "r").exists()
    r = CliRunner().invoke(main, ["report", str(runs / "a.h5"), "-o", str(tmp_path / "no" / "r")])
    assert r.exit_code == 2 and "does not exist" in r.output
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    from gpusim.report import report

    with pytest.raises(MissingExtraError, match=r"gpusim\[plot\]"):
        report([str(runs / "a.h5")], tmp_path / "r2")


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_report_page_in_headless_browser(runs, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium, chromium-browser or google-chrome on PATH: cannot load the page in a real browser")
    out = tmp_path / "rep"
    from gpusim.report import report

    page = report([str(runs / "a.h5")], out)
    shot = tmp_path / "shot.png"
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           f"--screenshot={shot}", "--window-size=1200,2400", page.resolve().as_uri()],
                          capture_output=True, timeout=120)
    assert shot.is_file() and shot.read_bytes()[:8] == PNG, proc.stderr.decode(errors="replace")[-2000:]
    # dump the DOM: every image the page references is there to load (broken ones have no file)
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          page.resolve().as_uri()], capture_output=True, timeout=120, text=True).stdout
    p = _Refs()
    p.feed(dom)
    assert p.refs and all((out / ref).is_file() for ref in p.refs)
    assert shot.stat().st_size > 10_000  # a rendered page with figures, not a blank one
