//! A cachier process a test talks to while it runs: it starts with the
//! default action for INT, TERM, HUP and QUIT whatever the suite inherited
//! (`nohup`, a background job), and every wait on it has a deadline.
use std::io::Read;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// How long any one wait may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

pub struct Running {
    child: Child,
    stdout: Option<ChildStdout>,
    stderr: Receiver<Vec<u8>>,
    /// What stdout gave so far.
    pub out: Vec<u8>,
}

/// How a [`Running`] ended.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Running {
    /// Spawn `cmd` with stdout and stderr piped and default signal actions.
    pub fn start(mut cmd: Command) -> Running {
        // Env::cachier already does; a command built elsewhere gets it here.
        crate::harness::default_signals(&mut cmd);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stderr.take().unwrap();
        let (tx, stderr) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = pipe.read_to_end(&mut all);
            let _ = tx.send(all);
        });
        Running {
            stdout: child.stdout.take(),
            child,
            stderr,
            out: Vec::new(),
        }
    }

    /// Read stdout until what it gave so far contains `want`.
    pub fn read_until(&mut self, want: &str) {
        let deadline = Instant::now() + DEADLINE;
        while !contains(&self.out, want.as_bytes()) {
            let more = self.read_some(deadline);
            assert!(
                more,
                "stdout closed before {want:?}; it gave {:?}",
                String::from_utf8_lossy(&self.out)
            );
        }
    }

    /// Send `signal` to cachier alone.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    /// Close our end of cachier's stdout, as `| head -1` does.
    pub fn close_stdout(&mut self) {
        self.stdout = None;
    }

    /// Wait until cachier exits and both its output pipes close.
    pub fn finish(mut self) -> Finished {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "cachier did not exit in time");
            std::thread::sleep(Duration::from_millis(5));
        };
        let deadline = Instant::now() + DEADLINE;
        while self.stdout.is_some() {
            if !self.read_some(deadline) {
                self.stdout = None;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let stderr = self
            .stderr
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("cachier exited ({status}) but its stderr stayed open"));
        Finished {
            status,
            stdout: self.out,
            stderr,
        }
    }

    /// One read from stdout, waiting until `deadline`; false at its end.
    fn read_some(&mut self, deadline: Instant) -> bool {
        let pipe = self.stdout.as_mut().expect("stdout is open");
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "stdout stayed open past the deadline");
        let timeout = rustix::event::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let ready = {
            let mut fds = [rustix::event::PollFd::new(
                &*pipe,
                rustix::event::PollFlags::IN | rustix::event::PollFlags::HUP,
            )];
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => panic!("poll: {e}"),
            }
            !fds[0].revents().is_empty()
        };
        if !ready {
            return true;
        }
        let mut buf = [0u8; 64 * 1024];
        let n = pipe.read(&mut buf).unwrap();
        self.out.extend_from_slice(&buf[..n]);
        n > 0
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
