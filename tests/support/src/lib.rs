//! Servers for `ld`'s end-to-end tests, started in-process on `127.0.0.1:0`.
//!
//! Each server runs on a thread of its own, pushes every request it receives into a channel
//! (tests assert on what actually arrived) and returns its address with a handle that shuts
//! it down when dropped. Nothing here is shared between tests, so tests run in parallel.

pub mod auth;
pub mod cli;
pub mod echo;
pub mod grpc;
pub mod hostile;
pub mod http;
pub mod mqtt;
pub mod otlp;
pub mod session_site;
pub mod socket;
pub mod sse;
pub mod ws;
