//! A Debian-style archive for tests, built and signed by the test itself: its own OpenPGP key,
//! `InRelease`, `Packages`, and .debs holding the system's real static QEMU, served from
//! 127.0.0.1 by a small HTTP server that can also stall or truncate a file. No network.
//!
//! Used by tests/qemu_store.rs and tests/json.rs as `#[path = "common/archive.rs"] mod archive;`
//! (next to `mod common;`), so the other test binaries do not build it. Each user takes a part.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Run, bin};
use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, KeyType, SecretKeyParamsBuilder, SignedPublicKey,
    SignedSecretKey,
};
use pgp::ser::Serialize;
use pgp::types::Password;
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Serve {
    Normal,
    /// Accept, read the request, send nothing.
    Stall,
    /// Announce the full length, send half, close.
    Truncate,
    /// Announce 100 MB, then send one byte every 200 ms (never long enough apart for a
    /// per-read timeout), for at most a minute.
    Trickle,
}

/// Path → (body, how to serve it).
pub type Files = Arc<Mutex<HashMap<String, (Vec<u8>, Serve)>>>;

pub struct Server {
    pub port: u16,
    pub files: Files,
    pub stop: Arc<AtomicBool>,
    /// The path of every request received, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start() -> Server {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let files: Files = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (f, s, log) = (files.clone(), stop.clone(), requests.clone());
        std::thread::spawn(move || {
            // Bounded: stops with the test, or after five minutes at most.
            let end = Instant::now() + Duration::from_secs(300);
            while !s.load(Ordering::Relaxed) && Instant::now() < end {
                match l.accept() {
                    Ok((c, _)) => {
                        let (f, s, log) = (f.clone(), s.clone(), log.clone());
                        std::thread::spawn(move || serve(c, &f, &s, &log));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            port,
            files,
            stop,
            requests,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/debian", self.port)
    }

    pub fn put(&self, path: &str, body: Vec<u8>, how: Serve) {
        self.files
            .lock()
            .unwrap()
            .insert(format!("/debian/{path}"), (body, how));
    }

    pub fn set(&self, path: &str, how: Serve) {
        if let Some(e) = self
            .files
            .lock()
            .unwrap()
            .get_mut(&format!("/debian/{path}"))
        {
            e.1 = how;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    mut c: TcpStream,
    files: &Mutex<HashMap<String, (Vec<u8>, Serve)>>,
    stop: &AtomicBool,
    log: &Mutex<Vec<String>>,
) {
    c.set_nonblocking(false).ok();
    c.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&req);
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    log.lock().unwrap().push(path.clone());
    let entry = files.lock().unwrap().get(&path).cloned();
    match entry {
        None => {
            let _ = c.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
        Some((_, Serve::Stall)) => {
            let end = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some((_, Serve::Trickle)) => {
            let _ = c.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n",
            );
            let end = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                if c.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Some((body, how)) => {
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let n = if how == Serve::Truncate {
                body.len() / 2
            } else {
                body.len()
            };
            let _ = c.write_all(&body[..n]);
        }
    }
}

pub fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn new_key(name: &str) -> SignedSecretKey {
    let mut p = SecretKeyParamsBuilder::default();
    p.key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .primary_user_id(format!("{name} <archive@test.invalid>"));
    p.build().unwrap().generate(rand::thread_rng()).unwrap()
}

pub fn clearsign(key: &SignedSecretKey, text: &str) -> String {
    CleartextSignedMessage::sign(
        rand::thread_rng(),
        text,
        &key.primary_key,
        &Password::empty(),
    )
    .unwrap()
    .to_armored_string(ArmorOptions::default())
    .unwrap()
}

/// A .deb like Debian's: debian-binary, control.tar.gz, data.tar.xz with the given
/// `usr/bin/` files copied from the system.
pub fn make_deb(files: &[(&str, &str)]) -> Vec<u8> {
    let mut data = tar::Builder::new(Vec::new());
    for (name, from) in files {
        let bytes = std::fs::read(from).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o755);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        data.append_data(&mut h, format!("./usr/bin/{name}"), &bytes[..])
            .unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_cksum();
    data.append_data(&mut h, "./usr/share/doc/x", &b"doc\n"[..])
        .unwrap();
    let data = data.into_inner().unwrap();
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut &data[..], &mut xz).unwrap();
    let mut control = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(18);
    h.set_mode(0o644);
    h.set_cksum();
    control
        .append_data(&mut h, "./control", &b"Package: qemu-user\n"[..])
        .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&control.into_inner().unwrap()).unwrap();
    let control = gz.finish().unwrap();
    let mut ar = ar::Builder::new(Vec::new());
    for (name, body) in [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.gz", control),
        ("data.tar.xz", xz),
    ] {
        let h = ar::Header::new(name.as_bytes().to_vec(), body.len() as u64);
        ar.append(&h, &body[..]).unwrap();
    }
    ar.into_inner().unwrap()
}

/// One suite of the test archive.
pub struct Suite {
    pub name: &'static str,
    pub version: &'static str,
    pub deb: Vec<u8>,
}

pub struct TestArchive {
    pub server: Server,
    pub key: SignedSecretKey,
    pub tmp: tempfile::TempDir,
    pub keyring: PathBuf,
}

pub const FULL: &[(&str, &str)] = &[
    ("qemu-aarch64", "/usr/bin/qemu-aarch64-static"),
    ("qemu-riscv64", "/usr/bin/qemu-riscv64-static"),
    ("qemu-img", "/usr/bin/qemu-aarch64-static"), // not an interpreter: skipped
];
pub const ARM_ONLY: &[(&str, &str)] = &[("qemu-aarch64-static", "/usr/bin/qemu-aarch64-static")];

impl TestArchive {
    /// Suites `testa` (90.1, aarch64 only) and `testb` (91.0, aarch64 and riscv64), their .deb
    /// made of this machine's qemu-user-static (a test that calls it needs `Needs::Root`: the
    /// static QEMU, and root, whose files alone the store accepts as interpreters).
    pub fn new() -> TestArchive {
        TestArchive::with_debs(make_deb(ARM_ONLY), make_deb(FULL))
    }

    /// The same suites and indexes, but no interpreter in the .deb they name (its bytes are a
    /// placeholder, hashed like any other): for tests that stop before the .deb is downloaded
    /// (a deadline on InRelease, a refused cache), so they run without qemu-user-static. A test
    /// that reached the .deb would fail to unpack it, not pass.
    pub fn without_qemu() -> TestArchive {
        let placeholder = b"not a .deb: this test never downloads it\n".to_vec();
        TestArchive::with_debs(placeholder.clone(), placeholder)
    }

    fn with_debs(arm_only: Vec<u8>, full: Vec<u8>) -> TestArchive {
        let server = Server::start();
        let key = new_key("binfmtctl test archive");
        let tmp = tempfile::tempdir().unwrap();
        let keyring = tmp.path().join("keyring.gpg");
        SignedPublicKey::from(key.clone())
            .to_writer(&mut std::fs::File::create(&keyring).unwrap())
            .unwrap();
        let a = TestArchive {
            server,
            key,
            tmp,
            keyring,
        };
        for s in [
            Suite {
                name: "testa",
                version: "1:90.1+ds-1",
                deb: arm_only,
            },
            Suite {
                name: "testb",
                version: "1:91.0+ds-1",
                deb: full,
            },
        ] {
            a.publish(&s, None);
        }
        a
    }

    pub fn publish(&self, s: &Suite, signer: Option<&SignedSecretKey>) {
        self.publish_with(s, signer, false);
    }

    /// As `publish`; with `by_hash` the InRelease says `Acquire-By-Hash: yes` and the index is
    /// also served under `by-hash/SHA256/<hash>`, as Debian's archive does.
    pub fn publish_with(&self, s: &Suite, signer: Option<&SignedSecretKey>, by_hash: bool) {
        let pool = format!(
            "pool/main/q/qemu/qemu-user_{}_amd64.deb",
            s.version.replace(':', "%3a")
        );
        let packages = format!(
            "Package: qemu-user-static\nVersion: {v}\nInstalled-Size: 40\nFilename: pool/none.deb\nSize: 1\nSHA256: {z}\n\nPackage: qemu-user\nVersion: {v}\nInstalled-Size: 300000\nFilename: {pool}\nSize: {size}\nSHA256: {sha}\n\n",
            v = s.version,
            z = "0".repeat(64),
            size = s.deb.len(),
            sha = sha(&s.deb),
        );
        let release = format!(
            "Origin: Test\nSuite: {n}\nCodename: {n}\nArchitectures: amd64\nComponents: main\n{h}SHA256:\n {} {} main/binary-amd64/Packages\n",
            sha(packages.as_bytes()),
            packages.len(),
            n = s.name,
            h = if by_hash {
                "Acquire-By-Hash: yes\n"
            } else {
                ""
            },
        );
        if by_hash {
            self.server.put(
                &format!(
                    "dists/{}/main/binary-amd64/by-hash/SHA256/{}",
                    s.name,
                    sha(packages.as_bytes())
                ),
                packages.clone().into_bytes(),
                Serve::Normal,
            );
        }
        let signed = clearsign(signer.unwrap_or(&self.key), &release);
        self.server.put(
            &format!("dists/{}/InRelease", s.name),
            signed.into_bytes(),
            Serve::Normal,
        );
        self.server.put(
            &format!("dists/{}/main/binary-amd64/Packages", s.name),
            packages.into_bytes(),
            Serve::Normal,
        );
        self.server.put(&pool, s.deb.clone(), Serve::Normal);
    }

    pub fn deb_path(&self, version: &str) -> String {
        format!(
            "pool/main/q/qemu/qemu-user_{}_amd64.deb",
            version.replace(':', "%3a")
        )
    }

    pub fn store(&self) -> PathBuf {
        self.tmp.path().join("store")
    }

    /// binfmtctl with the archive's mirror, keyring, store and suites.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_store(&self.store(), args)
    }

    pub fn run_store(&self, store: &Path, args: &[&str]) -> Run {
        let net = matches!(args, ["qemu", "fetch" | "versions", ..]);
        let extra = if net {
            self.net_args(store)
        } else {
            vec!["--qemu-store".into(), store.display().to_string()]
        };
        let o = Command::new(bin())
            .args(args)
            .args(extra)
            .env("NO_PROXY", "127.0.0.1")
            .output()
            .unwrap();
        Run::of(o)
    }

    pub fn net_args(&self, store: &Path) -> Vec<String> {
        vec![
            "--mirror".into(),
            self.server.url(),
            "--keyring".into(),
            self.keyring.display().to_string(),
            "--suite".into(),
            "testa".into(),
            "--suite".into(),
            "testb".into(),
            "--timeout".into(),
            "2".into(),
            "--qemu-store".into(),
            store.display().to_string(),
        ]
    }
}
