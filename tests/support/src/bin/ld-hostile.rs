//! Serves the hostile servers of `ld_test_support::hostile` until killed: prints the
//! HTTP/1.1 server's address on the first line of stdout and the h2c server's on the second.

use std::io::Write;

fn main() {
    let (h1, _h1) = ld_test_support::hostile::serve_hostile();
    let (h2, _h2) = ld_test_support::hostile::serve_hostile_h2();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{h1}\n{h2}").expect("write the addresses");
    out.flush().expect("flush the addresses");
    drop(out);
    loop {
        std::thread::park();
    }
}
