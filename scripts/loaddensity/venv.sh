# Sourced by the LoadDensity scripts: creates (once) a venv with je-load-density installed.
# ensure_loaddensity_venv VENV VERSION PYTHON
ensure_loaddensity_venv() {
  local venv="$1" version="$2" python="$3" have=""
  if [ -x "$venv/bin/python" ]; then
    have="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("je-load-density"))' 2>/dev/null || true)"
  fi
  if [ "$have" != "$version" ]; then
    echo "[loaddensity] installing je-load-density==$version into $venv" >&2
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "je-load-density==$version" >&2
  fi
}
