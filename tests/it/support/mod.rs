//! Test support: every external part is real and owned by a guard that stops it on drop.
pub mod brokers;
pub mod certs;
pub mod daemon;
pub mod mosquitto;
pub mod proxy;
pub mod scrape;
pub mod secretdir;
pub mod sentinel;
pub mod sink;
pub mod wait;
pub mod ws;

pub use mosquitto::Mosquitto;
pub use sentinel::Sentinel;
pub use wait::wait_until;

/// Send `sig` (`"-HUP"`, `"-STOP"`, …) to `pid`.
pub fn signal(pid: u32, sig: &str) {
    let st = std::process::Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(st.success(), "kill {sig} {pid}");
}
