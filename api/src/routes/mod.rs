//! The HTTP surface, one file per resource.

pub mod admin;
pub mod download;
pub mod files;
pub mod staging;
pub mod token;
pub mod upload;
