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
from gpusim.study.runner import run
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
    if "infiltration_depth_mean_um" in open_results(runs / "a.h5").timeseries:
        expect |= {"infiltration_depth", "signals", "profiles"}  # the observation outputs (issue 11)
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
    from gpusim.study.report import report

    report([str(tmp_path / "il6.h5")], out)
    _check_page(out, {"tumour_burden", "antigen_classes", "car_t", "il6"})


def test_report_errors(runs, tmp_path, monkeypatch):
    r = CliRunner().invoke(main, ["report", str(tmp_path / "none.h5"), "-o", str(tmp_path / "r")])
    assert r.exit_code == 2 and "no such file" in r.output and not (tmp_path / "r").exists()
    r = CliRunner().invoke(main, ["report", str(runs / "a.h5"), "-o", str(tmp_path / "no" / "r")])
    assert r.exit_code == 2 and "does not exist" in r.output
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    from gpusim.study.report import report

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
    from gpusim.study.report import report

    # a long, sweep-like arm label next to a short one
    long = tmp_path / "p000 car_t.targets=A|B,delivery.dose_cells=30000000.0,car_t.kill_rate=0.5.h5"
    shutil.copy(runs / "b.h5", long)
    page = report([str(runs / "a.h5"), str(long)], out)
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
    # the browser shows the runs block, the endpoint table with n and CIs, the band's meaning
    for what in ("<h2>Runs</h2>", "<h2>Endpoints</h2>", "n = 3", "quickstart", "replicate spread",
                 "Differences from a"):
        assert what in dom, what
    # the screenshot is not blank: many distinct colours (text, tables, figures)
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert len(np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 100


# ---- content for a scientist: runs block, endpoint table, labelled bands and keys ---------------
LONG = ["p000 car_t.targets=A|B,delivery.dose_cells=30000000.0,car_t.kill_rate_per_hour=0.25",
        "p001 car_t.targets=A|B,delivery.dose_cells=30000000.0,car_t.kill_rate_per_hour=0.5"]


def _texts(fig):
    """Every visible, non-empty text of a drawn figure with its box in pixels."""
    from matplotlib.text import Text

    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    hidden = set()  # tick labels outside the view interval exist but are not drawn
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            tol = 1e-9 * max(1.0, abs(hi - lo))
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - tol <= tick.get_loc() <= hi + tol:
                    hidden |= {id(tick.label1), id(tick.label2)}
    return [(t.get_text(), t.get_window_extent(r)) for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and id(t) not in hidden
            and (t.axes is None or t.axes.get_visible())]


def test_page_has_runs_block_and_endpoint_table(runs, tmp_path):
    from gpusim import __version__
    from gpusim.study.report import report

    page = report([str(runs / "a.h5"), str(runs / "b.h5")], tmp_path / "rep").read_text()
    a = open_results(runs / "a.h5")
    for what in ("quickstart", "seed", "replicates (indices)", "3 (0-2)", __version__,
                 "numpy", a.attrs["created_utc"], a.attrs["ended_utc"], "voxel (µm)"):
        assert what in page, what
    # the endpoint table: estimate, 95 % CI and n per arm, from gpusim.study.compare
    assert "<h2>Endpoints</h2>" in page and "n = 3" in page
    assert "0/3 0% [0-56]" in page  # cleared: Wilson 95 % interval of 0/3
    # n = 3: [min, max] with its true coverage 1 - 2/8, never called a 95 % interval
    assert "75% CI" in page and "no 95 % interval" in page
    # seeds 1 and 2: independent arms, differences from the first arm
    assert "Differences from a" in page and "independent of a" in page
    assert "replicate spread" in page and "not a confidence interval" in page


def test_report_unequal_follow_up_compares_at_the_common_horizon(runs, tmp_path):
    from gpusim.study.report import report
    from gpusim.study.runner import run as run_api

    run_api(load_scenario("quickstart", SMALL[:-2] + ["run.days=0.5", "run.replicates=3"]), tmp_path / "long.h5")
    page = report([str(runs / "a.h5"), str(tmp_path / "long.h5")], tmp_path / "rep").read_text()
    assert "unequal follow-up" in page and "re-derived at day 0.25" in page and "not computable" in page


def test_bands_keys_and_scale_bars_are_labelled(runs):
    from gpusim.study.figures import _plt, figures

    plt = _plt()
    arms = [(lbl, open_results(runs / f), runs / f) for lbl, f in zip(LONG, ("a.h5", "b.h5"))]
    figs = {name: (fig, cap) for name, fig, cap in figures(plt, arms)}
    try:
        fig, cap = figs["tumour_burden"]
        texts = " ".join(t for t, _ in _texts(fig))
        assert "replicate spread" in texts and "(R=3)" in texts and "not a confidence interval" in cap
        fig, _ = figs["snapshots_0"]
        texts = [t for t, _ in _texts(fig)]
        assert "oxygen (mmHg)" in texts and "ECM density (fraction, 0-1)" in texts
        assert {"cell kind", "tumour", "necrotic", "vessel", "CAR-T cell", "effector", "exhausted",
                "memory"} <= set(texts)
        # scale bar: a round length; voxel 20 µm x 20 voxels = 400 µm wide -> 100 µm bar
        assert texts.count("100 µm") == 3 * 4
        assert any("voxel 20 µm" in t for t in texts)
    finally:
        for fig, _ in figs.values():
            plt.close(fig)


def test_long_sweep_labels_do_not_overlap(runs):
    # every text box of every figure (titles, legends, ticks, colour keys) inside the figure,
    # and no two of them overlapping by more than a pixel
    from gpusim.study.figures import _plt, figures

    plt = _plt()
    arms = [(lbl, open_results(runs / f), runs / f) for lbl, f in zip(LONG * 2, ("a.h5", "b.h5") * 2)]
    for name, fig, _ in figures(plt, arms):
        try:
            W, H = fig.canvas.get_width_height()
            boxes = _texts(fig)
            for t, b in boxes:
                assert b.x0 >= -1 and b.y0 >= -1 and b.x1 <= W + 1 and b.y1 <= H + 1, (name, t)
                assert "\n" in t or b.width < 0.6 * W, (name, t)  # long labels are wrapped
            for i, (t1, b1) in enumerate(boxes):
                for t2, b2 in boxes[i + 1:]:
                    ov_w = min(b1.x1, b2.x1) - max(b1.x0, b2.x0)
                    ov_h = min(b1.y1, b2.y1) - max(b1.y0, b2.y0)
                    assert not (ov_w > 1 and ov_h > 1), (name, t1, t2)
        finally:
            plt.close(fig)
