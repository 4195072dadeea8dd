#!/bin/sh
# ensure-venv.sh IMPORTS REQUIREMENT...: makes sure the project's virtualenv (.venv, or $SMTPQ_VENV_DIR) exists
# whole and can import IMPORTS (Python `import …` text), installing REQUIREMENTs (pinned) when it cannot.
# moto (scripts/local/moto.ts), cfn-lint (scripts/cfn-lint.sh) and .ci/run all go through here.
#
# Interrupted installs: a new virtualenv is built beside the real one (.venv.partial.<pid>), with pip and the
# requirements, checked, marked complete and only then renamed into place — rename(2) is atomic, so .venv is
# either absent or whole, whenever Ctrl-C or a kill comes. The rename is safe for a virtualenv used only as
# `<venv>/bin/python -m …`: bin/python is a symlink to the base interpreter and pyvenv.cfg names that, not the
# venv's own path (only console-script shebangs and activate scripts do, and nothing here uses them).
# A .venv without the completion mark that has no working pip (made by an older, interrupted smtpq) is
# rebuilt; one with pip is an older complete install and is kept. Requirements added to a whole venv later
# are installed in place: an interrupted pip leaves the venv usable and the next run installs again.
# Concurrent callers (a dev server, a test run, CI) take turns on a lock beside the venv.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 IMPORTS REQUIREMENT..." >&2; exit 64; }
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${SMTPQ_VENV_DIR:-$root/.venv}
imports=$1
shift
command -v python3 >/dev/null || { echo 'python3 is missing: install Python 3 (with its venv module)' >&2; exit 69; }

exec 9>"$venv.lock"
flock 9

if [ -d "$venv" ] && ! [ -f "$venv/.smtpq-complete" ]; then
  if "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    touch "$venv/.smtpq-complete"
  else
    echo "smtpq: $venv is incomplete (an interrupted first install?): building it again" >&2
    rm -rf "$venv"
  fi
fi

if ! [ -d "$venv" ]; then
  rm -rf "$venv".partial.*
  partial="$venv.partial.$$"
  python3 -m venv "$partial"
  "$partial/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  "$partial/bin/python" -c "$imports"
  touch "$partial/.smtpq-complete"
  mv "$partial" "$venv"
  exit 0
fi

"$venv/bin/python" -c "$imports" 2>/dev/null ||
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
"$venv/bin/python" -c "$imports"
