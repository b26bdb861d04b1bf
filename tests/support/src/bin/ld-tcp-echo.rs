//! A TCP echo server for benchmarks, served until killed: every byte read comes back at once.
//! One thread (pin it with `taskset`), TCP_NODELAY on every connection.
//!
//! Usage: `ld-tcp-echo [ADDR]` (default `127.0.0.1:0`); prints the address it listens on as the
//! first line of stdout.

use std::io::Write;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()
        .expect("an address such as 127.0.0.1:9002");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .expect("socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket.bind(addr).expect("bind");
        let listener = socket.listen(4096).expect("listen");
        let local = listener.local_addr().expect("address");
        let mut out = std::io::stdout().lock();
        writeln!(out, "{local}").expect("write the address");
        out.flush().expect("flush the address");
        drop(out);
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(echo(stream));
                }
                // Out of descriptors, for one: wait for some to be released.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    });
}

async fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
