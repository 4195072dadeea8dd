#!/bin/sh
# Lints the SAM template with cfn-lint (PyPI), installed on first use into the project's .venv
# (the same virtualenv as moto). Zero errors AND zero warnings/informational findings are required.
set -eu
cd "$(dirname "$0")/.."
CFN_LINT_REQUIREMENT='cfn-lint==1.58.0'
if ! [ -x .venv/bin/cfn-lint ]; then
  command -v python3 >/dev/null || { echo 'python3 is missing: cfn-lint needs Python 3' >&2; exit 1; }
  mkdir -p .venv
  flock .venv/.install.lock sh -c "[ -x .venv/bin/python ] || python3 -m venv .venv
    [ -x .venv/bin/cfn-lint ] || .venv/bin/python -m pip install --quiet --disable-pip-version-check '$CFN_LINT_REQUIREMENT'"
fi
exec .venv/bin/cfn-lint --include-checks I -- "${@:-infra/template.yaml}"
