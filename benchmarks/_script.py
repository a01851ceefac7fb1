"""What the benchmark scripts share when run: a mistake in their arguments is one line.

`python benchmarks/<script>.py` puts this folder first on `sys.path`, so each
script's `__main__` block imports it as `_script`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


def run(main: Callable[[], None]) -> None:
    """Calls `main`; a config or data mistake (`--set`, `--config`, `--manual-dir`) ends the
    script with one line and status 2, as `kerasmlp-train` ends, not a traceback."""
    from kerasmlp.config import ConfigError
    from kerasmlp.errors import DataError

    try:
        main()
    except (ConfigError, DataError) as e:
        name = os.path.basename(sys.argv[0]) or "benchmark"
        print(f"{name}: error: {' '.join(str(e).split())}", file=sys.stderr)
        sys.exit(2)
