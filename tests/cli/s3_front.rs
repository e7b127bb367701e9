//! A loopback HTTP front for the s3 fault tests: it reads each request
//! whole, then answers it with an S3 error, forwards it to the real server
//! (less chosen headers), or holds it unanswered (a server that stalls
//! mid-upload), as the test picks by the request's number and line.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// What the front does with one request.
pub enum Answer {
    Forward,
    Fail,
    /// Keep the connection open and never answer; the request line is sent
    /// on the front's `held` channel.
    Hold,
}

pub struct Front {
    pub url: String,
    /// Requests seen (moto closes every connection after one request).
    pub seen: Arc<AtomicUsize>,
    /// The request lines held, as they arrive.
    pub held: mpsc::Receiver<String>,
}

/// A front whose first `fail` requests get `status` with S3 error `code`
/// (and `Connection: close`); later ones are forwarded to `target` (none if
/// `None`), less any header named in `strip`.
pub fn front(
    status: u16,
    code: &'static str,
    fail: usize,
    target: Option<String>,
    strip: &'static [&'static str],
) -> Front {
    front_failing(status, code, target, strip, move |n, _| n < fail)
}

/// [`front`], failing the requests `fails` picks by their number and
/// request line.
pub fn front_failing(
    status: u16,
    code: &'static str,
    target: Option<String>,
    strip: &'static [&'static str],
    fails: impl Fn(usize, &str) -> bool + Send + 'static,
) -> Front {
    front_answering(status, code, target, strip, move |n, line| {
        if fails(n, line) {
            Answer::Fail
        } else {
            Answer::Forward
        }
    })
}

/// The front in full: `answer` picks what each request gets (a request to
/// forward with no `target` fails).
pub fn front_answering(
    status: u16,
    code: &'static str,
    target: Option<String>,
    strip: &'static [&'static str],
    answer: impl Fn(usize, &str) -> Answer + Send + 'static,
) -> Front {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let (hold, held) = mpsc::channel();
    std::thread::spawn(move || {
        // Held connections stay open as long as the front lives.
        let mut holding = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            let Some(request) = read_request(&mut conn) else {
                continue;
            };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let line = String::from_utf8_lossy(&request[..request.len().min(4096)]);
            let line = line.lines().next().unwrap_or("").to_string();
            match (answer(n, &line), &target) {
                (Answer::Forward, Some(t)) => forward(conn, t, &without(&request, strip)),
                (Answer::Hold, _) => {
                    holding.push(conn);
                    let _ = hold.send(line);
                }
                _ => {
                    let body = format!("<Error><Code>{code}</Code><Message>test</Message></Error>");
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            }
        }
    });
    Front { url, seen, held }
}

/// Whether `line` is a PUT of part `n` of a multipart upload.
pub fn puts_part(line: &str, n: u32) -> bool {
    let query = line.split(['?', ' ']).nth(2).unwrap_or("");
    let want = format!("partNumber={n}");
    line.starts_with("PUT ") && query.split('&').any(|p| p == want)
}

/// One request's head and body, read whole.
fn read_request(conn: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = conn.read(&mut byte).ok().filter(|&n| n > 0)?;
                buf.extend_from_slice(&byte[..n]);
            }
            return Some(buf);
        }
        let n = conn.read(&mut byte).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&byte[..n]);
    }
}

/// `request` less the header lines named in `strip` (lowercase).
fn without(request: &[u8], strip: &[&str]) -> Vec<u8> {
    let end = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&request[..end]);
    let kept: Vec<&str> = head
        .split("\r\n")
        .filter(|l| {
            !strip
                .iter()
                .any(|s| l.to_ascii_lowercase().starts_with(&format!("{s}:")))
        })
        .collect();
    let mut out = kept.join("\r\n").into_bytes();
    out.extend_from_slice(&request[end..]);
    out
}

fn forward(client: TcpStream, target: &str, first: &[u8]) {
    let Ok(mut server) = TcpStream::connect(target) else {
        return;
    };
    if server.write_all(first).is_err() {
        return;
    }
    let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut server);
    });
    std::thread::spawn(move || {
        let mut client = client;
        let _ = std::io::copy(&mut s2, &mut client);
    });
}
