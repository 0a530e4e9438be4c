"""``python -m gpusim.cli``: the ``gpusim`` command."""

from gpusim.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
