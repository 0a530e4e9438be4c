"""Result files: streaming HDF5 writer and reader, schema ``gpusim/1``.

One module per job, the imports running one way (``schema`` and ``paths`` at the bottom):

* :mod:`~gpusim.io.schema`: the layout and a file's declarations (create, check, read back);
* :mod:`~gpusim.io.paths`: output-path checks, the one-writer lock, the atomic move into place;
* :mod:`~gpusim.io.recovery`: keeping a file readable after a write error;
* :mod:`~gpusim.io.writer`: :class:`ResultWriter`, one run to one file as it goes (SWMR, flushed
  every output interval), and the staged checkpoint write;
* :mod:`~gpusim.io.reader`: :func:`open_results` reads a file (finished, live, or left by a
  killed run) into a :class:`Results` of NumPy arrays; :mod:`~gpusim.io.dataset` turns one into
  an ``xarray.Dataset``;
* :mod:`~gpusim.io.resume`: reopening an unfinished file at its last checkpoint;
* :mod:`~gpusim.io.merge`: joining part files of replicate chunks into one file.

The file layout is documented in ``docs/io_format.md``.
"""

from gpusim.io.reader import Results, open_results
from gpusim.io.schema import SCHEMA
from gpusim.io.writer import ResultWriter

__all__ = ["SCHEMA", "ResultWriter", "Results", "open_results"]
