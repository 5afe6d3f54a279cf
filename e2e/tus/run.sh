#!/usr/bin/env bash
# The tus clients against a running Ferry at $BASE as $E2E_USER:$E2E_PASSWORD:
# tuspy (tuspy_test.py; from PyPI into a cached venv, $FERRY_E2E_TUS_VENV, default
# ~/.cache/ferry-e2e-tus, as e2e/openapi.sh gets schemathesis), tus-js-client
# (tus-js.test.mjs) and the page at / with Uppy in headless Chromium (page.test.mjs,
# screenshots to $FERRY_E2E_ARTIFACTS; Chromium as e2e/admin/run.sh installs it); the
# node packages by npm ci of package-lock.json, as e2e/admin gets playwright-core.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
VENV=${FERRY_E2E_TUS_VENV:-$HOME/.cache/ferry-e2e-tus}
rc=0

if ! "$VENV/bin/python" -c 'import tusclient' 2>/dev/null; then
	python3 -m venv "$VENV"
	"$VENV/bin/pip" install -q -r requirements.txt
fi
"$VENV/bin/python" tuspy_test.py || rc=1

stale=0
for pkg in tus-js-client playwright-core; do
	wanted=$(node -p "require('./package-lock.json').packages['node_modules/$pkg'].version")
	installed=$(node -p "try { require('./node_modules/$pkg/package.json').version } catch { '' }")
	[[ $installed == "$wanted" ]] || stale=1
done
if ((stale)); then
	npm ci --no-audit --no-fund --loglevel=error
fi
node tus-js.test.mjs || rc=1
if [[ -x /usr/bin/chromium ]]; then
	node page.test.mjs || rc=1
else
	echo "page browser test: /usr/bin/chromium is missing (e2e/admin/run.sh installs it)" >&2
	rc=1
fi
exit "$rc"
