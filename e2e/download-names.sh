#!/usr/bin/env bash
# Real downloaders keep the stored file name (RFC 6266 Content-Disposition with an
# RFC 8187 filename*) and get a Content-Type from its extension: curl -OJL, wget
# --content-disposition and aria2c, each through the API's redirect to a node, right
# after the completing POST's 200 (read-after-write). Against a running Ferry at $BASE.
# Installs wget and aria2 from Debian when missing.
set -euo pipefail
BASE=${BASE:-http://127.0.0.1:8000}
missing=()
command -v wget >/dev/null || missing+=(wget)
command -v aria2c >/dev/null || missing+=(aria2)
if ((${#missing[@]})); then
	echo "download-names: installing ${missing[*]} (apt)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
		{ DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
json() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }

name='résumé 2024 (final).pdf'
head -c 70000 /dev/urandom >source.bin
TOKEN=$(curl -sS -X POST -d "username=admin&password=adminadmin" "$BASE/api-token-auth/" | json token)
DONE=$(curl -sS -H "Authorization: JWT $TOKEN" -F "md5=$(md5sum source.bin | cut -d' ' -f1)" \
	-F "filename=$name" -F file=@source.bin -X POST "$BASE/storage/tmp-upload/")
[[ $(json status <<<"$DONE") == 2 ]] || { echo "single-request upload did not complete: $DONE"; exit 1; }
URL="$BASE/storage/download/$(json id <<<"$DONE")/"

passed=0 failed=0
check() { # check TOOL DIR: DIR holds exactly "$name", byte-identical to the upload
	local got
	got=$(ls -A "$2")
	if [[ $got == "$name" ]] && cmp -s source.bin "$2/$name"; then
		passed=$((passed + 1))
	else
		echo "download-names: $1 saved '${got//$'\n'/, }' (expected '$name' with the uploaded bytes)"
		failed=$((failed + 1))
	fi
}
mkdir curl wget aria2c
(cd curl && curl -sS -f -O -J -L -H "Authorization: JWT $TOKEN" "$URL") || echo "download-names: curl -OJL exited $?"
check "curl -OJL" curl
(cd wget && wget -q --content-disposition --header "Authorization: JWT $TOKEN" "$URL") ||
	echo "download-names: wget exited $?"
check "wget --content-disposition" wget
(cd aria2c && aria2c -q --header "Authorization: JWT $TOKEN" "$URL") || echo "download-names: aria2c exited $?"
check aria2c aria2c
# The type comes from the extension.
type=$(curl -sS -L -o /dev/null -w '%{content_type}' -H "Authorization: JWT $TOKEN" "$URL")
if [[ $type == application/pdf ]]; then passed=$((passed + 1)); else
	echo "download-names: Content-Type '$type', expected application/pdf"
	failed=$((failed + 1))
fi
echo "download names: $passed passed, $failed failed"
((failed == 0))
