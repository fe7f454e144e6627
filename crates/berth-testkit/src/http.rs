//! A plain HTTP GET, for tests that reach a server in a container (on a
//! loopback port or at an address on a bridge the test made).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The body of `GET /` at `addr` (`IP:PORT`), retried for about five
/// seconds while the server starts; otherwise the last answer or error.
pub fn http_get(addr: &str) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        let target = addr.parse().expect("an IP:PORT address");
        match TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
            Ok(mut stream) => {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = stream.write_all(b"GET / HTTP/1.0\r\n\r\n");
                let mut text = String::new();
                let _ = stream.read_to_string(&mut text);
                if let Some((_, body)) = text.split_once("\r\n\r\n") {
                    return body.to_string();
                }
                last = text;
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    last
}
