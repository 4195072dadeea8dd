#!/bin/sh
# Lints the SAM template with cfn-lint (PyPI), installed on first use into the project's .venv
# (the same virtualenv as moto). Zero errors AND zero warnings/informational findings are required.
set -eu
cd "$(dirname "$0")/.."
CFN_LINT_REQUIREMENT='cfn-lint==1.58.0'
venv=${SMTPQ_VENV_DIR:-.venv}
# Whole or not at all, whenever an install is interrupted (scripts/local/ensure-venv.sh).
[ -f "$venv/.smtpq-complete" ] && "$venv/bin/python" -c 'import cfnlint' 2>/dev/null ||
  sh scripts/local/ensure-venv.sh 'import cfnlint' "$CFN_LINT_REQUIREMENT"
# Through the interpreter, not .venv/bin/cfn-lint: a console script's shebang names the path it was built at.
exec "$venv/bin/python" -c 'import sys; from cfnlint.runner import main; sys.argv[0] = "cfn-lint"; sys.exit(main())' \
  --include-checks I -- "${@:-infra/template.yaml}"
