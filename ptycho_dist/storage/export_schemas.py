"""Write ``schemas/tables/<table>.json`` from the Arrow schemas: ``python -m ptycho_dist.storage.export_schemas [DIR]``."""

from __future__ import annotations

import sys
from pathlib import Path

from ptycho_dist.storage.files import write_json_atomic
from ptycho_dist.storage.tables import TABLES, schema_to_json


def export(folder: Path) -> list[Path]:
    """Write one JSON file per table into ``folder``; returns the paths."""
    paths = []
    for name in TABLES:
        path = folder / f"{name}.json"
        write_json_atomic(path, schema_to_json(name))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in export(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas/tables")):
        print(p)
