#!/usr/bin/env bash
# The original service's README "Testing" section, typed as written there (plus the
# `-d md5=<hex>` its prose requires on the completing POST), against a running Ferry at
# $BASE (default http://127.0.0.1:8000). Passes when the two ranged downloads, joined,
# are byte-identical to the upload.
set -euo pipefail
BASE=${BASE:-http://127.0.0.1:8000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
json() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }

head -c 32634 /dev/urandom >some-image.png
TOKEN=$(curl -sS -X POST -d "username=admin&password=adminadmin" "$BASE/api-token-auth/" | json token)
UPLOAD=$(curl -sS -H "Authorization: JWT $TOKEN" -H "Content-Range: bytes 1-32634/32634" -F file=@some-image.png \
	-F filename=some-image.png -X PUT "$BASE/storage/tmp-upload/")
UUID=$(json id <<<"$UPLOAD")
MD5=$(md5sum some-image.png | cut -d' ' -f1)
DONE=$(curl -sS -H "Authorization: JWT $TOKEN" -X POST -d "md5=$MD5" "$BASE/storage/tmp-upload/$UUID/")
[[ $(json status <<<"$DONE") == 2 ]] || { echo "completing POST did not verify: $DONE"; exit 1; }
curl -sS -H "Authorization: JWT $TOKEN" "$BASE/storage/files/" | grep -q "$UUID" || { echo "file not listed"; exit 1; }
# Read-after-write: the 200 above means downloadable at once, as the original README's
# sequence assumes (no wait, no retry: -f makes an error status fail the script).
curl -sS -f -L -H "Authorization: JWT $TOKEN" --range 0-29999 -o img.part1 "$BASE/storage/download/$UUID/"
curl -sS -f -L -H "Authorization: JWT $TOKEN" --range 30000-32634 -o img.part2 "$BASE/storage/download/$UUID/"
cat img.part? >img.png
cmp some-image.png img.png || { echo "downloaded bytes differ"; exit 1; }
echo "readme curl sequence: 1 passed, 0 failed"
