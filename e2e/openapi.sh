#!/usr/bin/env bash
# Checks the API's published contract against the live API at $BASE:
# - /docs/openapi.json passes openapi-spec-validator;
# - schemathesis generates requests for every operation and checks that nothing
#   answers 5xx and that status codes, content types, headers and bodies conform to
#   the spec. (Schemathesis's "positive data acceptance" check is left out on purpose:
#   the spec documents shapes, while the API enforces more, e.g. Content-Range
#   arithmetic and offsets, and rejecting those with 4xx is correct.)
# Runs as the user in $E2E_USER:$E2E_PASSWORD, whose data it may delete.
# Tools come from PyPI into a cached venv ($FERRY_E2E_VENV, default ~/.cache/ferry-e2e).
set -euo pipefail
BASE=${BASE:-http://127.0.0.1:8000}
VENV=${FERRY_E2E_VENV:-$HOME/.cache/ferry-e2e}
HERE=$(cd "$(dirname "$0")" && pwd)
if [[ ! -x $VENV/bin/schemathesis || ! -x $VENV/bin/openapi-spec-validator ]]; then
	python3 -m venv "$VENV"
	"$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -sSf "$BASE/docs/openapi.json" -o "$work/openapi.json"
"$VENV/bin/openapi-spec-validator" "$work/openapi.json"
TOKEN=$(curl -sSf -X POST -d "username=${E2E_USER:?}&password=${E2E_PASSWORD:?}" "$BASE/api-token-auth/" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
cd "$work"
# The hooks teach it tus's application/offset+octet-stream bodies (raw bytes).
PYTHONPATH=$HERE SCHEMATHESIS_HOOKS=schemathesis_hooks "$VENV/bin/schemathesis" run "$work/openapi.json" --url "$BASE" -H "Authorization: JWT $TOKEN" \
	--max-examples "${SCHEMATHESIS_EXAMPLES:-25}" --seed 1 \
	--checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
	2>&1 | tee "$work/schemathesis.log" | tail -n 25
grep -Eq '^=+ .*[0-9]+ (passed|warnings?)' "$work/schemathesis.log" && ! grep -Eq '[0-9]+ (failures?|errors?)' "$work/schemathesis.log" ||
	{ echo "schemathesis found problems"; exit 1; }
echo "openapi contract: 2 passed, 0 failed"
