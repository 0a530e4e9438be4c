"""Studies: runs and what is done with many of them.

* :mod:`~gpusim.study.runner`: one run of a scenario into a result file (``gpusim.run``), and
  its resume;
* :mod:`~gpusim.study.distributed`: replicate chunks on a Dask cluster, merged into one file;
* :mod:`~gpusim.study.sweep`: parameter sweeps, and the result arguments of the study commands;
* :mod:`~gpusim.study.stats`: confidence intervals, survival analysis, tests;
* :mod:`~gpusim.study.compare`: endpoint tables of arms and their differences, with
  :mod:`~gpusim.study.table` printing them;
* :mod:`~gpusim.study.report`: figures and an HTML page;
* :mod:`~gpusim.study.bench`: the performance harness.
"""
