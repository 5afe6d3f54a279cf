//! tus 1.0 at `/files/`, on the same pipeline as the chunked protocol: uploads in
//! chunks with per-request checksums become ordinary Ferry files (listed, versioned,
//! downloadable byte-identical through the redirect as soon as the request that completed
//! them answers, with no wait: read-after-write; deleted); an interrupted PATCH and a
//! checksum mismatch leave the upload resumable where it was; the md5 the API runs behind
//! the chunks catches up after a restart; deferred length,
//! termination, expiry headers and CORS for configured origins only.

use anyhow::Context;
use base64::Engine;
use ferry_tests::client::{Client, Res};
use ferry_tests::{md5_hex, random_bytes, Cluster, Options};
use md5::Digest;

const TUS: (&str, &str) = ("Tus-Resumable", "1.0.0");
const CHUNK: (&str, &str) = ("Content-Type", "application/offset+octet-stream");

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn sha256_b64(bytes: &[u8]) -> String {
    b64(&sha2::Sha256::digest(bytes))
}

fn md5_b64(bytes: &[u8]) -> String {
    b64(&md5::Md5::digest(bytes))
}

/// `POST /files/` with `Upload-Length` (None: deferred) and the given metadata.
async fn create(api: &Client, length: Option<usize>, metadata: &[(&str, &str)]) -> anyhow::Result<Res> {
    let metadata = metadata.iter().map(|(k, v)| format!("{k} {}", b64(v.as_bytes()))).collect::<Vec<_>>().join(",");
    let length = length.map(|l| l.to_string());
    let mut headers = vec![TUS, ("Upload-Metadata", metadata.as_str())];
    match &length {
        Some(l) => headers.push(("Upload-Length", l)),
        None => headers.push(("Upload-Defer-Length", "1")),
    }
    api.send("POST", "/files/", &headers, Vec::new()).await
}

async fn patch(api: &Client, url: &str, offset: usize, bytes: &[u8], extra: &[(&str, &str)]) -> anyhow::Result<Res> {
    let offset = offset.to_string();
    let mut headers = vec![TUS, CHUNK, ("Upload-Offset", offset.as_str())];
    headers.extend_from_slice(extra);
    api.send("PATCH", url, &headers, bytes.to_vec()).await
}

async fn offset_of(api: &Client, url: &str) -> anyhow::Result<u64> {
    let res = api.send("HEAD", url, &[TUS], Vec::new()).await?;
    anyhow::ensure!(res.status == 200, "HEAD {url}: {}", res.status);
    res.header("upload-offset").context("Upload-Offset")?.parse().context("offset")
}

fn location(res: &Res) -> anyhow::Result<String> {
    anyhow::ensure!(res.status == 201, "creation: {} {}", res.status, res.text());
    res.header("location").context("Location")
}

fn id_of(url: &str) -> String {
    url.rsplit('/').next().unwrap_or_default().to_owned()
}

/// A CORS preflight of a tus PATCH from `origin`.
async fn preflight(anonymous: &Client, origin: &str) -> anyhow::Result<Res> {
    let headers = [
        ("Origin", origin),
        ("Access-Control-Request-Method", "PATCH"),
        ("Access-Control-Request-Headers", "authorization,tus-resumable,upload-offset,content-type"),
    ];
    anonymous.send("OPTIONS", "/files/", &headers, Vec::new()).await
}

#[tokio::test]
async fn a_tus_upload_in_chunks_is_an_ordinary_ferry_file() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let api = cluster.client("alice", "alicealice").await?;

    // Discovery needs no token.
    let options = cluster.anonymous().send("OPTIONS", "/files/", &[], Vec::new()).await?;
    assert_eq!(options.status, 204);
    assert_eq!(options.header("tus-version").as_deref(), Some("1.0.0"));
    assert_eq!(options.header("tus-checksum-algorithm").as_deref(), Some("md5,sha1,sha256"));
    let extensions = options.header("tus-extension").unwrap_or_default();
    for ext in ["creation", "creation-with-upload", "creation-defer-length", "termination", "expiration", "checksum"] {
        assert!(extensions.split(',').any(|e| e == ext), "{ext} missing from {extensions}");
    }
    assert!(options.header("tus-max-size").is_some_and(|m| m.parse::<u64>().is_ok()));
    // No CORS headers unless origins are configured.
    assert!(options.header("access-control-allow-origin").is_none());

    // Wrong or missing version: 412 with the versions served; no token: 401.
    let res = api.send("POST", "/files/", &[("Upload-Length", "10")], Vec::new()).await?;
    assert_eq!((res.status, res.code().as_str()), (412, "unsupported_tus_version"), "{}", res.text());
    assert_eq!(res.header("tus-version").as_deref(), Some("1.0.0"));
    let res = cluster.anonymous().send("POST", "/files/", &[TUS, ("Upload-Length", "10")], Vec::new()).await?;
    assert_eq!(res.status, 401);
    assert_eq!(res.header("tus-resumable").as_deref(), Some("1.0.0"));
    let res = create(&api, Some(10), &[]).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "filename_required"));

    let bytes = random_bytes(3 * 100_000 + 4321);
    let res =
        create(&api, Some(bytes.len()), &[("filename", "résumé 2024.pdf"), ("filetype", "application/pdf")]).await?;
    let url = location(&res)?;
    assert!(url.starts_with(&format!("{}/files/", cluster.api)), "{url}");
    assert_eq!(res.header("upload-offset").as_deref(), Some("0"));
    let expires = res.header("upload-expires").context("Upload-Expires")?;
    chrono::DateTime::parse_from_rfc2822(&expires.replace("GMT", "+0000")).context("Upload-Expires is a date")?;
    let head = api.send("HEAD", &url, &[TUS], Vec::new()).await?;
    assert_eq!(head.header("upload-length"), Some(bytes.len().to_string()));
    assert_eq!(head.header("cache-control").as_deref(), Some("no-store"));
    assert!(head.header("upload-metadata").is_some_and(|m| m.contains("filename ")));

    // A PATCH must be an offset stream at the current offset.
    let res = api.send("PATCH", &url, &[TUS, ("Upload-Offset", "0")], bytes[..10].to_vec()).await?;
    assert_eq!((res.status, res.code().as_str()), (415, "unsupported_media_type"));
    let res = patch(&api, &url, 5, &bytes[5..10], &[]).await?;
    assert_eq!((res.status, res.header("upload-offset").as_deref()), (409, Some("0")), "{}", res.text());

    // Chunks, each with a checksum of another algorithm.
    let sums = [("sha256", sha256_b64(&bytes[..100_000])), ("md5", md5_b64(&bytes[100_000..200_000]))];
    for (i, (algorithm, sum)) in sums.iter().enumerate() {
        let checksum = format!("{algorithm} {sum}");
        let res =
            patch(&api, &url, i * 100_000, &bytes[i * 100_000..(i + 1) * 100_000], &[("Upload-Checksum", &checksum)])
                .await?;
        assert_eq!(res.status, 204, "{}", res.text());
        assert_eq!(res.header("upload-offset"), Some(((i + 1) * 100_000).to_string()));
        assert!(res.header("upload-expires").is_some());
    }
    // The last chunk as a POST standing for a PATCH (X-HTTP-Method-Override).
    let res = api
        .send(
            "POST",
            &url,
            &[TUS, CHUNK, ("Upload-Offset", "200000"), ("X-HTTP-Method-Override", "PATCH")],
            bytes[200_000..].to_vec(),
        )
        .await?;
    assert_eq!(res.status, 204, "{}", res.text());
    assert_eq!(res.header("upload-offset"), Some(bytes.len().to_string()));
    assert_eq!(offset_of(&api, &url).await?, bytes.len() as u64);

    // An ordinary file: listed with its md5, downloaded byte-identical via the redirect.
    let id = id_of(&url);
    let list = api.get("/storage/files/").await?.json();
    assert_eq!(list["count"], 1, "{list}");
    assert_eq!(list["results"][0]["id"], id.as_str());
    assert_eq!(list["results"][0]["filename"], "résumé 2024.pdf");
    assert_eq!(list["results"][0]["md5"], md5_hex(&bytes).as_str());
    // Read-after-write: the 204 of the last PATCH means downloadable at once, no wait.
    let got = api.download(&id, None).await?;
    assert_eq!(got.status, 200, "downloadable right after the last PATCH: {}", got.text());
    assert!(got.body == bytes, "download differs from the upload");
    // The page's short-lived link: the same signed node URL, as JSON.
    let link = api.send("POST", &format!("/storage/files/{id}/link"), &[], Vec::new()).await?;
    assert_eq!(link.status, 200, "{}", link.text());
    let link_url = link.json()["url"].as_str().unwrap_or_default().to_owned();
    assert!(link_url.contains("sig=") && !link_url.contains(api.token.as_deref().unwrap_or("-")), "{link_url}");
    let expires = chrono::DateTime::parse_from_rfc3339(link.json()["expires_at"].as_str().unwrap_or_default())?;
    assert!(expires.timestamp() - chrono::Utc::now().timestamp() <= 60, "a link lives at most 60 s");
    assert!(cluster.anonymous().get(&link_url).await?.body == bytes);

    // The next version, created with its whole body in one POST (creation-with-upload),
    // its whole-file md5 given in the metadata.
    let second = random_bytes(70_000);
    let length = second.len().to_string();
    let metadata = format!(
        "filename {},parent {},md5 {}",
        b64("résumé 2024.pdf".as_bytes()),
        b64(id.as_bytes()),
        b64(md5_hex(&second).as_bytes())
    );
    let res = api
        .send(
            "POST",
            "/files/",
            &[TUS, CHUNK, ("Upload-Length", &length), ("Upload-Metadata", &metadata)],
            second.clone(),
        )
        .await?;
    let url2 = location(&res)?;
    assert_eq!(res.header("upload-offset"), Some(length.clone()));
    let list = api.get("/storage/files/").await?.json();
    assert_eq!(list["count"], 1, "a version is listed under its root: {list}");
    assert_eq!(list["results"][0]["versions"][0]["id"], id_of(&url2).as_str());
    assert_eq!(list["results"][0]["versions"][0]["version"], 2);
    assert!(api.download(&id_of(&url2), None).await?.body == second);

    // Another user sees none of it.
    let bob = cluster.client("bob", "bobbobbob").await?;
    assert_eq!(bob.send("HEAD", &url, &[TUS], Vec::new()).await?.status, 404);
    assert_eq!(bob.send("DELETE", &url, &[TUS], Vec::new()).await?.status, 404);
    assert_eq!(bob.send("POST", &format!("/storage/files/{id}/link"), &[], Vec::new()).await?.status, 404);

    // Termination of a completed upload deletes its file (and, for a root, its versions).
    assert_eq!(api.send("DELETE", &url, &[TUS], Vec::new()).await?.status, 204);
    assert_eq!(api.get("/storage/files/").await?.json()["count"], 0);
    assert_eq!(api.send("HEAD", &url, &[TUS], Vec::new()).await?.status, 404);
    Ok(())
}

#[tokio::test]
async fn an_interrupted_or_corrupt_patch_leaves_the_upload_resumable_where_it_was() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let api = cluster.client("alice", "alicealice").await?;
    let bytes = random_bytes(600_000);
    let url = location(&create(&api, Some(bytes.len()), &[("filename", "big.bin")]).await?)?;
    assert_eq!(patch(&api, &url, 0, &bytes[..200_000], &[]).await?.status, 204);

    // The connection dies mid-body: nothing of that chunk counts.
    let cut = api
        .send_cut_short("PATCH", &url, &[TUS, CHUNK, ("Upload-Offset", "200000")], 200_000, &bytes[200_000..300_000])
        .await?;
    assert_ne!(cut.status, Some(204), "{}", cut.raw);
    assert_eq!(offset_of(&api, &url).await?, 200_000);

    // A wrong checksum: 460, and the upload stays at its previous offset.
    let wrong = format!("sha256 {}", sha256_b64(b"something else"));
    let res = patch(&api, &url, 200_000, &bytes[200_000..400_000], &[("Upload-Checksum", &wrong)]).await?;
    assert_eq!((res.status, res.code().as_str()), (460, "checksum_mismatch"), "{}", res.text());
    assert_eq!(res.header("upload-offset").as_deref(), Some("200000"));
    assert_eq!(offset_of(&api, &url).await?, 200_000);
    // An algorithm not offered is a 400, a malformed one too.
    let res = patch(&api, &url, 200_000, &bytes[200_000..400_000], &[("Upload-Checksum", "crc32 AAAAAA==")]).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "unsupported_checksum_algorithm"));

    // Resumed from the offset HEAD gave, it completes byte-identical.
    let right = format!("md5 {}", md5_b64(&bytes[200_000..400_000]));
    assert_eq!(patch(&api, &url, 200_000, &bytes[200_000..400_000], &[("Upload-Checksum", &right)]).await?.status, 204);
    assert_eq!(patch(&api, &url, 400_000, &bytes[400_000..], &[]).await?.status, 204);
    let id = id_of(&url);
    // Read-after-write, as above: no wait between the last 204 and the download.
    assert!(api.download(&id, None).await?.body == bytes, "not downloadable right after the last PATCH");
    // The md5 the API ran behind the chunks left out the refused and the broken chunk.
    assert_eq!(api.get(&format!("/storage/files/{id}/")).await?.json()["md5"], md5_hex(&bytes));

    // A whole-file md5 that the bytes do not have: the last chunk gets 460 and is not
    // recorded, so the upload is still open at the offset before it.
    let small = random_bytes(50_000);
    let url = location(
        &create(&api, Some(small.len()), &[("filename", "small.bin"), ("md5", &md5_hex(b"other bytes"))]).await?,
    )?;
    assert_eq!(patch(&api, &url, 0, &small[..20_000], &[]).await?.status, 204);
    let res = patch(&api, &url, 20_000, &small[20_000..], &[]).await?;
    assert_eq!((res.status, res.code().as_str()), (460, "checksum_mismatch"), "{}", res.text());
    assert_eq!(offset_of(&api, &url).await?, 20_000);
    assert_eq!(api.send("DELETE", &url, &[TUS], Vec::new()).await?.status, 204);
    assert_eq!(api.get("/storage/files/").await?.json()["count"], 1);
    Ok(())
}

#[tokio::test]
async fn deferred_length_termination_and_cors_for_configured_origins() -> anyhow::Result<()> {
    let origin = "https://app.example.com";
    let cluster = Cluster::start_with(Options {
        env: vec![("FERRY_API__CORS_ORIGINS".into(), format!("[\"{origin}\"]"))],
        ..Options::default()
    })
    .await?;
    let api = cluster.client("alice", "alicealice").await?;

    // creation-defer-length: the length comes with a later PATCH.
    let bytes = random_bytes(150_000);
    let url = location(&create(&api, None, &[("name", "later.bin")]).await?)?;
    let head = api.send("HEAD", &url, &[TUS], Vec::new()).await?;
    assert_eq!(head.header("upload-defer-length").as_deref(), Some("1"));
    assert!(head.header("upload-length").is_none());
    assert_eq!(patch(&api, &url, 0, &bytes[..100_000], &[]).await?.status, 204);
    let res = patch(&api, &url, 100_000, &bytes[100_000..], &[("Upload-Length", "99999")]).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "invalid_upload_length"), "{}", res.text());
    let length = bytes.len().to_string();
    let res = patch(&api, &url, 100_000, &bytes[100_000..], &[("Upload-Length", &length)]).await?;
    assert_eq!(res.status, 204, "{}", res.text());
    let id = id_of(&url);
    assert!(api.download(&id, None).await?.body == bytes);
    let file = api.get(&format!("/storage/files/{id}/")).await?.json();
    assert_eq!(file["filename"], "later.bin");
    assert_eq!(file["size"], bytes.len());

    // An empty file is complete at its creation.
    let url = location(&create(&api, Some(0), &[("filename", "empty.txt")]).await?)?;
    let empty = api.download(&id_of(&url), None).await?;
    assert_eq!((empty.status, empty.body.len()), (200, 0));

    // More than the declared length is refused before a byte is stored.
    let url = location(&create(&api, Some(10), &[("filename", "ten.bin")]).await?)?;
    let res = patch(&api, &url, 0, &random_bytes(11), &[]).await?;
    assert_eq!((res.status, res.code().as_str()), (413, "too_large"), "{}", res.text());
    assert_eq!(offset_of(&api, &url).await?, 0);

    // Termination of an upload in progress: 204, then 410 for everything, and the
    // staging bytes are reclaimed.
    assert_eq!(patch(&api, &url, 0, &random_bytes(5), &[]).await?.status, 204);
    assert_eq!(api.send("DELETE", &url, &[TUS], Vec::new()).await?.status, 204);
    assert_eq!(api.send("HEAD", &url, &[TUS], Vec::new()).await?.status, 410);
    assert_eq!(patch(&api, &url, 5, &random_bytes(5), &[]).await?.status, 410);
    let staged = cluster.staging.join(id_of(&url));
    ferry_tests::eventually("terminated upload's staging removed", std::time::Duration::from_secs(30), || {
        let gone = !staged.exists();
        async move { Ok(gone.then_some(())) }
    })
    .await?;

    // CORS: the configured origin gets the headers a tus browser client needs, any
    // other origin none.
    let anonymous = cluster.anonymous();
    let ok = preflight(&anonymous, origin).await?;
    assert_eq!(ok.header("access-control-allow-origin").as_deref(), Some(origin));
    let allowed = ok.header("access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
    assert!(allowed.contains("upload-offset") && allowed.contains("authorization"), "{allowed}");
    assert!(ok.header("access-control-allow-methods").is_some_and(|m| m.contains("PATCH")));
    let other = preflight(&anonymous, "https://evil.example").await?;
    assert!(other.header("access-control-allow-origin").is_none());
    let created = api
        .send(
            "POST",
            "/files/",
            &[TUS, ("Origin", origin), ("Upload-Length", "1"), ("Upload-Metadata", "filename eA==")],
            Vec::new(),
        )
        .await?;
    assert_eq!(created.status, 201);
    let exposed = created.header("access-control-expose-headers").unwrap_or_default().to_ascii_lowercase();
    assert!(exposed.contains("location") && exposed.contains("upload-offset"), "{exposed}");
    assert_eq!(api.send("DELETE", &location(&created)?, &[TUS], Vec::new()).await?.status, 204);
    Ok(())
}

#[tokio::test]
async fn partial_uploads_concatenate_into_one_ordinary_file() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let api = cluster.client("alice", "alicealice").await?;
    let bytes = random_bytes(3 * 70_000 + 123);
    let pieces = [&bytes[..70_000], &bytes[70_000..140_000], &bytes[140_000..]];

    // Parts, sent at once, each in two PATCHes; a part needs no name.
    let mut parts = Vec::new();
    for piece in pieces {
        let length = piece.len().to_string();
        let res = api
            .send("POST", "/files/", &[TUS, ("Upload-Concat", "partial"), ("Upload-Length", &length)], Vec::new())
            .await?;
        parts.push(location(&res)?);
    }
    let sent = futures::future::try_join_all(parts.iter().zip(pieces).map(|(url, piece)| {
        let api = api.clone();
        async move {
            let half = piece.len() / 2;
            let a = patch(&api, url, 0, &piece[..half], &[]).await?;
            let b = patch(&api, url, half, &piece[half..], &[]).await?;
            Ok::<_, anyhow::Error>((a.status, b.status))
        }
    }))
    .await?;
    assert!(sent.iter().all(|s| *s == (204, 204)), "{sent:?}");
    let head = api.send("HEAD", &parts[0], &[TUS], Vec::new()).await?;
    assert_eq!(head.header("upload-concat").as_deref(), Some("partial"));
    // A finished part is not a file.
    assert_eq!(api.get("/storage/files/").await?.json()["count"], 0);

    // An unfinished part, a repeated one, another user's or a length: refused.
    let unfinished = location(
        &api.send("POST", "/files/", &[TUS, ("Upload-Concat", "partial"), ("Upload-Length", "10")], Vec::new()).await?,
    )?;
    let metadata = format!("filename {}", b64(b"joined.bin"));
    let concat = |urls: &[&String]| format!("final;{}", urls.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(" "));
    for urls in [vec![&parts[0], &unfinished], vec![&parts[0], &parts[0]]] {
        let res = api
            .send(
                "POST",
                "/files/",
                &[TUS, ("Upload-Concat", &concat(&urls)), ("Upload-Metadata", &metadata)],
                Vec::new(),
            )
            .await?;
        assert_eq!((res.status, res.code().as_str()), (400, "invalid_concat"), "{}", res.text());
    }
    let bob = cluster.client("bob", "bobbobbob").await?;
    let all: Vec<&String> = parts.iter().collect();
    let res = bob
        .send("POST", "/files/", &[TUS, ("Upload-Concat", &concat(&all)), ("Upload-Metadata", &metadata)], Vec::new())
        .await?;
    assert_eq!((res.status, res.code().as_str()), (400, "invalid_concat"));

    // The final upload: complete at once, an ordinary file, byte-identical.
    let whole_md5 = format!("{metadata},md5 {}", b64(md5_hex(&bytes).as_bytes()));
    let res = api
        .send("POST", "/files/", &[TUS, ("Upload-Concat", &concat(&all)), ("Upload-Metadata", &whole_md5)], Vec::new())
        .await?;
    let url = location(&res)?;
    assert_eq!(res.header("upload-offset"), Some(bytes.len().to_string()));
    let head = api.send("HEAD", &url, &[TUS], Vec::new()).await?;
    assert_eq!(head.header("upload-length"), Some(bytes.len().to_string()));
    assert!(head.header("upload-concat").is_some_and(|c| c.starts_with("final;/files/")));
    assert_eq!(patch(&api, &url, bytes.len(), b"", &[]).await?.status, 403, "a final upload takes no PATCH");
    let id = id_of(&url);
    let list = api.get("/storage/files/").await?.json();
    assert_eq!(list["count"], 1, "{list}");
    assert_eq!(list["results"][0]["filename"], "joined.bin");
    assert_eq!(list["results"][0]["md5"], md5_hex(&bytes).as_str());
    assert!(api.download(&id, None).await?.body == bytes);
    // The parts are gone once concatenated.
    for part in &parts {
        assert_eq!(api.send("HEAD", part, &[TUS], Vec::new()).await?.status, 410);
    }
    assert_eq!(api.send("DELETE", &unfinished, &[TUS], Vec::new()).await?.status, 204);
    Ok(())
}

/// The API's md5 runs behind an upload's chunks, chained in its memory
/// (`api/src/upload/running_md5.rs`). An upload whose next request reaches a process
/// without that chain (here the API restarted between two requests) starts from the md5
/// state stored with the upload and reads the bytes after it back from the staging file:
/// a tus PATCH and the chunked protocol's completing POST alike. A wrong md5 is still
/// refused, the right one completes, and the file records the bytes' md5.
#[tokio::test]
async fn an_upload_whose_md5_chain_is_lost_catches_up_from_the_staging_file() -> anyhow::Result<()> {
    let mut cluster = Cluster::start().await?;
    let api = cluster.client("alice", "alicealice").await?;
    let bytes = random_bytes(3_000_000);
    let md5 = md5_hex(&bytes);
    let url = location(&create(&api, Some(bytes.len()), &[("filename", "tus.bin"), ("md5", &md5)]).await?)?;
    assert_eq!(patch(&api, &url, 0, &bytes[..1_000_000], &[]).await?.status, 204);
    assert_eq!(patch(&api, &url, 1_000_000, &bytes[1_000_000..2_000_000], &[]).await?.status, 204);
    let mut chunked = "/storage/tmp-upload/?filename=chunked.bin".to_owned();
    for start in (0..bytes.len()).step_by(1_000_000) {
        let range = format!("bytes {start}-{}/{}", start + 999_999, bytes.len());
        let res = api.put_raw(&chunked, &range, bytes[start..start + 1_000_000].to_vec()).await?;
        assert_eq!(res.status, 200, "{}", res.text());
        chunked = res.json()["url"].as_str().context("url")?.to_owned();
    }

    cluster.restart_api().await?;
    let api = cluster.client("alice", "alicealice").await?;
    let res = patch(&api, &url, 2_000_000, &bytes[2_000_000..], &[]).await?;
    assert_eq!(res.status, 204, "{}", res.text());
    let tus = id_of(&url);
    assert_eq!(api.get(&format!("/storage/files/{tus}/")).await?.json()["md5"], md5);
    assert!(api.download(&tus, None).await?.body == bytes);

    let res = api.complete(&chunked, &md5_hex(b"other bytes")).await?;
    assert_eq!((res.status, res.code().as_str()), (400, "checksum_mismatch"), "{}", res.text());
    let res = api.complete_patiently(&chunked, &md5).await?;
    assert_eq!(res.status, 200, "{}", res.text());
    let file = res.json()["id"].as_str().context("id")?.to_owned();
    assert_eq!(api.get(&format!("/storage/files/{file}/")).await?.json()["md5"], md5);
    assert!(api.download(&file, None).await?.body == bytes);
    Ok(())
}
