//! A real HTTP receiver for webhook tests: records every request and answers from a script
//! (status codes in order, then 200), or holds connections open without answering (`hang`).

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Request>>,
    script: Mutex<VecDeque<u16>>,
    held: Mutex<Vec<TcpStream>>,
    hang: AtomicBool,
    stop: AtomicBool,
}

pub struct Sink {
    shared: Arc<Shared>,
    port: u16,
}

impl Sink {
    pub fn start(script: &[u16], hang: bool) -> Sink {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let shared = Arc::new(Shared::default());
        shared.script.lock().unwrap().extend(script);
        shared.hang.store(hang, Ordering::SeqCst);
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(c) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(c, &s));
            }
        });
        Sink { shared, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.held.lock().unwrap().clear();
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(c: TcpStream, s: &Shared) {
    let mut r = BufReader::new(c.try_clone().expect("clone"));
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        s.requests.lock().unwrap().push(Request {
            path,
            headers,
            body,
        });
        if s.hang.load(Ordering::SeqCst) {
            s.held.lock().unwrap().push(c);
            return;
        }
        let status = s.script.lock().unwrap().pop_front().unwrap_or(200);
        let mut w = &c;
        let _ = write!(w, "HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
    }
}
