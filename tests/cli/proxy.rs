//! A TCP proxy a fault test controls: cut, it plays a server that stopped
//! (from the client's side a stopped server and a cut connection are the
//! same closed socket); frozen, a server that hangs. Cutting our own proxy
//! stops nobody else's test on the shared server.
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Forwards 127.0.0.1:`port` to `target` until cut (closed) or frozen
/// (connections stay open but nothing more is forwarded).
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    frozen: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    /// Connections forwarded so far.
    accepted: Arc<AtomicUsize>,
}

impl Proxy {
    pub fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let frozen = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (cut2, open2, frozen2) = (cut.clone(), open.clone(), frozen.clone());
        let accepted = Arc::new(AtomicUsize::new(0));
        let accepted2 = accepted.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let mut open = open2.lock().unwrap();
                if cut2.load(Ordering::SeqCst) {
                    continue; // both sockets close here
                }
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                accepted2.fetch_add(1, Ordering::SeqCst);
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    frozen2.clone(),
                );
                pipe(server, client, frozen2.clone());
            }
        });
        Proxy {
            port,
            cut,
            frozen,
            open,
            accepted,
        }
    }

    /// How many connections it has forwarded.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Stop forwarding, keeping every connection open: a server that hangs.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Close every connection and refuse new ones, as a stopped server would.
    pub fn cut(&self) {
        let mut open = self.open.lock().unwrap();
        self.cut.store(true, Ordering::SeqCst);
        for s in open.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, frozen: Arc<AtomicBool>) {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if frozen.load(Ordering::SeqCst) {
                // Swallow it; the sockets stay open until the test ends.
                continue;
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// `host:port` of a server URL (`scheme://[user:pass@]host:port/...`).
fn host_port(url: &str) -> &str {
    let rest = &url[url.find("://").unwrap() + 3..];
    let rest = &rest[rest.find('@').map_or(0, |i| i + 1)..];
    &rest[..rest.find('/').unwrap_or(rest.len())]
}

/// A loopback port nobody listens on.
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback port whose listener accepts connections and holds them open,
/// saying nothing: a hung server, or a half-open load balancer.
pub fn silent_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    port
}

/// A proxy to the server of `url`, and `url` pointed at the proxy instead.
pub fn in_front_of(url: &str) -> (Proxy, String) {
    let target = host_port(url).to_string();
    let proxy = Proxy::start(target.clone());
    let via = url.replace(&target, &format!("127.0.0.1:{}", proxy.port));
    (proxy, via)
}

/// The server stops while a command runs with its cache reached through
/// `proxy` (`var` = `via`): the command's output and exit code come through
/// intact, with one warning line, and nothing is stored; then, reached
/// directly (`var` = `direct`), the same run stores. Returns the warning.
pub fn server_gone_mid_run(
    env: &crate::harness::Env,
    proxy: &Proxy,
    var: &str,
    via: &str,
    direct: &str,
) -> String {
    use crate::harness::*;
    let script = format!(
        "echo $$ >> \"$COUNT\"; printf 'before\\n'; {}; printf 'after\\n'; printf 'e\\n' >&2; exit 5",
        until_go()
    );
    let mut cmd = env.run_sh(&["--cache-failures"], &script);
    cmd.env(var, via);
    let (child, lines) = spawn_watching_stderr(cmd);
    // The command runs: cachier has looked up, claimed and is spooling.
    await_until("the command runs", || env.runs() == 1);
    proxy.cut();
    touch(&env.path("go"));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(out.stdout, b"before\nafter\n");
    let stderr: Vec<String> = lines.iter().collect();
    assert_eq!(stderr[0], "e", "{stderr:?}");
    assert_eq!(stderr.len(), 2, "one warning line: {stderr:?}");
    assert!(stderr[1].starts_with("cachier: warning: "), "{stderr:?}");
    // Nothing half-written was stored; the server still serves others.
    assert_eq!(env.count_entries(), 0);
    env.run_sh(&["--cache-failures"], &script)
        .env(var, direct)
        .output()
        .unwrap();
    assert_eq!((env.runs(), env.count_entries()), (2, 1));
    stderr[1].clone()
}

/// The server hangs (connections stay open, nothing more comes back) while
/// a command runs with its cache reached through `proxy` (`var` = `via`):
/// the run ends within `bound` of it, with the command's output and exit
/// code intact and one warning line, and nothing is stored; then, reached
/// directly (`var` = `direct`), the same run stores (nothing was left
/// locked). Returns the warning.
pub fn server_hangs_mid_run(
    env: &crate::harness::Env,
    proxy: &Proxy,
    (var, via, direct): (&str, &str, &str),
    bound: std::time::Duration,
) -> String {
    use crate::harness::*;
    let script = format!(
        "echo $$ >> \"$COUNT\"; printf 'before\\n'; {}; printf 'after\\n'; printf 'e\\n' >&2; exit 3",
        until_go()
    );
    let mut cmd = env.run_sh(&["--cache-failures"], &script);
    cmd.env(var, via);
    let (child, lines) = spawn_watching_stderr(cmd);
    await_until("the command runs", || env.runs() == 1);
    proxy.freeze();
    touch(&env.path("go"));
    // The bound runs from the moment the server hangs.
    let out = wait_within(child, bound);
    let (status, stdout) = (out.status, out.stdout);
    assert_eq!(status.code(), Some(3));
    assert_eq!(stdout, b"before\nafter\n");
    let stderr: Vec<String> = lines.iter().collect();
    assert_eq!(stderr[0], "e", "{stderr:?}");
    assert_eq!(stderr.len(), 2, "one warning line: {stderr:?}");
    assert!(stderr[1].starts_with("cachier: warning: "), "{stderr:?}");
    assert_eq!(env.count_entries(), 0);
    let mut again = env.run_sh(&["--cache-failures"], &script);
    again.env(var, direct);
    let (again, _) = output_within(again, std::time::Duration::from_secs(30));
    assert_eq!(again.status.code(), Some(3));
    assert_eq!((env.runs(), env.count_entries()), (2, 1));
    stderr[1].clone()
}
