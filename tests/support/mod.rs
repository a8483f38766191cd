//! Helpers shared by the end-to-end tests; each test binary uses part of them.
#![allow(dead_code)]

pub mod fixture;
pub mod torch_file;
