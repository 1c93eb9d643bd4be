"""Entry script of the PyInstaller bundle: the same `glassbox` command as the installed one.

freeze_support() first: the engine's worker is a multiprocessing "spawn" child, which
in a frozen app is the bundle's own executable started again with
--multiprocessing-fork; that call turns such a start into the worker, not a second app.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from app.cli.main import main

    sys.exit(main())
