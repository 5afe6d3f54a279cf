//! Every bad input in the HTTP contract gets a clear JSON error, changes nothing, and
//! never reaches another user's data.

use ferry_tests::{md5_hex, random_bytes, Cluster};

#[tokio::test]
async fn malformed_chunks_are_refused_without_side_effects() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let api = cluster.client("alice", "alicealice").await?;
    let data = random_bytes(1000);
    let new = "/storage/tmp-upload/";

    for (range, code) in [
        (Some("bytes 0-9"), "invalid_content_range"),
        (Some("items 0-9/10"), "invalid_content_range"),
        (Some("bytes 9-0/10"), "invalid_content_range"),
        (Some("bytes 0-20/10"), "invalid_content_range"),
        (None, "content_range_required"),
    ] {
        let res = api.put_multipart(new, range, &data[..10], Some("x.bin"), None).await?;
        assert_eq!((res.status, res.code()), (400, code.to_owned()), "{range:?}: {}", res.text());
        assert!(res.json()["detail"].is_string());
    }
    // Size disagreeing with the header, both ways.
    let res = api.put_multipart(new, Some("bytes 0-99/1000"), &data[..50], Some("x.bin"), None).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "size_mismatch"));
    let res = api.put_multipart(new, Some("bytes 0-9/1000"), &data[..50], Some("x.bin"), None).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "size_mismatch"));
    // A first chunk that does not start at 0.
    let res = api.put_multipart(new, Some("bytes 10-19/1000"), &data[10..20], Some("x.bin"), None).await?;
    assert_eq!((res.status, res.code().as_str(), res.json()["offset"].as_i64()), (400, "offset_mismatch", Some(0)));
    // Dangerous file names.
    for name in ["../etc/passwd", "a\0b", "..", ""] {
        let res = api.put_multipart(new, Some("bytes 0-9/1000"), &data[..10], Some(name), None).await?;
        assert_eq!(res.status, 400, "{name:?}: {}", res.text());
    }
    // Nothing above created an upload or left bytes in staging.
    let db = cluster.db().await?;
    let uploads: i64 = db.query_one("SELECT count(*) FROM uploads", &[]).await?.get(0);
    assert_eq!(uploads, 0);
    let leftovers = std::fs::read_dir(&cluster.staging).map(|d| d.count()).unwrap_or(0);
    assert_eq!(leftovers, 0, "staging must be empty");

    // A real upload, then wrong offsets, a changing TOTAL, and bad completions.
    let res = api.put_multipart(new, Some("bytes 0-99/1000"), &data[..100], Some("x.bin"), None).await?;
    assert_eq!(res.status, 200);
    let url = res.json()["url"].as_str().unwrap_or_default().to_owned();
    let res = api.put_multipart(&url, Some("bytes 200-299/1000"), &data[200..300], None, None).await?;
    assert_eq!((res.status, res.code().as_str(), res.json()["offset"].as_i64()), (400, "offset_mismatch", Some(100)));
    let res = api.put_multipart(&url, Some("bytes 100-199/2000"), &data[100..200], None, None).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "total_mismatch"));
    let res = api.put_multipart(&url, None, &data[100..200], None, None).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "content_range_required"));
    // A chunk with no file at all (a form without `file`, or an empty raw body) says so,
    // not that its size is wrong.
    let (ctype, body) = (
        "multipart/form-data; boundary=xyz",
        b"--xyz\r\nContent-Disposition: form-data; name=\"filename\"\r\n\r\nx.bin\r\n--xyz--\r\n".to_vec(),
    );
    let res = api.put_body(&url, "bytes 100-199/1000", ctype, body).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "file_required"), "{}", res.text());
    assert!(res.text().contains("No chunk file was submitted"), "{}", res.text());
    let res = api.put_raw(&url, "bytes 100-199/1000", Vec::new()).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "file_required"), "{}", res.text());
    let res = api.post_form(&url, &[]).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "md5_required"));
    let res = api.post_form(&url, &[("md5", "not-hex")]).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "invalid_md5"));
    let res = api.complete(&url, &md5_hex(&data)).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "upload_incomplete"));
    // At offset 100, a 0-based range whose END is TOTAL: an invalid range, not an
    // offset_mismatch that repeats the offset the client already sent.
    let res = api.put_multipart(&url, Some("bytes 100-1000/1000"), &data[100..], None, None).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "invalid_content_range"), "{}", res.text());
    assert!(res.text().contains("bytes 100-999/1000"), "{}", res.text());
    let res = api.put_multipart(&url, Some("bytes 100-999/1000"), &data[100..], None, None).await?;
    assert_eq!(res.status, 200);

    // Wrong md5: 400 checksum_mismatch, and the upload stays open (status 1, bytes kept)
    // as drf-chunked-upload leaves it, so the right md5 then completes it.
    let res = api.complete(&url, &md5_hex(b"something else")).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "checksum_mismatch"), "{}", res.text());
    let state = api.get(&url).await?.json();
    assert_eq!((state["state"].as_str(), state["status"].as_i64()), (Some("uploading"), Some(1)), "{state}");
    assert_eq!(state["offset"], 1000);
    assert_eq!(api.get("/storage/files/").await?.json()["count"], 0);
    let res = api.complete(&url, &md5_hex(&data)).await?;
    assert_eq!(res.status, 200, "the right md5 after a wrong one: {}", res.text());
    assert_eq!(res.json()["status"], 2);
    // Once complete, another md5 never gets a 200; the right one still does.
    let res = api.complete(&url, &md5_hex(b"something else")).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "checksum_mismatch"), "{}", res.text());
    assert_eq!(api.complete(&url, &md5_hex(&data)).await?.status, 200);
    let id = url.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned();
    assert!(api.download(&id, None).await?.body == data);

    // A single-request upload with a wrong md5 records nothing and keeps no bytes.
    let before: i64 = db.query_one("SELECT count(*) FROM uploads", &[]).await?.get(0);
    // Upload directories only: a worker's push scratch directory (`.push-*`) may come
    // and go meanwhile, replicating the file above.
    let upload_dirs = || -> std::collections::BTreeSet<String> {
        std::fs::read_dir(&cluster.staging)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.parse::<uuid::Uuid>().is_ok())
            .collect()
    };
    let dirs_before = upload_dirs();
    let (ctype, body) =
        ferry_tests::client::multipart_body(&[("md5", &md5_hex(b"not these bytes")), ("filename", "whole.bin")], &data);
    let res = api.post_body(new, &ctype, body).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "checksum_mismatch"), "{}", res.text());
    // It says so (it used to tell the client to complete an upload it had no id of).
    assert!(res.text().contains("Nothing was stored") && !res.text().contains("stays open"), "{}", res.text());
    let after: i64 = db.query_one("SELECT count(*) FROM uploads", &[]).await?.get(0);
    assert_eq!(after, before, "a refused single-request upload left a row");
    let left: Vec<_> = upload_dirs().difference(&dirs_before).cloned().collect();
    assert!(left.is_empty(), "a refused single-request upload left bytes in staging: {left:?}");
    Ok(())
}

/// Expiry slides: each accepted chunk moves `expires` to now + `storage.upload_expiry_secs`,
/// so an upload that keeps receiving chunks never expires mid-way.
#[tokio::test]
async fn each_accepted_chunk_moves_the_expiry_forward() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let api = cluster.client("alice", "alicealice").await?;
    let data = random_bytes(300);
    let res =
        api.put_multipart("/storage/tmp-upload/", Some("bytes 0-99/300"), &data[..100], Some("s.bin"), None).await?;
    let url = res.json()["url"].as_str().unwrap_or_default().to_owned();
    let expires = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v["expires"].as_str().unwrap_or_default()).map(|t| t.timestamp_millis())
    };
    let first = expires(&res.json())?;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let res = api.put_multipart(&url, Some("bytes 100-199/300"), &data[100..200], None, None).await?;
    assert_eq!(res.status, 200);
    let second = expires(&res.json())?;
    assert!(second >= first + 1000, "expires did not slide: {first} then {second}");
    // A refused chunk does not move it.
    let res = api.put_multipart(&url, Some("bytes 150-249/300"), &data[150..250], None, None).await?;
    assert_eq!(res.status, 400);
    assert_eq!(expires(&api.get(&url).await?.json())?, second);
    Ok(())
}

#[tokio::test]
async fn other_users_uploads_and_files_are_not_found() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let alice = cluster.client("alice", "alicealice").await?;
    let bob = cluster.client("bob", "bobbobbob").await?;
    let data = random_bytes(5000);
    let done = alice.upload("alice.txt", &data, 4096, None).await?;
    let file = done.json()["id"].as_str().unwrap_or_default().to_owned();
    let res = alice.put_raw("/storage/tmp-upload/?filename=open.bin", "bytes 0-9/100", data[..10].to_vec()).await?;
    let open = res.json()["url"].as_str().unwrap_or_default().to_owned();

    // Bob sees none of it: 404 everywhere, never 403.
    assert_eq!(bob.get(&open).await?.status, 404);
    assert_eq!(bob.put_raw(&open, "bytes 10-19/100", data[10..20].to_vec()).await?.status, 404);
    assert_eq!(bob.complete(&open, &md5_hex(&data)).await?.status, 404);
    assert_eq!(bob.get(&format!("/storage/files/{file}/")).await?.status, 404);
    assert_eq!(bob.get(&format!("/storage/download/{file}/")).await?.status, 404);
    assert_eq!(bob.delete(&format!("/storage/files/{file}/")).await?.status, 404);
    assert_eq!(bob.get("/storage/files/").await?.json()["count"], 0);
    // Nor can he hang a version on Alice's file.
    let res =
        bob.put_multipart("/storage/tmp-upload/", Some("bytes 0-9/10"), &data[..10], Some("v2"), Some(&file)).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "parent_not_found"));
    // Unknown ids are 404 too; Alice's file is untouched.
    assert_eq!(bob.get(&format!("/storage/tmp-upload/{}/", uuid::Uuid::new_v4())).await?.status, 404);
    assert_eq!(bob.get("/storage/tmp-upload/not-a-uuid/").await?.status, 404);
    assert_eq!(alice.get(&format!("/storage/files/{file}/")).await?.status, 200);
    assert_eq!(alice.get(&open).await?.json()["offset"], 10);
    // Non-admins cannot reach the admin API.
    assert_eq!(bob.get("/admin/api/nodes").await?.status, 403);
    Ok(())
}
