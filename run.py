"""The single entry point: ``python run.py task=<stage> [group=option ...] [--multirun]``.

The same Hydra app as the installed ``vrexp`` console command (:func:`vrexp.cli.main`).
"""

from vrexp.cli import main

if __name__ == "__main__":
    main()
