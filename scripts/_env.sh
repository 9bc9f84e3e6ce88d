# Sourced by scripts/quickstart and scripts/test: create .venv in the checkout and install the
# project into it when pyproject.toml, the constraints or this script changed (a stamp records it).
# Fast when nothing changed. Never installs a CUDA build of torch: requirements/cpu-constraints.txt
# pins the CPU wheel (torch==2.13.0) and the torchvision release built for it (0.28.0), which the
# iterative extra (pty-chi) needs. The cloud extra (obstore, runs on object storage) is installed too;
# the dev extra's moto[server] (the object storage test's local S3) brings no torch.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PTYCHO_DIST_VENV:-$ROOT/.venv}"
STAMP="$VENV/.ptycho-dist-stamp"

_pick_python() {
  for cand in python3.11 python3.12 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 13)))'; then
      echo "$cand"; return 0
    fi
  done
  echo "ptycho-dist: need Python 3.11 or 3.12 on PATH" >&2; return 1
}

_want_stamp() {
  cat "$ROOT/pyproject.toml" "$ROOT/requirements/cpu-constraints.txt" "$ROOT/scripts/_env.sh" | sha256sum | cut -d' ' -f1
}

want="$(_want_stamp)"
if [ ! -x "$VENV/bin/python" ] || [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  echo "ptycho-dist: setting up $VENV (first run or dependencies changed; a few minutes)" >&2
  PY="$(_pick_python)"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  if ! { "$VENV/bin/python" -m pip install -q --upgrade pip &&
         "$VENV/bin/python" -m pip install -q -c "$ROOT/requirements/cpu-constraints.txt" \
           -e "$ROOT[torch,tf,dev,iterative,cloud]"; } >"$VENV/pip-install.log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$VENV/pip-install.log" >&2
    echo "ptycho-dist: installing into $VENV failed (log above, and in $VENV/pip-install.log)" >&2
    exit 1
  fi
  echo "$want" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
export PYTHONNOUSERSITE=1
