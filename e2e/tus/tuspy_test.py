"""tuspy (the Python tus client) against a running Ferry: a 64 MiB file uploaded in
8 MiB chunks with tuspy's per-chunk checksums, the client stopped part-way and a new
client resuming from the offset the server reports; then the file is listed at
/storage/files/ and its redirect download is byte-identical. A second upload goes
through in one go as the next version of the first (metadata `parent`).

Takes BASE (the API's URL) and E2E_USER / E2E_PASSWORD."""

import hashlib
import os
import sys
import tempfile

import requests
from tusclient import client as tus

BASE = os.environ.get("BASE", "http://127.0.0.1:8000")
SIZE = 64 * 1024 * 1024
CHUNK = 8 * 1024 * 1024


def login():
    res = requests.post(
        f"{BASE}/api-token-auth/",
        data={"username": os.environ["E2E_USER"], "password": os.environ["E2E_PASSWORD"]},
        timeout=30,
    )
    res.raise_for_status()
    return res.json()["token"]


def download(token, file_id):
    # requests drops Authorization on the redirect to the node, which needs none.
    res = requests.get(
        f"{BASE}/storage/download/{file_id}/", headers={"Authorization": f"JWT {token}"}, timeout=120
    )
    res.raise_for_status()
    return res.content


def main():
    token = login()
    client = tus.TusClient(f"{BASE}/files/", headers={"Authorization": f"Bearer {token}"})
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "tuspy.bin")
        data = os.urandom(SIZE)
        with open(path, "wb") as f:
            f.write(data)

        # The first client uploads three chunks and stops (a process that went away).
        first = client.uploader(
            path, chunk_size=CHUNK, metadata={"filename": "tuspy.bin"}, upload_checksum=True
        )
        first.upload(stop_at=3 * CHUNK)
        assert first.offset == 3 * CHUNK, first.offset
        url = first.url

        # A new client resumes the same upload from the offset HEAD reports.
        second = client.uploader(path, url=url, chunk_size=CHUNK, upload_checksum=True)
        assert second.offset == 3 * CHUNK, f"resumed at {second.offset}"
        second.upload()
        assert second.offset == SIZE, second.offset

        file_id = url.rstrip("/").rsplit("/", 1)[-1]
        listing = requests.get(
            f"{BASE}/storage/files/", headers={"Authorization": f"JWT {token}"}, timeout=30
        ).json()
        listed = [f for f in listing["results"] if f["id"] == file_id]
        assert listed, f"{file_id} not listed: {listing}"
        assert listed[0]["md5"] == hashlib.md5(data).hexdigest(), listed[0]
        # The last PATCH's 204 came after the verdict: downloadable at once.
        assert download(token, file_id) == data, "downloaded bytes differ"

        # The next version, in one go.
        version = os.urandom(3 * 1024 * 1024 + 17)
        vpath = os.path.join(work, "tuspy-v2.bin")
        with open(vpath, "wb") as f:
            f.write(version)
        up = client.uploader(
            vpath, chunk_size=CHUNK, metadata={"filename": "tuspy.bin", "parent": file_id}
        )
        up.upload()
        version_id = up.url.rstrip("/").rsplit("/", 1)[-1]
        root = requests.get(
            f"{BASE}/storage/files/{file_id}/", headers={"Authorization": f"JWT {token}"}, timeout=30
        ).json()
        assert [v["id"] for v in root["versions"]] == [version_id], root
        assert download(token, version_id) == version, "version's bytes differ"
    print("tuspy: 1 passed, 0 failed")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 -- one line for the runner, then fail
        print(f"tuspy: FAILED: {e!r}", file=sys.stderr)
        raise
