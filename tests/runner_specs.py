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
