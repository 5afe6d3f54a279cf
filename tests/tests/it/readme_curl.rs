//! The original README's "Testing" section, run with the real `curl` binary, typed as
//! written there: the compatibility contract for existing scripts. Skipped (with a note)
//! when `curl` is not installed.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use ferry_tests::{md5_hex, random_bytes, Cluster};
use serde_json::Value;

/// Runs `curl -sS <args> -w '\n%{http_code}'` in `dir`; returns (status, body).
async fn curl(dir: &Path, args: &[&str]) -> Result<(u16, String)> {
    let out = tokio::process::Command::new("curl")
        .current_dir(dir)
        .arg("-sS")
        .args(args)
        .args(["-w", "\n%{http_code}"])
        .output()
        .await
        .context("running curl")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(out.status.success(), "curl {args:?}: {} {stdout}", String::from_utf8_lossy(&out.stderr));
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Ok((code.trim().parse().context("curl's %{http_code}")?, body.to_owned()))
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn curl_installed() -> bool {
    std::process::Command::new("curl").arg("--version").output().is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn the_original_readme_sequence_with_the_curl_binary() -> Result<()> {
    if !curl_installed() {
        eprintln!("curl is not installed: skipping the curl version of the README sequence");
        return Ok(());
    }
    let cluster = Cluster::start().await?;
    let base = cluster.api.clone();
    let dir = cluster.dir.join("curl");
    std::fs::create_dir_all(&dir)?;
    let image = random_bytes(32634);
    std::fs::write(dir.join("some-image.png"), &image)?;

    // curl -X POST -d "username=admin&password=adminadmin" http://127.0.0.1:8000/api-token-auth/
    let (status, body) =
        curl(&dir, &["-X", "POST", "-d", "username=admin&password=adminadmin", &format!("{base}/api-token-auth/")])
            .await?;
    assert_eq!(status, 200, "{body}");
    let token = json(&body)["token"].as_str().context("token")?.to_owned();
    let auth = format!("Authorization: JWT {token}");

    // curl -H "Authorization: JWT <YOUR_TOKEN>" -H "Content-Range: bytes 1-32634/32634"
    //      -F file=@some-image.png -F filename=some-image.png -X PUT .../storage/tmp-upload/
    let (status, body) = curl(
        &dir,
        &[
            "-H",
            &auth,
            "-H",
            "Content-Range: bytes 1-32634/32634",
            "-F",
            "file=@some-image.png",
            "-F",
            "filename=some-image.png",
            "-X",
            "PUT",
            &format!("{base}/storage/tmp-upload/"),
        ],
    )
    .await?;
    assert!(status == 200 || status == 201, "{status} {body}");
    let upload = json(&body);
    assert_eq!((upload["offset"].as_i64(), upload["status"].as_i64()), (Some(32634), Some(1)), "{body}");
    assert_eq!(upload["filename"], "some-image.png");
    for field in ["id", "url", "file", "created_at", "expires", "completed_at", "user", "parent"] {
        assert!(upload.get(field).is_some(), "the upload lacks `{field}`: {body}");
    }
    let id = upload["id"].as_str().context("id")?.to_owned();
    let url = upload["url"].as_str().context("url")?.to_owned();
    assert_eq!(url, format!("{base}/storage/tmp-upload/{id}/"));

    // The README's completing POST as printed has no md5, which its prose requires: the
    // API says so in a way the client can act on, and keeps the upload open.
    let (status, body) = curl(&dir, &["-H", &auth, "-X", "POST", &url]).await?;
    assert_eq!((status, json(&body)["code"].as_str()), (400, Some("md5_required")), "{body}");
    let (status, body) =
        curl(&dir, &["-H", &auth, "-X", "POST", "-d", &format!("md5={}", md5_hex(&image)), &url]).await?;
    assert_eq!((status, json(&body)["status"].as_i64()), (200, Some(2)), "{body}");

    // curl -H "Authorization: JWT <YOUR_TOKEN>" http://127.0.0.1:8000/storage/files/
    let (status, body) = curl(&dir, &["-H", &auth, &format!("{base}/storage/files/")]).await?;
    assert_eq!(status, 200, "{body}");
    let list = json(&body);
    assert_eq!(list["count"], 1, "{body}");
    let listed = &list["results"][0];
    assert_eq!((listed["id"].as_str(), listed["filename"].as_str()), (Some(id.as_str()), Some("some-image.png")));
    let download_url = listed["download_url"].as_str().context("download_url")?.to_owned();
    assert_eq!(download_url, format!("{base}/storage/download/{id}/"));
    assert_eq!(listed["versions"], serde_json::json!([]));

    // Replication runs after the verified POST: wait (bounded) until a copy is served.
    cluster.client("admin", "adminadmin").await?.wait_download(&id).await?;

    // curl -L -H "Authorization: JWT <YOUR_TOKEN>" --range 0-29999 -o img.part1 <download_url>
    // curl -L -H "Authorization: JWT <YOUR_TOKEN>" --range 30000-32634 -o img.part2 <download_url>
    for (range, part) in [("0-29999", "img.part1"), ("30000-32634", "img.part2")] {
        let (status, _) = curl(&dir, &["-L", "-H", &auth, "--range", range, "-o", part, &download_url]).await?;
        assert_eq!(status, 206, "range {range}");
    }
    // cat img.part? > img.png
    let joined = [std::fs::read(dir.join("img.part1"))?, std::fs::read(dir.join("img.part2"))?].concat();
    assert_eq!(joined.len(), image.len());
    assert!(joined == image, "the two ranged downloads, joined, differ from the upload");
    Ok(())
}
