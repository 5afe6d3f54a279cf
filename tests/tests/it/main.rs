//! Ferry's integration tests: every test runs against its own cluster of real
//! processes (see `ferry_tests::Cluster`). Run them with `deploy/dev test`.

mod admin;
mod admin_page;
mod auth;
mod bad_input;
mod download;
mod files;
mod hostile;
mod jobs;
mod nodes;
mod read_after_write;
mod readme_curl;
mod replicate_batch;
mod scale;
mod scrub;
mod sweep;
mod tus;
mod upload;
mod wal;
