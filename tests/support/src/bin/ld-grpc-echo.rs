//! The tests' gRPC service (`ld.test.Echo`, with reflection) for benchmarks, served until
//! killed on one thread (pin it with `taskset`).
//!
//! Usage: `ld-grpc-echo [ADDR]` (default `127.0.0.1:0`); prints the address it listens on as
//! the first line of stdout.

use std::io::Write;
use std::net::SocketAddr;

use ld_test_support::grpc::{self, GrpcOptions};

fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()
        .expect("an address such as 127.0.0.1:50051");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let local = listener.local_addr().expect("address");
        let mut out = std::io::stdout().lock();
        writeln!(out, "{local}").expect("write the address");
        out.flush().expect("flush the address");
        drop(out);
        // Nobody reads the tokens: the receiver is dropped, and sends fail quietly.
        let (tokens, _) = std::sync::mpsc::channel();
        let opts = GrpcOptions {
            reflection: true,
            ..GrpcOptions::default()
        };
        grpc::serve(listener, opts, tokens, std::future::pending()).await;
    });
}
