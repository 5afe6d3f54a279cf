//! The OpenAPI 3.0 description of the public API, served at `/docs/openapi.json`,
//! and the Redoc (`/docs/redoc/`) and Swagger UI (`/docs/swagger/`) pages that render
//! it with bundles served from this process (no CDN). The spec is written here beside the routes it describes;
//! the test suite validates it with openapi-spec-validator and runs schemathesis
//! against the live API, so a drift between the two fails a test.

use std::sync::LazyLock;

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::state::SharedState;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/docs/openapi.json", get(|| async { Json(SPEC.clone()) }))
        .route("/docs/redoc/", get(redoc_page))
        .route("/docs/redoc.standalone.js", get(redoc_bundle))
        .route("/docs/swagger/", get(swagger_page))
        .route("/docs/swagger-ui/{asset}", get(swagger_asset))
}

/// Swagger UI (the original service's `/docs/swagger/`), from this process only: its
/// bundle and stylesheet come from `api.swagger_ui_dir`, its start-up script is ours
/// (no inline script, so the CSP needs no exception), the online validator is off.
async fn swagger_page() -> impl IntoResponse {
    let page = Html(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Ferry API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/swagger-ui/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/docs/swagger-ui/ferry-init.js"></script></body></html>"#,
    );
    ([(header::CONTENT_SECURITY_POLICY, DOCS_CSP)], page)
}

/// Starts Swagger UI on our spec; `validatorUrl: null` keeps it from calling
/// validator.swagger.io.
const SWAGGER_INIT: &str = "window.ui = SwaggerUIBundle({url: '/docs/openapi.json', dom_id: '#swagger-ui', \
                            validatorUrl: null, deepLinking: true});\n";

/// `/docs/swagger-ui/<asset>`: only the three files the page loads; anything else 404.
async fn swagger_asset(
    axum::extract::State(state): axum::extract::State<SharedState>,
    axum::extract::Path(asset): axum::extract::Path<String>,
) -> Response {
    let content_type = match asset.as_str() {
        "ferry-init.js" => {
            return ([(header::CONTENT_TYPE, "application/javascript")], SWAGGER_INIT).into_response();
        }
        "swagger-ui-bundle.js" => "application/javascript",
        "swagger-ui.css" => "text/css",
        _ => return docs_asset_missing("No such docs asset."),
    };
    match tokio::fs::read(state.config.api.swagger_ui_dir.join(&asset)).await {
        Ok(bytes) => {
            ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=3600")], bytes).into_response()
        }
        Err(_) => docs_asset_missing("Swagger UI is not installed (run deploy/dev up)."),
    }
}

fn docs_asset_missing(detail: &'static str) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"detail": detail, "code": "not_found"}))).into_response()
}

/// The Redoc page. Its Content-Security-Policy allows only this origin (plus the
/// `data:`/`blob:` URLs Redoc makes itself), so nothing the page does can leave the
/// machine: not even the Redocly logo the bundle would fetch from a CDN.
async fn redoc_page() -> impl IntoResponse {
    let page = Html(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Ferry API</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="/docs/openapi.json"></redoc>
<script src="/docs/redoc.standalone.js"></script></body></html>"#,
    );
    ([(header::CONTENT_SECURITY_POLICY, DOCS_CSP)], page)
}

/// Same-origin only; Redoc builds its styles inline and its search worker from a blob.
const DOCS_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                        font-src 'self' data:; worker-src 'self' blob:; script-src 'self' blob:; \
                        connect-src 'self'; frame-ancestors 'none'";

/// The protocol, walked through with curl, at the top of the rendered docs.
const GUIDE: &str = r#"Large-file storage: chunked uploads, verified replication to storage nodes, download redirects. Compatible with the original drf-chunked-upload protocol.

## Uploading in chunks

1. `POST /api-token-auth/` with `username` and `password` gives a token; send it as `Authorization: JWT <token>`.
2. `PUT /storage/tmp-upload/` with the first chunk (multipart `file`, plus `filename` — required on the first chunk, or `?filename=` with a raw `application/octet-stream` body) and `Content-Range: bytes 0-<END>/<TOTAL>` (0-based, RFC 9110; the original's 1-based `bytes 1-N/N` also works). The answer's `url` is the upload.
3. `PUT <url>` with each next chunk at the current `offset`. A chunk whose START is not the offset gets `400 offset_mismatch` with the right `offset`; `GET` or `HEAD <url>` also tells it (`Upload-Offset` header), to resume after a failure.
4. `POST <url>` with `md5` (required: the hex md5 of the whole file) completes it.

```sh
TOKEN=$(curl -s -d username=alice -d password=secret $API/api-token-auth/ | jq -r .token)
SIZE=$(stat -c %s big.iso); CHUNK=$((8 * 1024 * 1024)); URL=$API/storage/tmp-upload/; OFF=0
while [ $OFF -lt $SIZE ]; do
  END=$(( OFF + CHUNK < SIZE ? OFF + CHUNK - 1 : SIZE - 1 ))
  tail -c +$((OFF + 1)) big.iso | head -c $((END - OFF + 1)) > chunk
  URL=$(curl -s -X PUT -H "Authorization: JWT $TOKEN" -H "Content-Range: bytes $OFF-$END/$SIZE"         -F file=@chunk -F filename=big.iso "$URL" | jq -r .url)
  OFF=$((END + 1))
done
curl -s -X POST -H "Authorization: JWT $TOKEN" -d md5=$(md5sum < big.iso | cut -d' ' -f1) "$URL"
curl -L -OJ -H "Authorization: JWT $TOKEN" $API/storage/download/<id>/
```

## Uploading with tus 1.0

`/files/` speaks tus 1.0 (https://tus.io) on the same pipeline, so any tus client (Uppy, tus-js-client, tuspy) uploads files that are listed, versioned, downloaded and deleted like the others. Send the token as `Authorization: Bearer <token>`; `Upload-Metadata` carries `filename`, optionally `parent` and the whole file's `md5`. Extensions: creation, creation-with-upload, creation-defer-length, termination, expiration, checksum (`md5`, `sha1`, `sha256` per request: a mismatch is `460` and the upload stays at its offset) and concatenation. The answer to the request carrying the last byte waits, as the completing POST does, until the file is downloadable. `X-HTTP-Method-Override` on a POST stands for PATCH, HEAD or DELETE, for clients behind proxies that drop those methods.

## What the answers promise

- **Completing POST `200`**: the md5 is verified *and* the file is downloadable now (read-after-write): until its first copy on a node, `GET /storage/download/{id}/` redirects to the verified staging copy on the API (`/staging/files/{id}?...`, signed like a node link); with `storage.write_quorum` = N the `200` waits for N verified copies on healthy nodes instead. The remaining copies follow.
- **`202`**: accepted but still checking or copying when `?wait` ran out; it ends verified on the nodes or visibly failed. POST again (same md5) to wait again, or poll `GET <url>`.
- **`400 checksum_mismatch`**: the md5 is not that of the bytes received. Nothing is lost: the upload stays open (status 1) with its bytes, and a POST with the right md5 completes it. Once complete, any other md5 is refused.
- **Download `302`**: to a signed, expiring URL on the nearest healthy node holding a verified copy; it serves HTTP ranges, `Content-Disposition` with the stored name, and conditional requests. **`409 not_ready`**: the upload is not complete yet. **`503` + `Retry-After`**: no healthy node holds a copy right now; retry later.
- Unfinished uploads expire `storage.upload_expiry_secs` (default 24 h) after their last accepted chunk.
"#;

/// The Redoc bundle, from the npm package installed at build time (`api.redoc_bundle`).
async fn redoc_bundle(axum::extract::State(state): axum::extract::State<SharedState>) -> Response {
    match tokio::fs::read(&state.config.api.redoc_bundle).await {
        Ok(bytes) => {
            let bytes = offline_bundle(bytes);
            ([(header::CONTENT_TYPE, "application/javascript"), (header::CACHE_CONTROL, "max-age=3600")], bytes)
                .into_response()
        }
        Err(_) => docs_asset_missing("The Redoc bundle is not installed (run deploy/dev up)."),
    }
}

/// The one remote asset Redoc's bundle names (its "API docs by Redocly" logo); the CSP
/// stops the fetch, but Chromium still starts it, so the URL is replaced by an empty
/// inline image and the page makes no request off this origin at all.
const REDOC_CDN_LOGO: &[u8] = b"https://cdn.redoc.ly/redoc/logo-mini.svg";
const EMPTY_SVG: &[u8] = b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E";

fn offline_bundle(bytes: Vec<u8>) -> Vec<u8> {
    let Some(at) = bytes.windows(REDOC_CDN_LOGO.len()).position(|w| w == REDOC_CDN_LOGO) else { return bytes };
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..at]);
    out.extend_from_slice(EMPTY_SVG);
    out.extend_from_slice(&bytes[at + REDOC_CDN_LOGO.len()..]);
    out
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn json_response(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn id_param(description: &str) -> Value {
    json!({"name": "id", "in": "path", "required": true, "description": description, "schema": {"type": "string", "format": "uuid"}})
}

fn content_range(required: bool) -> Value {
    json!({
        "name": "Content-Range", "in": "header", "required": required,
        "description": "`bytes START-END/TOTAL`, 0-based inclusive (RFC 9110), or the original's 1-based `bytes 1-N/N`.",
        "schema": {"type": "string", "pattern": "^bytes [0-9]+-[0-9]+/[0-9]+$"}
    })
}

fn chunk_body() -> Value {
    json!({
        "required": true,
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                "file": {"type": "string", "format": "binary"},
                "filename": {"type": "string"},
                "parent": {"type": "string", "format": "uuid"}
            }}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
        }
    })
}

/// A paginated listing (`crate::page`): `?page=N`, 404 past the end.
fn listing(summary: &str, operation_id: &str, page: &str) -> Value {
    json!({
        "summary": summary, "operationId": operation_id,
        "parameters": [{"name": "page", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1}}],
        "responses": auth_errors(json!({
            "200": json_response(&format!("A page ({page})."), page),
            "400": error_response("Malformed query."),
            "404": error_response("No such page.")
        }))
    })
}

/// `{"count", "next", "previous", "results": [item]}`.
fn page_schema(item: &str) -> Value {
    json!({"type": "object", "required": ["count", "next", "previous", "results"], "properties": {
        "count": {"type": "integer"},
        "next": {"type": "string", "nullable": true},
        "previous": {"type": "string", "nullable": true},
        "results": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}}
    }})
}

fn auth_errors(mut responses: Value) -> Value {
    if let Value::Object(map) = &mut responses {
        map.entry("401").or_insert_with(|| error_response("Missing, invalid or expired token."));
        map.entry("503").or_insert_with(|| error_response("A dependency is unavailable; retry after `Retry-After`."));
    }
    responses
}

/// A tus request header parameter.
fn tus_header(name: &str, required: bool, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "header", "required": required, "schema": schema, "description": description})
}

/// `Tus-Resumable: 1.0.0`, which every tus request but OPTIONS carries.
fn tus_resumable() -> Value {
    tus_header(
        "Tus-Resumable",
        true,
        json!({"type": "string", "enum": ["1.0.0"]}),
        "The protocol version; anything else is `412`.",
    )
}

/// The answers every tus request may get besides its own (tus 1.0 status codes).
fn tus_errors(mut responses: Value) -> Value {
    if let Value::Object(map) = &mut responses {
        map.entry("412").or_insert_with(|| error_response("`unsupported_tus_version`: `Tus-Resumable` is missing or not 1.0.0 (`Tus-Version` lists what is served)."));
    }
    auth_errors(responses)
}

/// The tus offset stream body (`PATCH`, and `POST` with creation-with-upload).
fn tus_body(required: bool) -> Value {
    json!({"required": required, "content": {"application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}}})
}

fn tus_offset_headers() -> Value {
    json!({
        "Upload-Offset": {"schema": {"type": "integer"}, "description": "Bytes received so far: where the next PATCH starts."},
        "Upload-Expires": {"schema": {"type": "string"}, "description": "When the unfinished upload expires (RFC 9110 date); it slides with each chunk."}
    })
}

/// `OPTIONS` on a tus URL: what the server supports; no auth.
fn tus_options(operation_id: &str) -> Value {
    json!({"summary": "tus discovery", "operationId": operation_id, "security": [],
        "responses": {"204": {"description": "`Tus-Version`, `Tus-Extension`, `Tus-Max-Size` (`storage.max_file_bytes`) and `Tus-Checksum-Algorithm`.", "headers": {
            "Tus-Version": {"schema": {"type": "string"}},
            "Tus-Extension": {"schema": {"type": "string"}},
            "Tus-Max-Size": {"schema": {"type": "integer"}},
            "Tus-Checksum-Algorithm": {"schema": {"type": "string"}}}}}})
}

/// `/files/`: tus 1.0 creation (README, "tus").
fn tus_collection() -> Value {
    json!({
        "options": tus_options("tusOptions"),
        "post": {
            "summary": "tus: create an upload (creation, creation-with-upload, creation-defer-length, concatenation)", "operationId": "tusCreate",
            "description": "tus 1.0 (https://tus.io/protocols/resumable-upload) on the same pipeline as the chunked protocol: the upload becomes an ordinary file (listed, versioned, downloadable, deletable) with the id at the end of `Location`. `Upload-Metadata` keys read: `filename` (or `name`), `parent` (file id: the next version of that file), `md5` (hex md5 of the whole file, checked before the last chunk is recorded). A body of type `application/offset+octet-stream` holds the first bytes. When they are all of the file, the answer waits (up to `api.complete_wait_secs`) until it is downloadable.",
            "parameters": [
                tus_resumable(),
                tus_header("Upload-Length", false, json!({"type": "integer", "minimum": 0}), "The file's size; or send `Upload-Defer-Length: 1`."),
                tus_header("Upload-Defer-Length", false, json!({"type": "integer", "enum": [1]}), "The size comes with a later PATCH."),
                tus_header("Upload-Metadata", false, json!({"type": "string"}), "`key base64value` pairs separated by commas, at most 4096 bytes."),
                tus_header("Upload-Checksum", false, json!({"type": "string"}), "`md5|sha1|sha256 <base64 digest>` of this request's body."),
                tus_header("Upload-Concat", false, json!({"type": "string"}), "`partial` (a part, never a file by itself), or `final;<url> <url> ...` joining your finished parts, in order, into one file (no `Upload-Length`; the parts are removed).")
            ],
            "requestBody": tus_body(false),
            "responses": tus_errors(json!({
                "201": {"description": "Created; `Location` is the upload's URL.", "headers": {
                    "Location": {"schema": {"type": "string"}},
                    "Upload-Offset": {"schema": {"type": "integer"}, "description": "Bytes received with this request."},
                    "Upload-Expires": {"schema": {"type": "string"}}}},
                "400": error_response("Bad `Upload-Length`/`Upload-Defer-Length`, metadata (`invalid_metadata`, `filename_required`, `invalid_filename`, `parent_not_found`, `invalid_md5`), checksum header, or `invalid_concat` (a part that is not a finished partial upload of yours, named twice, or a final with a length)."),
                "408": error_response("`body_too_slow`: the body arrived below the floor; the connection is closed."),
                "409": error_response("`upload_failed`: the assembly of a complete upload failed."),
                "413": error_response("`too_large`: file size, chunk size (`storage.max_chunk_bytes` per request) or quota exceeded (`limit`)."),
                "415": error_response("`unsupported_media_type`: a body that is not `application/offset+octet-stream`."),
                "429": error_response("`too_many_uploads`: you already have your share of uploads in progress on this server; `too_many_open_uploads`: you have `storage.max_open_uploads_per_user` uploads begun and not completed; `Retry-After` is the time until the first of them expires (complete or terminate one to go on sooner)."),
                "460": error_response("`checksum_mismatch`: the body does not match `Upload-Checksum`, or the file not its `md5`; nothing is recorded.")
            }))
        }
    })
}

/// `/files/{id}`: tus 1.0 HEAD, PATCH and termination.
fn tus_upload() -> Value {
    json!({
        "parameters": [id_param("Upload id (the future file id), the last segment of `Location`.")],
        "options": tus_options("tusUploadOptions"),
        "head": {
            "summary": "tus: where to resume", "operationId": "tusHead",
            "parameters": [tus_resumable()],
            "responses": {
                "200": {"description": "`Upload-Offset`, `Upload-Length` (or `Upload-Defer-Length: 1`), `Upload-Metadata`; `Cache-Control: no-store`.", "headers": tus_offset_headers()},
                "401": {"description": "Missing, invalid or expired token."},
                "404": {"description": "No such upload of yours, or its file was deleted."},
                "410": {"description": "The upload expired, was terminated or failed."},
                "412": {"description": "`Tus-Resumable` missing or not 1.0.0."},
                "503": {"description": "A dependency is unavailable."}
            }
        },
        "patch": {
            "summary": "tus: append bytes at Upload-Offset", "operationId": "tusPatch",
            "description": "The chunk is recorded only when its `Upload-Checksum` (and, for the last one, the metadata `md5`) matches, so a `460` leaves the upload resumable at its previous offset. The last chunk's answer waits (up to `api.complete_wait_secs`) until the file is downloadable.",
            "parameters": [
                tus_resumable(),
                tus_header("Upload-Offset", true, json!({"type": "integer", "minimum": 0}), "Where this body starts: the upload's current offset."),
                tus_header("Upload-Length", false, json!({"type": "integer", "minimum": 0}), "Declares a deferred length."),
                tus_header("Upload-Checksum", false, json!({"type": "string"}), "`md5|sha1|sha256 <base64 digest>` of this body.")
            ],
            "requestBody": tus_body(true),
            "responses": tus_errors(json!({
                "204": {"description": "Recorded; `Upload-Offset` is the new offset.", "headers": tus_offset_headers()},
                "400": error_response("Bad `Upload-Offset`, `Upload-Length` or checksum header (`unsupported_checksum_algorithm`), an empty body (`file_required`) or one cut short."),
                "403": error_response("`permission_denied`: a final (concatenated) upload takes no PATCH."),
                "404": error_response("No such upload of yours."),
                "408": error_response("`body_too_slow`: the body arrived below the floor; the connection is closed."),
                "409": error_response("`offset_mismatch`: `Upload-Offset` is not the upload's offset (`offset`), or another request is writing there; or `upload_failed`."),
                "410": error_response("The upload expired, was terminated or failed."),
                "413": error_response("`too_large`: past the upload's length, `storage.max_chunk_bytes`, the file size limit or the quota (`limit`)."),
                "415": error_response("`unsupported_media_type`: the body is not `application/offset+octet-stream`."),
                "429": error_response("`too_many_uploads`: you already have your share of uploads in progress on this server."),
                "460": error_response("`checksum_mismatch`: nothing recorded; the upload stays at `offset`.")
            }))
        },
        "delete": {
            "summary": "tus: terminate an upload (or delete its file once complete)", "operationId": "tusTerminate",
            "parameters": [tus_resumable()],
            "responses": tus_errors(json!({
                "204": {"description": "Terminated: further requests get 410 (a completed upload's file is deleted: 404)."},
                "404": error_response("No such upload of yours."),
                "409": error_response("`upload_busy`: being assembled; delete its file once complete."),
                "410": error_response("Already expired, terminated or failed.")
            }))
        }
    })
}

static SPEC: LazyLock<Value> = LazyLock::new(|| {
    let upload_query = json!([
        {"name": "filename", "in": "query", "required": false, "schema": {"type": "string"}, "description": "File name for raw bodies."},
        {"name": "parent", "in": "query", "required": false, "schema": {"type": "string", "format": "uuid"}},
    ]);
    let upload_ok = json_response("The upload.", "Upload");
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Ferry",
            "version": env!("CARGO_PKG_VERSION"),
            "description": GUIDE
        },
        "servers": [{"url": "/"}],
        "security": [{"jwt": []}],
        "paths": {
            "/api-token-auth/": {"post": {
                "summary": "Obtain a JWT", "operationId": "obtainToken", "security": [],
                "requestBody": {"required": true, "content": {
                    "application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/Credentials"}},
                    "application/json": {"schema": {"$ref": "#/components/schemas/Credentials"}}
                }},
                "responses": {
                    "200": json_response("A token.", "Token"),
                    "400": error_response("Bad credentials (`invalid_credentials`), a malformed body (`invalid_json`, `invalid_form`, `malformed_body`, `incomplete_body`) or a NUL character in a field (`invalid_text`)."),
                    "408": error_response("`body_too_slow`: the body arrived below the floor (20 s, then 500 B/s by default); the connection is closed."),
                    "413": error_response("`too_large`: the body is over 64 KiB."),
                    "429": error_response("`too_many_login_attempts`: this address or this username has used its login attempts for now (`auth.login_attempts_per_minute_per_address`, `..._per_user`); retry after `Retry-After` seconds."),
                    "503": error_response("The database is unavailable.")
                }
            }},
            "/storage/tmp-upload/": {
                "get": listing("Your uploads, newest first", "listUploads", "UploadPage"),
                "put": {
                    "summary": "Start an upload with its first chunk", "operationId": "createUpload",
                    "parameters": [content_range(true), upload_query[0], upload_query[1]],
                    "requestBody": chunk_body(),
                    "responses": auth_errors(json!({
                        "200": upload_ok,
                        "400": error_response("Bad Content-Range, size mismatch, offset mismatch (`offset`), bad filename or parent, `multipart_limit` (preamble, part header or part count over its limit)."),
                        "408": error_response("`body_too_slow`: the body arrived below the floor (20 s, then 500 B/s by default); the connection is closed."),
                        "413": error_response("Chunk, file or quota limit exceeded (`limit`)."),
                        "429": error_response("`too_many_uploads`: you already have your share of chunks in progress on this server; retry after `Retry-After`. `too_many_open_uploads` (a first chunk): you have `storage.max_open_uploads_per_user` uploads begun and not completed; `Retry-After` is the time until the first of them expires.")
                    }))
                },
                "post": {
                    "summary": "Upload a whole file in one request", "operationId": "uploadWhole",
                    "parameters": [upload_query[0], upload_query[1],
                        {"name": "md5", "in": "query", "required": false, "schema": {"type": "string"}},
                        {"name": "wait", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}}],
                    "requestBody": {"required": true, "content": {
                        "multipart/form-data": {"schema": {"type": "object", "required": ["file", "md5"], "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "filename": {"type": "string"},
                            "md5": {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"},
                            "parent": {"type": "string", "format": "uuid"}
                        }}},
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                    }},
                    "responses": auth_errors(json!({
                        "200": json_response("Stored, md5 verified, and downloadable now: `GET /storage/download/{id}/` redirects to a verified copy, on a node or (before the first node copy) the staging copy on the API (read-after-write).", "Upload"),
                        "202": json_response("Accepted but not yet downloadable (md5 check or first copies still running past `wait`): it ends verified on the nodes or visibly failed; repeat the POST with the same md5 to wait again, or poll the upload.", "Upload"),
                        "400": error_response("Missing or wrong md5 (`md5_required`, `checksum_mismatch`: nothing is recorded), bad filename."),
                        "408": error_response("`body_too_slow`: the body arrived below the floor; the connection is closed."),
                        "409": error_response("Assembly failed."),
                        "413": error_response("File or quota limit exceeded."),
                        "429": error_response("`too_many_uploads`: you already have your share of uploads in progress on this server.")
                    }))
                }
            },
            "/storage/tmp-upload/{id}/": {
                "parameters": [id_param("Upload id (the future file id).")],
                "get": {
                    "summary": "Upload state and offset (to resume)", "operationId": "getUpload",
                    "responses": auth_errors(json!({"200": upload_ok, "404": error_response("No such upload of yours.")}))
                },
                "head": {
                    "summary": "Where to resume, in headers only", "operationId": "headUpload",
                    "description": "The same as GET without a body: `Upload-Offset` is the next byte expected, `Upload-State` the state.",
                    "responses": json!({
                        "200": {"description": "The upload exists.", "headers": {
                            "Upload-Offset": {"schema": {"type": "integer"}, "description": "Bytes received so far: the next chunk's START."},
                            "Upload-State": {"schema": {"type": "string"}, "description": "uploading, assembling, complete, failed or expired."}}},
                        "401": {"description": "Missing, invalid or expired token."},
                        "404": {"description": "No such upload of yours."},
                        "503": {"description": "A dependency is unavailable."}
                    })
                },
                "put": {
                    "summary": "Append the next chunk", "operationId": "appendChunk",
                    "parameters": [content_range(true)],
                    "requestBody": chunk_body(),
                    "responses": auth_errors(json!({
                        "200": upload_ok,
                        "400": error_response("Bad Content-Range, size mismatch, TOTAL changed, offset mismatch (`offset`), upload closed."),
                        "404": error_response("No such upload of yours."),
                        "408": error_response("`body_too_slow`: the body arrived below the floor; the connection is closed."),
                        "410": error_response("The upload expired."),
                        "413": error_response("Chunk limit exceeded."),
                        "429": error_response("`too_many_uploads`: you already have your share of chunks in progress on this server.")
                    }))
                },
                "post": {
                    "summary": "Complete the upload with its md5", "operationId": "completeUpload",
                    "description": "`md5` is required, in the body (form or JSON) or as `?md5=`.",
                    "parameters": [{"name": "wait", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0},
                        "description": "Seconds to wait for the md5 verdict and the first copies (default `api.complete_wait_secs`, 30)."}],
                    "requestBody": {"required": true, "content": {
                        "application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/Md5"}},
                        "application/json": {"schema": {"$ref": "#/components/schemas/Md5"}}
                    }},
                    "responses": auth_errors(json!({
                        "200": json_response("md5 verified and downloadable now: `GET /storage/download/{id}/` redirects to a verified copy, on a node or (before the first node copy) the staging copy on the API (read-after-write).", "Upload"),
                        "202": json_response("Accepted but not yet downloadable (md5 check or first copies still running past `wait`): it ends verified on the nodes or visibly failed; repeat the POST with the same md5 to wait again, or poll GET.", "Upload"),
                        "400": error_response("`md5_required`, `invalid_md5`, `upload_incomplete`, or `checksum_mismatch`: the md5 is not that of the bytes received (or not the md5 already accepted); the upload stays open (status 1) and a POST with the right md5 completes it."),
                        "404": error_response("No such upload of yours, or its file was deleted since it completed."),
                        "408": error_response("`body_too_slow`: the body arrived below the floor; the connection is closed."),
                        "409": error_response("Assembly failed."),
                        "410": error_response("The upload expired."),
                        "413": error_response("`too_large`: the body is over 64 KiB.")
                    }))
                }
            },
            "/storage/files/": {"get": listing("Your files, newest first, each with its newest versions (at most 100) and versions_count", "listFiles", "FilePage")},
            "/storage/files/{id}/versions/": {"get": {
                "parameters": [id_param("File id."),
                    {"name": "page", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1}}],
                "summary": "All of a file's live versions, oldest first, a page at a time", "operationId": "listVersions",
                "responses": auth_errors(json!({
                    "200": json_response("A page (VersionPage); empty for a file that is itself a version.", "VersionPage"),
                    "400": error_response("Malformed query."),
                    "404": error_response("No such file of yours, or no such page.")
                }))}},
            "/storage/files/{id}/": {
                "parameters": [id_param("File id.")],
                "get": {"summary": "One file", "operationId": "getFile",
                    "responses": auth_errors(json!({"200": json_response("The file.", "File"), "404": error_response("No such file of yours.")}))},
                "delete": {"summary": "Delete a file (and a root's versions)", "operationId": "deleteFile",
                    "responses": auth_errors(json!({"204": {"description": "Deleted."}, "404": error_response("No such file of yours.")}))}
            },
            "/storage/files/{id}/link": {"post": {
                "parameters": [id_param("File id.")],
                "summary": "A short-lived signed download link (for pages)", "operationId": "downloadLink",
                "description": "The URL `GET /storage/download/{id}/` would redirect to, as JSON, valid 60 s (or `signing.url_ttl_secs` if shorter): a browser page follows it instead of putting its token in a URL.",
                "responses": auth_errors(json!({
                    "200": json_response("The signed node URL and when it expires.", "Link"),
                    "404": error_response("No such file of yours."),
                    "409": error_response("`not_ready`: the upload is not complete yet (`state`)."),
                    "503": error_response("`unavailable`: no healthy node holds a verified copy right now; retry after `Retry-After` seconds.")
                }))
            }},
            "/storage/download/{id}/": {"get": {
                "parameters": [id_param("File id.")],
                "summary": "Redirect to the nearest healthy node holding a verified copy", "operationId": "download",
                "responses": auth_errors(json!({
                    "302": {"description": "Signed, expiring URL on the nearest healthy node holding a verified copy, or, before the file's first node copy, on this API (`/staging/files/{id}`); either serves Range requests, `Content-Disposition` with the stored name and conditional requests.", "headers": {"Location": {"schema": {"type": "string"}}}},
                    "404": error_response("No such file of yours."),
                    "409": error_response("`not_ready`: the upload is not complete yet (`state`)."),
                    "503": error_response("`unavailable`: neither a healthy node nor the staging volume holds a verified copy right now; retry after `Retry-After` seconds.")
                }))
            }},
            "/staging/files/{id}": {"get": {
                "parameters": [
                    id_param("File id."),
                    {"name": "exp", "in": "query", "required": true, "description": "Expiry, Unix seconds (signed).", "schema": {"type": "string"}},
                    {"name": "sha", "in": "query", "required": false, "description": "The file's sha256, hex (signed).", "schema": {"type": "string"}},
                    {"name": "name", "in": "query", "required": false, "description": "The stored name (signed).", "schema": {"type": "string"}},
                    {"name": "sig", "in": "query", "required": true, "description": "HMAC-SHA256 of the rest, hex.", "schema": {"type": "string"}}
                ],
                "summary": "A complete file's staging copy, before its first node copy (a link from the download redirect)", "operationId": "stagingCopy",
                "security": [],
                "responses": {
                    "200": {"description": "The file's bytes (whole reads are checked against the signed sha256).", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                    "206": {"description": "The requested range (RFC 9110 §14)."},
                    "302": {"description": "The staging copy was released since the link was made: the same link, signed for the nearest healthy node copy.", "headers": {"Location": {"schema": {"type": "string"}}}},
                    "304": {"description": "Not modified (`If-None-Match`, `If-Modified-Since`)."},
                    "403": error_response("`invalid_signature` (unsigned, malformed or forged link) or `link_expired`."),
                    "404": error_response("No such file here."),
                    "412": error_response("`If-Match` / `If-Unmodified-Since` failed."),
                    "416": error_response("The range is not satisfiable."),
                    "429": error_response("This client or link has its share of downloads in flight.")
                }
            }},
            "/files/": tus_collection(),
            "/files/{id}": tus_upload(),
            "/healthz": {"get": {"summary": "Process is up", "operationId": "healthz", "security": [],
                "responses": {"200": {"description": "Up.", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/readyz": {"get": {"summary": "Database and broker reachable", "operationId": "readyz", "security": [],
                "responses": {"200": {"description": "Ready.", "content": {"application/json": {"schema": {"type": "object"}}}},
                              "503": error_response("Not ready.")}}}
        },
        "components": {
            "securitySchemes": {"jwt": {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`JWT <token>` (or `Bearer <token>`) from /api-token-auth/."}},
            "schemas": {
                "Credentials": {"type": "object", "required": ["username", "password"],
                    "properties": {"username": {"type": "string"}, "password": {"type": "string"}}},
                "Token": {"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}},
                "Md5": {"type": "object", "required": ["md5"], "properties": {"md5": {"type": "string", "pattern": "^[0-9a-fA-F]{32}$", "description": "Hex md5 of the whole file."}}},
                "Error": {"type": "object", "required": ["detail", "code"], "properties": {
                    "detail": {"type": "string"}, "code": {"type": "string"},
                    "offset": {"type": "integer"}, "limit": {"type": "integer"},
                    "retry_after": {"type": "integer"}, "state": {"type": "string"}}},
                "Upload": {"type": "object", "required": ["id", "url", "filename", "offset", "status", "state", "created_at", "expires", "user"],
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "url": {"type": "string"},
                        "file": {"type": "string", "nullable": true},
                        "filename": {"type": "string"},
                        "offset": {"type": "integer"},
                        "total_size": {"type": "integer", "nullable": true},
                        "created_at": {"type": "string", "format": "date-time"},
                        "expires": {"type": "string", "format": "date-time", "description": "When an unfinished upload expires: `storage.upload_expiry_secs` after its last accepted chunk (each chunk moves it forward)."},
                        "status": {"type": "integer", "enum": [1, 2, 3], "description": "1 uploading, 2 complete, 3 failed/expired"},
                        "state": {"type": "string", "enum": ["uploading", "assembling", "complete", "failed", "expired"]},
                        "error": {"type": "string", "nullable": true, "description": "Why it failed, expired or was reopened (a wrong md5): a fixed sentence; what operators recorded beside it (a cancel reason, an assembly's detail) stays with them."},
                        "completed_at": {"type": "string", "format": "date-time", "nullable": true},
                        "user": {"type": "integer"},
                        "parent": {"type": "string", "format": "uuid", "nullable": true}
                    }},
                "File": {"allOf": [{"$ref": "#/components/schemas/Version"}, {"type": "object",
                    "required": ["versions", "versions_count"],
                    "properties": {
                        "versions": {"type": "array", "maxItems": 100,
                            "description": "The newest live versions (at most 100), oldest first; all of them: GET /storage/files/{id}/versions/.",
                            "items": {"$ref": "#/components/schemas/Version"}},
                        "versions_count": {"type": "integer", "description": "How many live versions the file has in all."}
                    }}]},
                "Version": {"type": "object", "required": ["id", "filename", "size", "md5", "created_at", "download_url", "version", "parent"],
                    "description": "A file as listed; a version has its root as `parent`, a root none.",
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "filename": {"type": "string"},
                        "size": {"type": "integer"},
                        "md5": {"type": "string"},
                        "sha256": {"type": "string"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "parent": {"type": "string", "format": "uuid", "nullable": true},
                        "version": {"type": "integer"},
                        "download_url": {"type": "string"}
                    }},
                "VersionPage": page_schema("Version"),
                "Link": {"type": "object", "required": ["url", "expires_at"], "properties": {
                    "url": {"type": "string"},
                    "expires_at": {"type": "string", "format": "date-time"}}},
                "UploadPage": page_schema("Upload"),
                "FilePage": page_schema("File")
            }
        }
    })
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redoc_bundle_loses_its_cdn_logo() {
        let bundle = b"a=\"https://cdn.redoc.ly/redoc/logo-mini.svg\";b".to_vec();
        let out = offline_bundle(bundle);
        assert!(!out.windows(REDOC_CDN_LOGO.len()).any(|w| w == REDOC_CDN_LOGO));
        assert!(out.starts_with(b"a=\"data:image/svg+xml,") && out.ends_with(b"\";b"));
        assert_eq!(offline_bundle(b"nothing remote".to_vec()), b"nothing remote");
    }
}
