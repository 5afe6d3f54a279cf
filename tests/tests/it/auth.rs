//! Tokens: good ones work, everything else is 401 with WWW-Authenticate.

use base64::Engine;
use ferry_tests::Cluster;
use serde_json::json;

#[tokio::test]
async fn tokens_are_checked_strictly() -> anyhow::Result<()> {
    let cluster =
        Cluster::start_with(ferry_tests::Options { nodes: 0, register_nodes: false, ..Default::default() }).await?;
    let anon = cluster.anonymous();

    // Form and JSON logins; unknown user and wrong password answer alike.
    let res = anon.post_json("/api-token-auth/", &json!({"username": "alice", "password": "alicealice"})).await?;
    assert_eq!(res.status, 200);
    for (user, pass) in [("alice", "wrong-password"), ("nobody", "alicealice")] {
        let res = anon.post_form("/api-token-auth/", &[("username", user), ("password", pass)]).await?;
        assert_eq!((res.status, res.code().as_str()), (400, "invalid_credentials"));
    }

    let res = anon.get("/storage/files/").await?;
    assert_eq!(res.status, 401);
    assert!(res.header("www-authenticate").is_some());

    let good = cluster.client("alice", "alicealice").await?;
    assert_eq!(good.get("/storage/files/").await?.status, 200);
    let token = good.token.clone().unwrap_or_default();
    let bearer = anon.get_with("/storage/files/", &[("Authorization", &format!("Bearer {token}"))]).await?;
    assert_eq!(bearer.status, 200);

    // alg: none with Alice's own claims.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = token.split('.').nth(1).unwrap_or_default();
    let none = format!("{}.{payload}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#));
    // Expired, but correctly signed.
    let claims: serde_json::Value = serde_json::from_slice(&b64.decode(payload)?)?;
    let mut expired_claims = claims.clone();
    expired_claims["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &expired_claims,
        &jsonwebtoken::EncodingKey::from_secret(cluster.jwt_secret.as_bytes()),
    )?;
    // Signed with another secret.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"not the secret"),
    )?;
    for bad in [none, expired, forged, "garbage".to_owned()] {
        let res = good.with_token(&bad).get("/storage/files/").await?;
        assert_eq!(res.status, 401, "{bad}");
        assert!(res.header("www-authenticate").is_some());
        assert_eq!(res.code(), "not_authenticated");
    }
    Ok(())
}
