"""Study texts shared by the runner tests (imported as a plain module; tests/ is on sys.path)."""

#: a tiny oracle study (2 gridsizes x 2 scan kinds) used by runner tests; format name and replicates
TINY = """
[study]
name = "{name}"
seed = 3
replicates = {replicates}
[base.object]
size = 96
[base.probe]
n = 32
[base.scan]
step = 8.0
n_positions = 64
[base.stitch]
crop = 16
[axes]
"grouping.gridsize" = [1, 2]
"scan.kind" = ["grid", "random"]
"""

#: the base of a small scenario (80 x 80 object, N = 32, 25 grid positions) for stage and runner tests
SMALL_BASE = """
[base.object]
size = 80
[base.probe]
n = 32
[base.scan]
step = 8.0
n_positions = 25
[base.stitch]
crop = 16
"""
