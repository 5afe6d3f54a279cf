//! One module per admin page.

pub mod detail;
pub mod job_detail;
pub mod jobs;
pub mod login;
pub mod node_detail;
pub mod node_view;
pub mod nodes;
pub mod queues;
pub mod storage;
pub mod users;
pub mod workers;
