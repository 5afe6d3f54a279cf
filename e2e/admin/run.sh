#!/usr/bin/env bash
# The admin page's browser test: installs what it needs when missing (Debian's
# chromium, playwright-core as pinned in package-lock.json), then runs admin.test.mjs.
# Takes FERRY_E2E_BASE_URL, FERRY_E2E_ADMIN, FERRY_E2E_USER, FERRY_E2E_NODE_JSON and
# FERRY_E2E_ARTIFACTS (see admin.test.mjs).
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"

if [[ ! -x /usr/bin/chromium ]]; then
	if (($(id -u) != 0)); then
		echo "admin browser test: /usr/bin/chromium is missing (apt-get install chromium as root)" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y --no-install-recommends chromium >/dev/null ||
		{ apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null; }
fi

wanted=$(node -p 'require("./package-lock.json").packages["node_modules/playwright-core"].version')
installed=$(node -p 'try { require("./node_modules/playwright-core/package.json").version } catch { "" }')
if [[ $installed != "$wanted" ]]; then
	npm ci --no-audit --no-fund --loglevel=error
fi

exec node admin.test.mjs
