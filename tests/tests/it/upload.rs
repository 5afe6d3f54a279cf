//! The upload protocol end to end: the original README's sequence, multi-chunk
//! uploads with versions, resuming, single-request uploads, concurrent chunks.

use std::time::Duration;

use ferry_tests::{md5_hex, random_bytes, Cluster};

#[tokio::test]
async fn the_original_readme_sequence_round_trips_through_the_nodes() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let api = cluster.client("admin", "adminadmin").await?;
    let bytes = random_bytes(32634);

    // Exactly the original's first chunk: legacy 1-based Content-Range, multipart.
    let res = api
        .put_multipart("/storage/tmp-upload/", Some("bytes 1-32634/32634"), &bytes, Some("some-image.png"), None)
        .await?;
    assert_eq!(res.status, 200, "{}", res.text());
    let upload = res.json();
    assert_eq!(upload["offset"], 32634);
    assert_eq!(upload["status"], 1);
    assert_eq!(upload["filename"], "some-image.png");
    let id = upload["id"].as_str().unwrap_or_default().to_owned();
    let url = upload["url"].as_str().unwrap_or_default().to_owned();
    assert_eq!(url, format!("{}/storage/tmp-upload/{id}/", cluster.api));

    let done = api.complete(&url, &md5_hex(&bytes)).await?;
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.json()["status"], 2);
    assert_eq!(done.json()["state"], "complete");

    let list = api.get("/storage/files/").await?.json();
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0]["id"], id.as_str());
    assert_eq!(list["results"][0]["download_url"], format!("{}/storage/download/{id}/", cluster.api));

    api.wait_download(&id).await?;
    let part1 = api.download(&id, Some("bytes=0-29999")).await?;
    let part2 = api.download(&id, Some("bytes=30000-32634")).await?;
    assert_eq!((part1.status, part2.status), (206, 206));
    assert_eq!([part1.body, part2.body].concat(), bytes);

    // Exactly R=2 of the 3 nodes hold a byte-identical copy, and staging is released.
    let present = cluster.wait_replicas(&id, 2).await?;
    assert_eq!(present.len(), 2);
    let holders = cluster.nodes_holding(&id);
    assert_eq!(holders.len(), 2, "copies on {holders:?}");
    for i in holders {
        assert_eq!(ferry_tests::read(&cluster.nodes[i].path_of(&id)), bytes);
    }
    ferry_tests::eventually("staging released", std::time::Duration::from_secs(20), || {
        let gone = !cluster.staging.join(&id).exists();
        async move { Ok(gone.then_some(())) }
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn multi_chunk_uploads_with_versions_and_raw_chunks() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let api = cluster.client("alice", "alicealice").await?;
    let first = random_bytes(5 * 65536 + 1234);
    let res = api.upload("report.pdf", &first, 65536, None).await?;
    assert_eq!(res.status, 200, "{}", res.text());
    let root = res.json()["id"].as_str().unwrap_or_default().to_owned();

    // The next version: raw-body chunks this time, with `parent` in the query.
    let second = random_bytes(200_000);
    let res = api
        .put_raw(
            &format!("/storage/tmp-upload/?filename=report.pdf&parent={root}"),
            "bytes 0-99999/200000",
            second[..100_000].to_vec(),
        )
        .await?;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["parent"], root.as_str());
    let url = res.json()["url"].as_str().unwrap_or_default().to_owned();
    let res = api.put_raw(&url, "bytes 100000-199999/200000", second[100_000..].to_vec()).await?;
    assert_eq!(res.json()["offset"], 200000);
    let res = api.complete(&url, &md5_hex(&second)).await?;
    assert_eq!(res.status, 200, "{}", res.text());
    let version = res.json()["id"].as_str().unwrap_or_default().to_owned();

    let list = api.get("/storage/files/").await?.json();
    assert_eq!(list["count"], 1, "versions are listed under their root: {list}");
    let versions = list["results"][0]["versions"].as_array().cloned().unwrap_or_default();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0]["id"], version.as_str());
    assert_eq!(versions[0]["version"], 2);
    assert_eq!(versions[0]["size"], 200000);

    api.wait_download(&version).await?;
    assert_eq!(api.download(&version, None).await?.body, second);
    api.wait_download(&root).await?;
    assert_eq!(api.download(&root, None).await?.body, first);
    Ok(())
}

#[tokio::test]
async fn an_interrupted_chunk_is_not_recorded_and_the_client_resumes() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let api = cluster.client("alice", "alicealice").await?;
    let bytes = random_bytes(300_000);
    let res =
        api.put_raw("/storage/tmp-upload/?filename=big.bin", "bytes 0-99999/300000", bytes[..100_000].to_vec()).await?;
    let url = res.json()["url"].as_str().unwrap_or_default().to_owned();

    // The second chunk arrives cut short: the server must not record any of it.
    let res = api.put_raw(&url, "bytes 100000-199999/300000", bytes[100_000..150_000].to_vec()).await?;
    assert_eq!(res.status, 400);
    assert_eq!(res.code(), "size_mismatch");
    let head = api.head(&url).await?;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("upload-offset").as_deref(), Some("100000"));
    assert_eq!(api.get(&url).await?.json()["offset"], 100000);

    // Resume from the reported offset.
    for (start, end) in [(100_000, 200_000), (200_000, 300_000)] {
        let res = api.put_raw(&url, &format!("bytes {start}-{}/300000", end - 1), bytes[start..end].to_vec()).await?;
        assert_eq!(res.status, 200, "{}", res.text());
    }
    let res = api.complete(&url, &md5_hex(&bytes)).await?;
    assert_eq!(res.status, 200, "{}", res.text());
    let id = res.json()["id"].as_str().unwrap_or_default().to_owned();
    api.wait_download(&id).await?;
    assert_eq!(api.download(&id, None).await?.body, bytes);
    Ok(())
}

#[tokio::test]
async fn single_request_upload_and_concurrent_chunks() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let api = cluster.client("bob", "bobbobbob").await?;

    // The whole file in one POST, md5 in the form, no Content-Range.
    let bytes = random_bytes(70_000);
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(bytes.clone()).file_name("one.bin"))
        .text("filename", "one.bin")
        .text("md5", md5_hex(&bytes));
    let res = reqwest::Client::new()
        .post(format!("{}/storage/tmp-upload/", cluster.api))
        .header("Authorization", format!("JWT {}", api.token.clone().unwrap_or_default()))
        .multipart(form)
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 200);
    let body: serde_json::Value = res.json().await?;
    assert_eq!(body["status"], 2);

    // Two PUTs racing for the same offset: exactly one wins.
    let data = random_bytes(200_000);
    let res =
        api.put_raw("/storage/tmp-upload/?filename=race.bin", "bytes 0-99999/200000", data[..100_000].to_vec()).await?;
    let url = res.json()["url"].as_str().unwrap_or_default().to_owned();
    let (a, b) = tokio::join!(
        api.put_raw(&url, "bytes 100000-199999/200000", data[100_000..].to_vec()),
        api.put_raw(&url, "bytes 100000-199999/200000", data[100_000..].to_vec()),
    );
    let mut statuses = [a?, b?].map(|r| (r.status, r.code()));
    statuses.sort();
    assert_eq!(statuses, [(200, String::new()), (400, "offset_mismatch".to_owned())]);
    let db = cluster.db().await?;
    let chunks: i64 = db
        .query_one(
            "SELECT count(*) FROM upload_chunks WHERE upload_id = $1::text::uuid",
            &[&url.trim_end_matches('/').rsplit('/').next().unwrap_or_default()],
        )
        .await?
        .get(0);
    assert_eq!(chunks, 2);
    let res = api.complete(&url, &md5_hex(&data)).await?;
    assert_eq!(res.status, 200, "{}", res.text());
    // The winner's bytes, once: the file is exactly what was sent.
    let id = res.json()["id"].as_str().unwrap_or_default().to_owned();
    api.wait_download(&id).await?;
    assert_eq!(api.download(&id, None).await?.body, data);
    Ok(())
}

#[tokio::test]
async fn a_connection_cut_mid_chunk_records_nothing_and_the_client_resumes() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let api = cluster.client("alice", "alicealice").await?;
    let bytes = random_bytes(300_000);
    let res =
        api.put_raw("/storage/tmp-upload/?filename=cut.bin", "bytes 0-99999/300000", bytes[..100_000].to_vec()).await?;
    assert_eq!(res.status, 200, "{}", res.text());
    let url = res.json()["url"].as_str().unwrap_or_default().to_owned();
    let id = res.json()["id"].as_str().unwrap_or_default().to_owned();

    // A raw chunk and then a multipart chunk die half-way: the request head announces
    // the whole 100000-byte chunk, about half of it arrives (*other* bytes than the real
    // ones), then the connection goes away. The partial bytes must neither advance the
    // offset nor end up in the file.
    let garbage = random_bytes(100_000);
    let (multipart_type, multipart) = ferry_tests::client::multipart_body(&[], &garbage);
    let raw_headers = [("Content-Type", "application/octet-stream"), ("Content-Range", "bytes 100000-199999/300000")];
    let multipart_headers =
        [("Content-Type", multipart_type.as_str()), ("Content-Range", "bytes 100000-199999/300000")];
    for (kind, headers, claimed, sent) in [
        ("raw", &raw_headers, 100_000, &garbage[..50_000]),
        ("multipart", &multipart_headers, multipart.len(), &multipart[..multipart.len() / 2]),
    ] {
        let cut = api.put_cut_short(&url, headers, claimed, sent).await?;
        // A client error (the API says `incomplete_body`) or a closed connection; never
        // a success, never a 5xx.
        assert!(cut.status.is_none_or(|s| (400..500).contains(&s)), "{kind} chunk cut short: {}", cut.raw);
        let head = api.head(&url).await?;
        assert_eq!(head.status, 200);
        assert_eq!(head.header("upload-offset").as_deref(), Some("100000"), "{kind}");
        let upload = api.get(&url).await?.json();
        assert_eq!((upload["offset"].as_i64(), upload["state"].as_str()), (Some(100_000), Some("uploading")), "{kind}");
    }
    let db = cluster.db().await?;
    let chunks: i64 =
        db.query_one("SELECT count(*) FROM upload_chunks WHERE upload_id = $1::text::uuid", &[&id]).await?.get(0);
    assert_eq!(chunks, 1, "only the first chunk is recorded");

    // The client resumes from the reported offset. Until the server has let go of the dead
    // request, the retry may be told the (unchanged) offset: a real client retries then.
    let resumed = ferry_tests::eventually("the resumed chunk accepted", Duration::from_secs(30), || {
        let api = api.clone();
        let url = url.clone();
        let chunk = bytes[100_000..200_000].to_vec();
        async move {
            let res = api.put_raw(&url, "bytes 100000-199999/300000", chunk).await?;
            if res.status == 200 {
                return Ok(Some(res));
            }
            anyhow::ensure!(
                (res.status, res.code().as_str(), res.json()["offset"].as_i64())
                    == (400, "offset_mismatch", Some(100_000)),
                "resuming: {} {}",
                res.status,
                res.text()
            );
            Ok(None)
        }
    })
    .await?;
    assert_eq!(resumed.json()["offset"], 200_000);
    let res = api.put_multipart(&url, Some("bytes 200000-299999/300000"), &bytes[200_000..], None, None).await?;
    assert_eq!(res.status, 200, "{}", res.text());
    let res = api.complete(&url, &md5_hex(&bytes)).await?;
    assert_eq!((res.status, res.json()["state"].as_str()), (200, Some("complete")), "{}", res.text());
    api.wait_download(&id).await?;
    assert_eq!(api.download(&id, None).await?.body, bytes);
    Ok(())
}

/// Versions of one file completed at once, round after round, get distinct numbers
/// that increase with completion: 18 versions (six at a time, three rounds) are
/// numbered 2..=19 with no repeat (the database enforces it).
#[tokio::test]
async fn concurrent_versions_get_distinct_increasing_numbers() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(ferry_tests::Options { workers: 2, ..Default::default() }).await?;
    let api = cluster.client("alice", "alicealice").await?;
    let root = api.upload("doc.txt", &random_bytes(1000), 1000, None).await?.json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut seen = Vec::new();
    for round in 0..3 {
        // Six uploads of the next version, all received, then completed at once.
        let mut pending = Vec::new();
        for i in 0..6 {
            let data = random_bytes(2000 + round * 10 + i);
            let range = format!("bytes 0-{}/{}", data.len() - 1, data.len());
            let res =
                api.put_multipart("/storage/tmp-upload/", Some(&range), &data, Some("doc.txt"), Some(&root)).await?;
            assert_eq!(res.status, 200, "{}", res.text());
            pending.push((res.json()["url"].as_str().unwrap_or_default().to_owned(), ferry_tests::md5_hex(&data)));
        }
        let mut completing = tokio::task::JoinSet::new();
        for (url, md5) in pending {
            let api = api.clone();
            completing.spawn(async move { api.complete_patiently(&url, &md5).await });
        }
        while let Some(done) = completing.join_next().await {
            let res = done??;
            assert_eq!(res.status, 200, "{}", res.text());
        }
        let listed = api.get(&format!("/storage/files/{root}/")).await?.json();
        let versions: Vec<i64> =
            listed["versions"].as_array().into_iter().flatten().filter_map(|v| v["version"].as_i64()).collect();
        seen = versions;
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, (2..=19).collect::<Vec<i64>>(), "versions as listed: {seen:?}");
    Ok(())
}

/// The hostile-client trial of stop 27: every version of a file was listed with it, so
/// a chain of 1,001 versions made one listing 393 KB (and 100 readers that never read
/// it held 40 MB of the API). A listing now carries a root's newest 100 versions and
/// `versions_count`; `GET /storage/files/<id>/versions/` pages through all of them,
/// oldest first.
#[tokio::test]
async fn a_long_version_chain_is_listed_bounded_and_paged() -> anyhow::Result<()> {
    let cluster =
        Cluster::start_with(ferry_tests::Options { nodes: 0, register_nodes: false, ..Default::default() }).await?;
    let api = cluster.client("alice", "alicealice").await?;
    let root = api.upload("chain.txt", &random_bytes(100), 100, None).await?.json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    anyhow::ensure!(!root.is_empty(), "no root uploaded");
    // Versions 2..=105, as completed uploads with `parent` record them (the listing
    // reads nothing else of them).
    let db = cluster.db().await?;
    db.execute(
        "INSERT INTO files (id, user_id, filename, size, md5, sha256, parent_id, version, created_at)
         SELECT gen_random_uuid(), u.id, 'chain.txt', 1, repeat('0', 32), repeat('0', 64), $1::text::uuid, v,
                now() + v * interval '1 ms'
         FROM users u, generate_series(2, 105) v WHERE u.username = 'alice'",
        &[&root],
    )
    .await?;
    let numbers = |file: &serde_json::Value, key: &str| -> Vec<i64> {
        file[key].as_array().into_iter().flatten().filter_map(|v| v["version"].as_i64()).collect()
    };
    let listed = api.get("/storage/files/").await?.json();
    let first = &listed["results"][0];
    assert_eq!(first["id"], root.as_str(), "{listed}");
    assert_eq!(first["versions_count"], 104);
    assert_eq!(numbers(first, "versions"), (6..=105).collect::<Vec<_>>(), "the newest 100, oldest first");
    let shown = api.get(&format!("/storage/files/{root}/")).await?.json();
    assert_eq!((numbers(&shown, "versions").len(), shown["versions_count"].as_i64()), (100, Some(104)));

    // All of them, a page (api.page_size, 50) at a time.
    let mut all = Vec::new();
    let mut page = Some(format!("/storage/files/{root}/versions/"));
    while let Some(path) = page.take() {
        let res = api.get(&path).await?;
        assert_eq!(res.status, 200, "{path}: {}", res.text());
        let body = res.json();
        assert_eq!(body["count"], 104);
        all.extend(numbers(&body, "results"));
        page = body["next"].as_str().map(|next| next.trim_start_matches(&cluster.api).to_owned());
    }
    assert_eq!(all, (2..=105).collect::<Vec<_>>());
    let res = api.get(&format!("/storage/files/{root}/versions/?page=4")).await?;
    assert_eq!(res.status, 404, "past the last page: {}", res.text());
    // Nobody else's chain.
    let bob = cluster.client("bob", "bobbobbob").await?;
    let res = bob.get(&format!("/storage/files/{root}/versions/")).await?;
    assert_eq!((res.status, res.code().as_str()), (404, "not_found"), "{}", res.text());
    // Without nodes the staging copy is the root's only one: deleting the chain
    // releases it (the clean-end check wants staging empty).
    let res = api.delete(&format!("/storage/files/{root}/")).await?;
    assert!(matches!(res.status, 200 | 204), "{}", res.text());
    Ok(())
}

/// A chunk is recorded (offset advanced, digest stored, lease cleared, chunk row
/// inserted: one statement) only under the lease that was taken for its offset, and
/// only once: a stale or foreign token, or the wrong start, records nothing at all.
#[tokio::test]
async fn a_chunk_is_recorded_only_under_its_lease_and_all_at_once() -> anyhow::Result<()> {
    use ferry_shared::types::{ByteSize, FileId, UserId};
    use ferry_store::uploads::{self, Chunk};

    let cluster = Cluster::start().await?;
    let api = cluster.client("alice", "alicealice").await?;
    let res = api.put_raw("/storage/tmp-upload/?filename=lease.bin", "bytes 0-99/300", random_bytes(100)).await?;
    assert_eq!(res.status, 200, "{}", res.text());
    let id = FileId(res.json()["id"].as_str().unwrap_or_default().parse()?);
    let db = ferry_tests::store_client(&cluster.db_url).await?;
    let user = UserId(db.query_one("SELECT id FROM users WHERE username = 'alice'", &[]).await?.get(0));
    let recorded = async || -> anyhow::Result<(i64, i64, bool)> {
        let row = db
            .query_one(
                "SELECT u.\"offset\", (SELECT count(*) FROM upload_chunks c WHERE c.upload_id = u.id),
                        u.writer IS NULL
                 FROM uploads u WHERE u.id = $1",
                &[&id.0],
            )
            .await?;
        Ok((row.get(0), row.get(1), row.get(2)))
    };
    let chunk = |start: u64| Chunk {
        start: ByteSize(start),
        size: ByteSize(100),
        md5_state: Some((b"m".as_slice(), ByteSize(start + 50))),
        sha256_state: b"s",
        expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
    };

    let token = uuid::Uuid::new_v4();
    assert!(uploads::take_lease(&db, id, user, ByteSize(100), token, 60.0).await?.is_some());
    assert_eq!(recorded().await?, (100, 1, false));
    assert!(uploads::record_chunk(&db, id, uuid::Uuid::new_v4(), &chunk(100)).await?.is_none(), "another token");
    assert!(uploads::record_chunk(&db, id, token, &chunk(0)).await?.is_none(), "another start");
    assert_eq!(recorded().await?, (100, 1, false), "nothing of a refused chunk is written");
    let upload = uploads::record_chunk(&db, id, token, &chunk(100)).await?;
    assert_eq!(upload.map(|u| u.offset), Some(ByteSize(200)), "the upload as recorded comes back");
    assert_eq!(recorded().await?, (200, 2, true), "offset, chunk row and lease in one go");
    // The md5 state, which may lag the offset, is stored only when it covers more.
    let md5_offset = async || -> anyhow::Result<i64> {
        Ok(db.query_one("SELECT md5_offset FROM uploads WHERE id = $1", &[&id.0]).await?.get(0))
    };
    assert_eq!(md5_offset().await?, 150);
    let token = uuid::Uuid::new_v4();
    assert!(uploads::take_lease(&db, id, user, ByteSize(200), token, 60.0).await?.is_some());
    let older = Chunk { md5_state: Some((b"o".as_slice(), ByteSize(50))), ..chunk(200) };
    assert!(uploads::record_chunk(&db, id, token, &older).await?.is_some());
    assert_eq!(md5_offset().await?, 150, "an older md5 state does not replace a newer one");
    let state: Vec<u8> = db.query_one("SELECT md5_state FROM uploads WHERE id = $1", &[&id.0]).await?.get(0);
    assert_eq!(state, b"m");
    assert!(uploads::record_chunk(&db, id, token, &chunk(300)).await?.is_none(), "the lease went with the chunk");
    assert_eq!(recorded().await?, (300, 3, true));
    Ok(())
}
