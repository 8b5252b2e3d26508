# Sourced by the scripts: make sure .venv exists and has what pyproject.toml asks for.
# Reinstalls only when pyproject.toml changed since the last install.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
_extras="${KMS_EXTRAS:-dev}"
_stamp="$ROOT/.venv/.installed-$_extras"
_want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -x "$PY" ] || [ "$(cat "$_stamp" 2>/dev/null)" != "$_want" ]; then
  echo "setting up $ROOT/.venv (first run installs dependencies)..." >&2
  [ -x "$PY" ] || python3 -m venv "$ROOT/.venv"
  "$PY" -m pip install -q --upgrade pip >&2
  "$PY" -m pip install -q -e "$ROOT[$_extras]" >&2
  echo "$_want" > "$_stamp"
fi
cd "$ROOT"
