"""gpusim: a GPU-accelerated, exactly reproducible stochastic simulator of CAR-T cell therapy in
solid tumours.

Public API::

    import gpusim
    sc = gpusim.load_scenario("quickstart", ["car_t.targets=A|B"])
    res = gpusim.run(sc, "out.h5", replicates=8, seed=3)
    res = gpusim.open_results("out.h5")
    res.timeseries["tumour_cells"]        # (R, T)
"""

from .version import __version__
from .errors import GpusimError, ScenarioError, OutputError, BackendError, CapacityError  # noqa: E402
from .scenario import Scenario, load_scenario  # noqa: E402
from .io import open_results, Results  # noqa: E402
from .study.runner import run  # noqa: E402

__all__ = ["__version__", "load_scenario", "run", "open_results", "Scenario", "Results",
           "GpusimError", "ScenarioError", "OutputError", "BackendError", "CapacityError"]
