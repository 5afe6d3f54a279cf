#!/usr/bin/env bash
# The README's tus section typed as written there (create, one PATCH with its sha256,
# HEAD), against a running Ferry at $BASE (default http://127.0.0.1:8000). Passes when
# the 204 of the PATCH means downloadable at once: listed at /storage/files/ and
# byte-identical through the download redirect, with no wait and no retry.
set -euo pipefail
BASE=${BASE:-http://127.0.0.1:8000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
json() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
header() { tr -d '\r' | sed -n "s/^$1: //Ip" | tail -n 1; }

head -c 32634 /dev/urandom >some-image.png
TOKEN=$(curl -sS -X POST -d "username=admin&password=adminadmin" "$BASE/api-token-auth/" | json token)
created=$(curl -sS -i -X POST -H "Authorization: Bearer $TOKEN" -H "Tus-Resumable: 1.0.0" -H "Upload-Length: 32634" \
	-H "Upload-Metadata: filename $(printf some-image.png | base64)" "$BASE/files/")
[[ $created == "HTTP/1.1 201"* ]] || { echo "tus creation: $created"; exit 1; }
URL=$(header location <<<"$created")
UUID=${URL##*/}
patched=$(curl -sS -i -X PATCH -H "Authorization: Bearer $TOKEN" -H "Tus-Resumable: 1.0.0" -H "Upload-Offset: 0" \
	-H "Content-Type: application/offset+octet-stream" \
	-H "Upload-Checksum: sha256 $(openssl dgst -sha256 -binary some-image.png | base64)" \
	--data-binary @some-image.png "$URL")
[[ $patched == "HTTP/1.1 204"* && $(header upload-offset <<<"$patched") == 32634 ]] ||
	{ echo "tus PATCH: $patched"; exit 1; }
head=$(curl -sS -I -H "Authorization: Bearer $TOKEN" -H "Tus-Resumable: 1.0.0" "$URL")
[[ $(header upload-offset <<<"$head") == 32634 ]] || { echo "tus HEAD: $head"; exit 1; }
curl -sS -H "Authorization: JWT $TOKEN" "$BASE/storage/files/" | grep -q "$UUID" || { echo "file not listed"; exit 1; }
curl -sS -f -L -H "Authorization: JWT $TOKEN" -o img.png "$BASE/storage/download/$UUID/"
cmp some-image.png img.png || { echo "downloaded bytes differ"; exit 1; }
echo "tus curl sequence: 1 passed, 0 failed"
