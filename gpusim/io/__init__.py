"""Result files: streaming HDF5 writer and reader, schema ``gpusim/1``.

:class:`ResultWriter` writes one run to one file as it goes (SWMR, flushed every output
interval); :func:`open_results` reads a file (finished, live, or left by a killed run) into a
:class:`Results` of NumPy arrays.  The file layout is documented in ``docs/io_format.md``.
"""

from gpusim.io.reader import Results, open_results
from gpusim.io.writer import SCHEMA, ResultWriter

__all__ = ["SCHEMA", "ResultWriter", "Results", "open_results"]
