//! The hostile-rootfs harness (issue 16): every path `run`, `build` and `--accelerate` touch in
//! a rootfs, replaced by a trap (symlinks out of the tree: absolute, relative with `..`,
//! chains, into the sandbox's own `/run`, through `/proc/self/root`, loops; FIFOs, `/dev/zero`
//! nodes, 2 GiB sparse files, the wrong file type), crossed with every way of running it (root,
//! `--rootless` as nobody, `--accelerate`, `build --strategy hybrid|emulate|auto`, a directory
//! and a tarball rootfs), with a project directory that holds symlinks into a victim
//! directory.
//!
//! Each case gets its own decoy tree (a root-owned directory with files, and a victim
//! directory anyone may write to, which every trap points at). It passes when:
//!
//! - the decoy, the project directory and the other bound directories are byte-identical
//!   afterwards (every path, type, mode, owner, size, link count, times, content hash,
//!   symlink target): the command (`true`) writes nothing, so nothing may change;
//! - no mount of the host's mount table names the case's files, and the whole table (but for
//!   the container engines' trees and the host's binfmt_misc, which other software on the
//!   machine changes) is the same at the end;
//! - the run ends within `TIME_LIMIT` (else it is killed: "hung") and no process of it grew
//!   past `MAX_RSS_KIB` (GNU time's maximum resident set size over the whole process tree;
//!   `prlimit --as` caps the address space so a runaway read cannot take the machine down);
//! - it succeeds, or it refuses (a non-zero exit, no signal, no panic) with a message that
//!   names the hostile path.
//!
//! Every mode also runs a clean rootfs first (the control), which must succeed, and with
//! `--accelerate` must have injected the toolchain: so a trap that is refused is refused
//! because of the trap.
//!
//! Root runs never touch the host's binfmt_misc: `--binfmt-misc` names an empty directory (no
//! instance there), so run uses a private instance in an identity-mapped user namespace, as
//! it does on a host without handlers (`tests/emulate.rs`). Needs root, Linux >= 6.7, and
//! scripts/deps.sh (busybox-static:arm64, gcc-aarch64-linux-gnu, util-linux's prlimit and
//! setpriv, GNU time).
//!
//! Cost: in CI every trap runs in the first mode and in one other, taking turns (plus the
//! issue's `src -> /run` traps in every mode): 726 runs of `true`, about 90 s of CPU in all
//! (measured: 186-209 s of wall time on 2 cores shared with four other engineers' builds at a
//! load of 15; alone, about 50 s by that CPU time). `HOSTILE_FULL=1`: 3510 runs, 410 s of CPU.
//!
//! Adding a path is one line in `PATHS`, a mode one line in `MODES`, a trap one variant of
//! `Trap` (and its arm in `plant`). `HOSTILE_FULL=1` runs every trap in every mode (about ten
//! times the CI selection); `HOSTILE_ONLY=substring` runs only the cases whose name contains
//! it; `HOSTILE_BIN=PATH` runs another binfmtctl (an older build, to see it fail);
//! `HOSTILE_JOBS=N` sets the number of parallel runs (4); `HOSTILE_VERBOSE=1` prints every
//! case's outcome; `HOSTILE_KEEP=1` keeps the directories of failed cases.
//!
//! `rootfs create` is covered by `rootfs_create_refuses_hostile_targets` (a target that is a
//! symlink, holds a FIFO or a link out, or is a device node; as nobody).

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{assets, bin};

/// A run that takes longer is killed and reported as hung.
const TIME_LIMIT: Duration = Duration::from_secs(20);
/// The address space of binfmtctl and everything it starts (`prlimit --as`): a cap, so that a
/// runaway read fails instead of exhausting the machine. Above `HUGE`: a read that sizes its
/// buffer by the file must get it, so that an unbounded read of a sparse file shows (with a
/// smaller cap the allocation fails at once and nothing is read).
const ADDRESS_SPACE: u64 = 3 << 30;
/// The largest resident set any process of a run may reach.
const MAX_RSS_KIB: u64 = 256 * 1024;
/// The size of the sparse files planted in the rootfs.
const HUGE: u64 = 2 << 30;
const NOBODY: u32 = 65534;
const TRIPLE: &str = "aarch64-linux-gnu";
/// Where PATH leads for binfmtctl (the host's cross toolchain is in /usr/bin).
const PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What is expected at a path of the rootfs: what a trap there replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Dir,
    File,
}

/// Every path of the rootfs that run, build or --accelerate touch (created, mounted on, bound
/// over, read, resolved), in CI or not (`ci`).
const PATHS: &[(&str, Shape, bool)] = &[
    // The default bind target (`build --src`, `run --bind DIR:/src`).
    ("src", Shape::Dir, true),
    // The sandbox's own mount points.
    ("run", Shape::Dir, true),
    ("run/binfmtctl", Shape::Dir, true),
    ("tmp", Shape::Dir, true),
    ("dev", Shape::Dir, true),
    ("proc", Shape::Dir, true),
    ("sys", Shape::Dir, true),
    // Files the sandbox binds over or reads.
    ("etc", Shape::Dir, true),
    ("etc/resolv.conf", Shape::File, true),
    ("etc/passwd", Shape::File, true),
    // --workdir.
    ("work", Shape::Dir, true),
    // A directory bind's target and its parent, a file bind's target.
    ("opt", Shape::Dir, true),
    ("opt/data", Shape::Dir, true),
    ("etc/hostfile", Shape::File, true),
    // How the arch is detected.
    ("bin/sh", Shape::File, true),
    // What --accelerate resolves, reads and covers.
    ("usr/bin", Shape::Dir, true),
    ("usr/bin/gcc", Shape::File, true),
    ("usr/bin/aarch64-linux-gnu-gcc-12", Shape::File, true),
    ("usr/bin/as", Shape::File, true),
    ("usr/lib/gcc", Shape::Dir, true),
    ("usr/lib/gcc/aarch64-linux-gnu/12", Shape::Dir, true),
    ("usr/lib/gcc/aarch64-linux-gnu/12/cc1", Shape::File, true),
    ("usr/include/c++/12", Shape::Dir, true),
    ("var/lib/dpkg", Shape::Dir, true),
    ("var/lib/dpkg/status", Shape::File, true),
    // What the native build tools read and cover: a dpkg file list, a program it names.
    ("var/lib/dpkg/info", Shape::Dir, true),
    ("var/lib/dpkg/info/coreutils.list", Shape::File, true),
    ("usr/bin/env", Shape::File, true),
];

/// What is planted at a path. `victim` is the case's decoy directory anyone may write to;
/// `leaf` the path's last component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trap {
    /// `-> <victim>/<leaf>`: absolute, dangling both in the rootfs and on the host (a walk
    /// that creates what is missing lands in the victim).
    Abs,
    /// `-> <victim>` (or `<victim>/file`), which exists on the host and, at the same path,
    /// inside the rootfs: resolved in the root it is fine, so a creating walk goes on, and a
    /// step that follows the link from the host lands in the victim.
    AbsMirrored,
    /// `-> <victim>` (or `<victim>/file`), on the host only.
    AbsHostOnly,
    /// `-> ../../../..(many)/<victim>/<leaf>`: relative, climbing out of the rootfs, dangling
    /// (a creating walk that keeps the `..` creates on the host).
    DotDot,
    /// `-> ../../../..(many)/<victim>` (or `<victim>/file`), which exists on the host.
    DotDotExisting,
    /// `-> ../hop1` (relative, to the rootfs's top), `hop1 -> hop2`, `hop2 ->
    /// ../../..(many)/<victim>`; the victim mirrored, so in the root the chain ends inside.
    Chain,
    /// `-> /run`: onto the sandbox's own tmpfs (the issue's `src -> /run`).
    ToRun,
    /// `-> /run/binfmtctl`: onto the --accelerate injection.
    ToRunBinfmtctl,
    /// `-> /proc/self/root<victim>`: a magic link back to the host's root.
    ProcRoot,
    /// `-> <leaf>`: a link to itself.
    Loop,
    Fifo,
    /// A character device like `/dev/zero` (1:5): endless zeros.
    DevZero,
    /// A 2 GiB sparse file.
    Sparse,
    /// A file where a directory is expected, a directory where a file is.
    WrongType,
}

const TRAPS: &[Trap] = &[
    Trap::Abs,
    Trap::AbsMirrored,
    Trap::AbsHostOnly,
    Trap::DotDot,
    Trap::DotDotExisting,
    Trap::Chain,
    Trap::ToRun,
    Trap::ToRunBinfmtctl,
    Trap::ProcRoot,
    Trap::Loop,
    Trap::Fifo,
    Trap::DevZero,
    Trap::Sparse,
    Trap::WrongType,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    /// `run --bind PROJ:/src --bind EXTRA:/opt/data --bind HOSTFILE:/etc/hostfile:ro
    /// --workdir /work [--user root] -- true`
    Run,
    /// `build --arch arm64 --strategy S --src PROJ -- true`
    Build(&'static str),
}

/// One way of running a rootfs.
#[derive(Debug, Clone, Copy)]
struct Mode {
    name: &'static str,
    cmd: Cmd,
    /// As nobody (`run --rootless`; `build` is rootless for anyone but root).
    nobody: bool,
    accelerate: bool,
    /// The rootfs given as a tarball (unpacked into a cache in the case's directory).
    tarball: bool,
}

const fn mode(name: &'static str, cmd: Cmd, nobody: bool, accelerate: bool) -> Mode {
    Mode {
        name,
        cmd,
        nobody,
        accelerate,
        tarball: false,
    }
}

/// The first mode (root, every bind, --user, --accelerate: it touches every path) runs every
/// trap; in CI each trap also runs in one of the others, taking turns, so every mode meets
/// every path and every kind of trap over the table.
const MODES: &[Mode] = &[
    mode("run-root-accel", Cmd::Run, false, true),
    mode("run-nobody-accel", Cmd::Run, true, true),
    mode("build-hybrid-root", Cmd::Build("hybrid"), false, true),
    mode("run-root", Cmd::Run, false, false),
    mode("tar-run-nobody-accel", Cmd::Run, true, true).tarball(),
    mode("build-emulate-root", Cmd::Build("emulate"), false, false),
    mode("run-nobody", Cmd::Run, true, false),
    mode("build-auto-root", Cmd::Build("auto"), false, true),
    mode("tar-run-root-accel", Cmd::Run, false, true).tarball(),
    mode("build-hybrid-nobody", Cmd::Build("hybrid"), true, true),
];

impl Mode {
    const fn tarball(self) -> Mode {
        Mode {
            tarball: true,
            ..self
        }
    }
}

/// Traps every mode runs in CI (the issue's: the bind target, or the build's default /src,
/// leading into the sandbox's /run).
const EVERY_MODE: &[(&str, Trap)] = &[("src", Trap::ToRun), ("src", Trap::ToRunBinfmtctl)];

/// A case: one trap (or none: the control) in one mode.
#[derive(Debug, Clone)]
struct Case {
    mode: Mode,
    trap: Option<(&'static str, Shape, Trap)>,
}

impl Case {
    fn name(&self) -> String {
        match self.trap {
            None => format!("{} (clean rootfs)", self.mode.name),
            Some((p, _, t)) => format!("{} /{p} {t:?}", self.mode.name),
        }
    }
}

fn cases() -> Vec<Case> {
    let full = std::env::var_os("HOSTILE_FULL").is_some();
    let only = std::env::var("HOSTILE_ONLY").ok();
    let mut out: Vec<Case> = MODES
        .iter()
        .map(|&mode| Case { mode, trap: None })
        .collect();
    let mut turn = 0;
    for &(p, shape, ci) in PATHS {
        for &t in TRAPS {
            let trap = Some((p, shape, t));
            if full {
                out.extend(MODES.iter().map(|&mode| Case { mode, trap }));
                continue;
            }
            if !ci {
                continue;
            }
            if EVERY_MODE.contains(&(p, t)) {
                out.extend(MODES.iter().map(|&mode| Case { mode, trap }));
                continue;
            }
            out.push(Case {
                mode: MODES[0],
                trap,
            });
            out.push(Case {
                mode: MODES[1 + turn % (MODES.len() - 1)],
                trap,
            });
            turn += 1;
        }
    }
    if let Some(o) = only {
        out.retain(|c| c.name().contains(&o));
    }
    out
}

/// What the whole harness shares.
struct Env {
    base: tempfile::TempDir,
    busybox: PathBuf,
    /// An empty directory: `--binfmt-misc` there finds no instance, so root runs emulate in a
    /// private one.
    no_binfmt: PathBuf,
    root_cache: PathBuf,
    nobody_cache: PathBuf,
    next: AtomicUsize,
}

/// The directories of one case.
struct CaseDirs {
    dir: PathBuf,
    rootfs: PathBuf,
    decoy: PathBuf,
    victim: PathBuf,
    proj: PathBuf,
    extra: PathBuf,
    hostfile: PathBuf,
    tarball: PathBuf,
}

fn chown_nobody(p: &Path) {
    std::os::unix::fs::lchown(p, Some(NOBODY), Some(NOBODY)).unwrap();
}

fn mode_of(p: &Path, m: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
}

fn write(p: &Path, data: &str) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(p, data).unwrap();
}

impl Env {
    fn new() -> Env {
        // Not under /tmp: the sandbox mounts its own /tmp, which would hide the decoy paths
        // mirrored inside a rootfs.
        let base = tempfile::Builder::new()
            .prefix("binfmtctl-hostile-")
            .tempdir_in("/var/tmp")
            .unwrap();
        mode_of(base.path(), 0o755);
        let busybox = base.path().join("busybox");
        fs::copy(assets().join("busybox-arm64"), &busybox).unwrap();
        mode_of(&busybox, 0o755);
        let no_binfmt = base.path().join("no-binfmt");
        fs::create_dir(&no_binfmt).unwrap();
        let nobody_home = base.path().join("nobody");
        fs::create_dir(&nobody_home).unwrap();
        chown_nobody(&nobody_home);
        Env {
            root_cache: base.path().join("cache-root"),
            nobody_cache: nobody_home.join("cache"),
            base,
            busybox,
            no_binfmt,
            next: AtomicUsize::new(0),
        }
    }

    /// A fresh case directory: the decoy, the hostile project, the bind sources and a clean
    /// arm64 rootfs that claims the host's cross gcc and binutils versions.
    fn case_dirs(&self) -> CaseDirs {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let dir = self.base.path().join(format!("case-{n}"));
        fs::create_dir(&dir).unwrap();
        let c = CaseDirs {
            rootfs: dir.join("rootfs"),
            decoy: dir.join("decoy"),
            victim: dir.join("decoy/victim"),
            proj: dir.join("proj"),
            extra: dir.join("extra"),
            hostfile: dir.join("hostfile"),
            tarball: dir.join("rootfs.tar"),
            dir,
        };
        // The decoy: root's files, and the victim every trap leads to, writable by anyone
        // (so a write as nobody shows as well as one as root).
        write(&c.decoy.join("file"), "decoy\n");
        write(&c.decoy.join("sub/deep"), "deep\n");
        write(&c.victim.join("file"), "victim\n");
        fs::create_dir(c.victim.join("dir")).unwrap();
        mode_of(&c.victim, 0o777);
        // The project: owned by nobody, with the symlink into the victim.
        fs::create_dir(&c.proj).unwrap();
        write(&c.proj.join("main.c"), "int main(void){return 0;}\n");
        fs::create_dir_all(c.proj.join("binfmtctl/usr/aarch64-linux-gnu")).unwrap();
        symlink(
            &c.victim,
            c.proj.join("binfmtctl/usr/aarch64-linux-gnu/bin"),
        )
        .unwrap();
        symlink(&c.victim, c.proj.join("out")).unwrap();
        for p in [
            "",
            "main.c",
            "binfmtctl",
            "binfmtctl/usr",
            "binfmtctl/usr/aarch64-linux-gnu",
            "binfmtctl/usr/aarch64-linux-gnu/bin",
            "out",
        ] {
            chown_nobody(&c.proj.join(p));
        }
        fs::create_dir(&c.extra).unwrap();
        write(&c.extra.join("data"), "extra\n");
        chown_nobody(&c.extra);
        write(&c.hostfile, "hostfile\n");
        self.fabricate(&c.rootfs);
        c
    }

    /// An arm64 busybox rootfs with the files a Debian gcc-12 would have for --accelerate to
    /// plan its injection: /usr/bin/gcc -> aarch64-linux-gnu-gcc-12, binutils, a cc1, libstdc++
    /// headers and a dpkg status naming the host's versions.
    fn fabricate(&self, root: &Path) {
        for d in [
            "bin",
            "etc",
            "proc",
            "sys",
            "dev",
            "tmp",
            "run",
            "src",
            "work",
            "opt/data",
            "usr/bin",
            "usr/lib/gcc/aarch64-linux-gnu/12",
            "usr/include/c++/12",
            "var/lib/dpkg/info",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::hard_link(&self.busybox, root.join("bin/busybox")).unwrap();
        for applet in ["sh", "true", "cat", "ls", "echo"] {
            symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        write(&root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
        write(&root.join("etc/resolv.conf"), "nameserver 127.0.0.1\n");
        write(&root.join("etc/hostfile"), "");
        let ub = root.join("usr/bin");
        write(&ub.join(format!("{TRIPLE}-gcc-12")), "");
        symlink(format!("{TRIPLE}-gcc-12"), ub.join("gcc")).unwrap();
        write(&ub.join(format!("{TRIPLE}-as")), "");
        symlink(format!("{TRIPLE}-as"), ub.join("as")).unwrap();
        let gcc = root.join("usr/lib/gcc/aarch64-linux-gnu/12");
        write(&gcc.join("cc1"), "");
        write(&gcc.join("crtbegin.o"), "");
        write(&root.join("usr/include/c++/12/vector"), "");
        write(
            &root.join("var/lib/dpkg/status"),
            &format!(
                "Package: gcc-12\nStatus: install ok installed\nVersion: 12.2.0-14+deb12u1\n\nPackage: binutils-{TRIPLE}\nStatus: install ok installed\nVersion: 2.40-2\n\nPackage: coreutils\nStatus: install ok installed\nVersion: {}\n",
                host_coreutils()
            ),
        );
        // The native build tools: coreutils at the host's version, its list naming
        // /usr/bin/env, an arm64 program of that name (covered by the host's env).
        write(
            &root.join("var/lib/dpkg/info/coreutils.list"),
            "/usr/bin/env\n/bin/true\n",
        );
        fs::hard_link(&self.busybox, root.join("usr/bin/env")).unwrap();
    }
}

/// The host's coreutils version (dpkg), for the fabricated rootfs's status.
fn host_coreutils() -> String {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let o = std::process::Command::new("dpkg-query")
            .args(["-W", "-f=${Version}", "coreutils"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    })
    .clone()
}

/// Removes whatever is at `p` (never following a symlink).
fn remove_any(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).unwrap(),
        Ok(_) => fs::remove_file(p).unwrap(),
        Err(_) => {}
    }
}

/// `../` enough times to climb from anywhere in the rootfs to the host's `/`.
fn climb(rel: &str, root: &Path) -> String {
    let depth = rel.split('/').count() - 1 + root.components().count() + 2;
    "../".repeat(depth)
}

/// Plants `trap` at the rootfs's `rel`, pointing into the case's victim.
fn plant(c: &CaseDirs, rel: &str, shape: Shape, trap: Trap) {
    use rustix::fs::{FileType, Mode as M};
    let root = &c.rootfs;
    let p = root.join(rel);
    remove_any(&p);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    let leaf = rel.rsplit('/').next().unwrap();
    // What a link to an existing object of the right shape points at.
    let existing = match shape {
        Shape::Dir => c.victim.clone(),
        Shape::File => c.victim.join("file"),
    };
    let inside = |host: &Path| root.join(host.strip_prefix("/").unwrap());
    let mirror = |host: &Path| {
        let m = inside(host);
        match shape {
            Shape::Dir => fs::create_dir_all(&m).unwrap(),
            Shape::File => write(&m, "mirrored\n"),
        }
    };
    let no_leading = |p: &Path| p.strip_prefix("/").unwrap().display().to_string();
    match trap {
        Trap::Abs => symlink(c.victim.join(leaf), &p).unwrap(),
        Trap::AbsMirrored => {
            mirror(&existing);
            symlink(&existing, &p).unwrap();
        }
        Trap::AbsHostOnly => symlink(&existing, &p).unwrap(),
        Trap::DotDot => {
            fs::create_dir_all(inside(&c.victim)).unwrap();
            symlink(
                format!("{}{}", climb(rel, root), no_leading(&c.victim.join(leaf))),
                &p,
            )
            .unwrap()
        }
        Trap::DotDotExisting => {
            symlink(format!("{}{}", climb(rel, root), no_leading(&existing)), &p).unwrap()
        }
        Trap::Chain => {
            mirror(&existing);
            symlink("hop2", root.join("hop1")).unwrap();
            symlink(
                format!("{}{}", climb("hop2", root), no_leading(&existing)),
                root.join("hop2"),
            )
            .unwrap();
            symlink(
                format!("{}hop1", "../".repeat(rel.matches('/').count())),
                &p,
            )
            .unwrap();
        }
        Trap::ToRun => symlink("/run", &p).unwrap(),
        Trap::ToRunBinfmtctl => symlink("/run/binfmtctl", &p).unwrap(),
        Trap::ProcRoot => symlink(format!("/proc/self/root{}", existing.display()), &p).unwrap(),
        Trap::Loop => symlink(leaf, &p).unwrap(),
        Trap::Fifo => rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            FileType::Fifo,
            M::from_raw_mode(0o644),
            0,
        )
        .unwrap(),
        Trap::DevZero => rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            FileType::CharacterDevice,
            M::from_raw_mode(0o666),
            rustix::fs::makedev(1, 5),
        )
        .unwrap(),
        Trap::Sparse => {
            let f = fs::File::create(&p).unwrap();
            f.set_len(HUGE).unwrap();
        }
        Trap::WrongType => match shape {
            Shape::Dir => write(&p, "not a directory\n"),
            Shape::File => fs::create_dir(&p).unwrap(),
        },
    }
}

/// Every entry of a tree, without following symlinks: type, mode, owner, size, link count,
/// device, times and the content's hash or the link's target.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    use sha2::Digest;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let ft = m.file_type();
        let what = if ft.is_symlink() {
            format!(
                "link -> {}",
                fs::read_link(&p)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default()
            )
        } else if ft.is_dir() {
            if let Ok(d) = fs::read_dir(&p) {
                stack.extend(d.flatten().map(|e| e.path()));
            }
            "dir".to_owned()
        } else if ft.is_file() {
            let data = fs::read(&p).unwrap_or_default();
            let h = sha2::Sha256::digest(&data);
            let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
            format!("file sha256 {hex}")
        } else {
            format!("special rdev {:x}", m.rdev())
        };
        out.insert(
            rel,
            format!(
                "{what} mode {:o} owner {}:{} size {} nlink {} mtime {}.{} ctime {}.{}",
                m.mode(),
                m.uid(),
                m.gid(),
                m.len(),
                m.nlink(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec()
            ),
        );
    }
    out
}

/// What changed between two snapshots, one line each.
fn diff(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => d.push(format!("removed /{k}: {v}")),
            Some(w) if w != v => d.push(format!("changed /{k}: {v} => {w}")),
            Some(_) => {}
        }
    }
    for (k, v) in after {
        if !before.contains_key(k) {
            d.push(format!("created /{k}: {v}"));
        }
    }
    d
}

/// The host's mount table, but for the trees container engines manage and the host's
/// binfmt_misc (other software on the machine may mount those while the harness runs; a
/// mount naming a case's files is checked case by case).
fn mount_table() -> Vec<String> {
    let mut v: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| {
            let point = l.split(' ').nth(4).unwrap_or("");
            ![
                "/var/lib/containers",
                "/run/containers",
                "/run/netns",
                "/run/user",
                "/var/lib/docker",
                "/run/docker",
                "/proc/sys/fs/binfmt_misc",
            ]
            .iter()
            .any(|p| point.starts_with(p))
        })
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

fn host_binfmt_entries() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir("/proc/sys/fs/binfmt_misc")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// How one run ended.
struct Outcome {
    /// None: killed by the harness after `TIME_LIMIT`.
    code: Option<i32>,
    stderr: String,
    max_rss_kib: Option<u64>,
    took: Duration,
}

/// Runs binfmtctl with `args` (as nobody if asked), capped and measured: `prlimit --as`, GNU
/// time's maximum resident set size, killed with its whole process group after
/// `TIME_LIMIT`.
fn run_capped(env: &Env, c: &CaseDirs, nobody: bool, args: &[String]) -> Outcome {
    use std::os::unix::process::CommandExt;
    let rss = c.dir.join("rss");
    let out = c.dir.join("stdout");
    let err = c.dir.join("stderr");
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--as={ADDRESS_SPACE}"))
        .args(["--", "/usr/bin/time", "-f", "%M", "-o"])
        .arg(&rss)
        .arg("--");
    if nobody {
        cmd.args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ]);
    }
    cmd.arg(binfmtctl())
        .args(args)
        .env_clear()
        .env("PATH", PATH_ENV)
        .env(
            "BINFMTCTL_ROOTFS_CACHE",
            if nobody {
                &env.nobody_cache
            } else {
                &env.root_cache
            },
        )
        .current_dir(&c.dir)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn().expect("prlimit (util-linux) and GNU time run");
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st.code().unwrap_or(-1));
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = start.elapsed();
    let max_rss_kib = fs::read_to_string(&rss)
        .ok()
        .and_then(|t| t.lines().rfind(|l| !l.is_empty())?.trim().parse().ok());
    Outcome {
        code,
        stderr: fs::read_to_string(&err).unwrap_or_default(),
        max_rss_kib,
        took,
    }
}

/// The binfmtctl under test: this tree's, or `HOSTILE_BIN` (to run the harness against another
/// build, e.g. an older one that should fail).
fn binfmtctl() -> PathBuf {
    std::env::var_os("HOSTILE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(bin)
}

/// The binfmtctl command line of a mode for a case.
fn command_line(env: &Env, m: &Mode, c: &CaseDirs) -> Vec<String> {
    let rootfs = if m.tarball { &c.tarball } else { &c.rootfs };
    let d = |p: &Path| p.display().to_string();
    let mut a: Vec<String> = Vec::new();
    match m.cmd {
        Cmd::Run => {
            a.extend(["run".into(), "--rootfs".into(), d(rootfs)]);
            if m.nobody {
                a.push("--rootless".into());
            } else {
                // Reads the rootfs's /etc/passwd (root only).
                a.extend(["--user".into(), "root".into()]);
            }
            if m.accelerate {
                a.push("--accelerate".into());
            }
            a.extend([
                "--bind".into(),
                format!("{}:/src", d(&c.proj)),
                "--bind".into(),
                format!("{}:/opt/data", d(&c.extra)),
                "--bind".into(),
                format!("{}:/etc/hostfile:ro", d(&c.hostfile)),
                "--workdir".into(),
                "/work".into(),
            ]);
        }
        Cmd::Build(strategy) => {
            a.extend([
                "build".into(),
                "--arch".into(),
                "arm64".into(),
                "--strategy".into(),
                strategy.into(),
                "--rootfs".into(),
                d(rootfs),
                "--src".into(),
                d(&c.proj),
            ]);
        }
    }
    if !m.nobody {
        a.extend(["--binfmt-misc".into(), d(&env.no_binfmt)]);
    }
    a.extend(["--".into(), "true".into()]);
    a
}

/// Runs one case: what went wrong, if anything.
fn run_case(env: &Env, case: &Case) -> Result<(), String> {
    let c = env.case_dirs();
    if let Some((rel, shape, trap)) = case.trap {
        plant(&c, rel, shape, trap);
    }
    if case.mode.tarball {
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&c.rootfs)
            .args(["--sparse", "-cf"])
            .arg(&c.tarball)
            .arg(".")
            .output()
            .unwrap();
        // 1: a file changed while it was read (the sparse file's times): the archive is whole.
        if !matches!(tar.status.code(), Some(0 | 1)) {
            return Err(format!(
                "{}: tar of the rootfs failed: {}",
                case.name(),
                String::from_utf8_lossy(&tar.stderr)
            ));
        }
    }
    let watched = |c: &CaseDirs| {
        [&c.decoy, &c.proj, &c.extra, &c.hostfile]
            .iter()
            .map(|p| (p.display().to_string(), snapshot(p)))
            .collect::<Vec<_>>()
    };
    let before = watched(&c);
    let args = command_line(env, &case.mode, &c);
    let o = run_capped(env, &c, case.mode.nobody, &args);
    let mut problems = Vec::new();
    for ((what, b), (_, a)) in before.iter().zip(watched(&c)) {
        let d = diff(b, &a);
        if !d.is_empty() {
            problems.push(format!(
                "{what} changed ({} entries):\n      {}",
                d.len(),
                d.iter()
                    .take(12)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n      ")
            ));
        }
    }
    let case_dir = c.dir.display().to_string();
    let mounts: Vec<String> = mount_table()
        .into_iter()
        .filter(|l| l.contains(&case_dir))
        .collect();
    if !mounts.is_empty() {
        problems.push(format!("left mounts on the host: {mounts:?}"));
    }
    match o.max_rss_kib {
        Some(k) if k > MAX_RSS_KIB => problems.push(format!(
            "unbounded memory: a process reached {} MiB resident (limit {} MiB)",
            k / 1024,
            MAX_RSS_KIB / 1024
        )),
        _ => {}
    }
    let stderr_tail = || {
        let lines: Vec<&str> = o.stderr.lines().collect();
        lines[lines.len().saturating_sub(4)..].join(" | ")
    };
    match o.code {
        None => problems.push(format!("hung: killed after {:?}", TIME_LIMIT)),
        Some(0) => {
            if case.trap.is_none()
                && case.mode.accelerate
                && !(o.stderr.contains("accelerate: native")
                    && o.stderr
                        .contains("native build tools from the host: coreutils"))
            {
                problems.push(format!(
                    "the control ran without the injection: {}",
                    stderr_tail()
                ));
            }
        }
        Some(101) => problems.push(format!("panicked: {}", stderr_tail())),
        Some(code) if !(0..=128).contains(&code) => problems.push(format!(
            "killed by a signal (exit {code}): {}",
            stderr_tail()
        )),
        Some(code) => match case.trap {
            None => problems.push(format!(
                "the clean rootfs failed (exit {code}): {}",
                stderr_tail()
            )),
            // The command itself could not be found or run in the chroot (e.g. a PATH
            // directory that is a symlink loop): the rootfs's own failure, not a refusal.
            Some(_) if (code == 126 || code == 127) && o.stderr.contains("binfmtctl: true: ") => (),
            Some((rel, _, _)) if !o.stderr.contains(rel) => problems.push(format!(
                "refused (exit {code}) without naming {rel}: {}",
                stderr_tail()
            )),
            Some(_) => {}
        },
    }
    if std::env::var_os("HOSTILE_VERBOSE").is_some() {
        eprintln!(
            "case {} exit {:?} {:.2}s rss {:?} KiB: {}",
            case.name(),
            o.code,
            o.took.as_secs_f64(),
            o.max_rss_kib,
            o.stderr.lines().last().unwrap_or("")
        );
    }
    // Everything the case made goes (HOSTILE_KEEP=1 keeps the failed ones for a look).
    if problems.is_empty() || std::env::var_os("HOSTILE_KEEP").is_none() {
        let _ = fs::remove_dir_all(&c.dir);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} [exit {}, {:.1}s]: {}\n    $ binfmtctl {}",
            case.name(),
            o.code.map_or("killed".to_owned(), |c| c.to_string()),
            o.took.as_secs_f64(),
            problems.join("; "),
            args.join(" ")
        ))
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn hostile_rootfses_never_reach_the_host() {
    gate!(Root, X86_64Host);
    assert!(
        is_root(),
        "the hostile-rootfs harness needs root (it runs root and nobody modes)"
    );
    for tool in ["/usr/bin/time", "/usr/bin/prlimit", "/usr/bin/setpriv"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: run scripts/deps.sh (GNU time, util-linux)"
        );
    }
    // Root runs pass --binfmt-misc at an empty directory, so the host's entries are never
    // used, whatever other software on the machine registers meanwhile.
    let binfmt_before = host_binfmt_entries();
    if binfmt_before
        .iter()
        .any(|e| e != "register" && e != "status")
    {
        eprintln!("note: the host's binfmt_misc holds entries (not used): {binfmt_before:?}");
    }
    let env = Env::new();
    let mounts_before = mount_table();
    let all = cases();
    let jobs = std::env::var("HOSTILE_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(4usize);
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = all.get(i) else { break };
                    if let Err(e) = run_case(&env, case) {
                        eprintln!("FAIL {e}");
                        failures.lock().unwrap().push(e);
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    let mounts_after = mount_table();
    let gone: Vec<&String> = mounts_before
        .iter()
        .filter(|l| !mounts_after.contains(l))
        .collect();
    let new: Vec<&String> = mounts_after
        .iter()
        .filter(|l| !mounts_before.contains(l))
        .collect();
    if !gone.is_empty() || !new.is_empty() {
        failures.push(format!(
            "the host's mount table changed: gone {gone:?}, new {new:?}"
        ));
    }
    // A note, not a failure: on a shared machine someone else's `binfmtctl install` may add
    // entries meanwhile, and no command of the harness could (root runs point
    // --binfmt-misc at an empty directory, none installs).
    if host_binfmt_entries() != binfmt_before {
        eprintln!(
            "note: the host's binfmt_misc changed while the harness ran: {:?}",
            host_binfmt_entries()
        );
    }
    eprintln!(
        "hostile rootfs harness: {} cases ({} paths x {} traps, over {} modes, and each mode's control) in {:.0?}, {} failed",
        all.len(),
        PATHS.len(),
        TRAPS.len(),
        MODES.len(),
        start.elapsed(),
        failures.len()
    );
    if !failures.is_empty() && std::env::var_os("HOSTILE_KEEP").is_some() {
        eprintln!("kept the failed cases in {}", env.base.keep().display());
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

/// `rootfs create` into a hostile target: a symlink to the victim, a directory holding a FIFO,
/// a `/dev/zero` node, a symlink out; each refused before the bootstrap tool starts, naming
/// the target, the victim unchanged; as nobody, refused for needing root.
#[test]
fn rootfs_create_refuses_hostile_targets() {
    gate!(Root);
    assert!(is_root(), "the hostile-rootfs harness needs root");
    let env = Env::new();
    let c = env.case_dirs();
    let targets = c.dir.join("targets");
    fs::create_dir(&targets).unwrap();
    mode_of(&targets, 0o755);
    let to_victim = targets.join("to-victim");
    symlink(&c.victim, &to_victim).unwrap();
    let with_fifo = targets.join("with-fifo");
    fs::create_dir(&with_fifo).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        with_fifo.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let zero = targets.join("zero");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &zero,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 5),
    )
    .unwrap();
    let with_link = targets.join("with-link");
    fs::create_dir(&with_link).unwrap();
    symlink(&c.victim, with_link.join("etc")).unwrap();
    let empty = targets.join("empty");
    fs::create_dir(&empty).unwrap();
    chown_nobody(&empty);
    let mut failures = Vec::new();
    for (target, nobody) in [
        (&to_victim, false),
        (&with_fifo, false),
        (&zero, false),
        (&with_link, false),
        (&empty, true),
    ] {
        let before = snapshot(&c.decoy);
        let args: Vec<String> = vec![
            "rootfs".into(),
            "create".into(),
            "--arch".into(),
            "arm64".into(),
            target.display().to_string(),
        ];
        let o = run_capped(&env, &c, nobody, &args);
        let d = diff(&before, &snapshot(&c.decoy));
        let named = o.stderr.contains(&target.display().to_string())
            || (nobody && o.stderr.contains("needs root"));
        if !d.is_empty() || !matches!(o.code, Some(2 | 3)) || !named {
            failures.push(format!(
                "rootfs create {} (nobody: {nobody}): exit {:?}, decoy changes {d:?}: {}",
                target.display(),
                o.code,
                o.stderr.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A tarball rootfs whose members try to leave the unpack directory: a symlink to the victim
/// and a file written through it, a hard link to a victim file (absolute and with `..`), a
/// member named with `..` and one named absolutely, a member under a symlink chain. Run as
/// root and as nobody: the decoy stays byte-identical (a hard link would change a victim
/// file's link count), the run ends in bounded time, and a refusal names the tarball.
#[test]
fn hostile_tarball_members_stay_in_the_cache() {
    gate!(Root);
    use tar::EntryType as E;
    assert!(is_root(), "the hostile-rootfs harness needs root");
    let env = Env::new();
    // (name, type, link target, data), `{V}` standing for the victim, `{UP}` for enough `../`
    // to reach the host's `/` from the unpack directory; each list is one tarball's extra
    // members, after a whole rootfs.
    type Member = (&'static str, E, Option<&'static str>);
    let hostile: &[&[Member]] = &[
        &[
            ("out", E::Symlink, Some("/{V}")),
            ("out/through-link", E::Regular, None),
        ],
        &[
            ("out", E::Symlink, Some("{UP}{V}")),
            ("out/through-relative-link", E::Regular, None),
        ],
        &[
            ("out", E::Symlink, Some("/{V}")),
            ("hop", E::Symlink, Some("out")),
            ("hop/through-chain", E::Regular, None),
        ],
        &[("hard-abs", E::Link, Some("/{V}/file"))],
        &[("hard-dotdot", E::Link, Some("{UP}{V}/file"))],
        &[("{UP}{V}/dotdot-member", E::Regular, None)],
        &[("/{V}/absolute-member", E::Regular, None)],
    ];
    let mut failures = Vec::new();
    for (i, members) in hostile.iter().enumerate() {
        for nobody in [false, true] {
            let c = env.case_dirs();
            let victim = c.victim.display().to_string();
            let up = "../".repeat(c.dir.components().count() + 4);
            let fill = |t: &str| {
                t.replace("{UP}", &up)
                    .replace("/{V}", &victim)
                    .replace("{V}", victim.trim_start_matches('/'))
            };
            let mut b = tar::Builder::new(fs::File::create(&c.tarball).unwrap());
            b.follow_symlinks(false);
            b.append_dir_all(".", &c.rootfs).unwrap();
            for &(name, kind, link) in *members {
                let name = fill(name);
                let mut h = tar::Header::new_gnu();
                // Raw bytes: the builder refuses `..` and absolute names; a hostile tool does not.
                let slot = &mut h.as_old_mut().name;
                slot.fill(0);
                slot[..name.len()].copy_from_slice(name.as_bytes());
                h.set_entry_type(kind);
                h.set_mode(0o755);
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(0);
                let data: &[u8] = if kind == E::Regular {
                    b"escaped\n"
                } else {
                    b""
                };
                h.set_size(data.len() as u64);
                if let Some(l) = link {
                    h.set_link_name(fill(l)).unwrap();
                }
                h.set_cksum();
                b.append(&h, data).unwrap();
            }
            b.finish().unwrap();
            drop(b);
            let before = snapshot(&c.decoy);
            let mut args = vec![
                "run".to_owned(),
                "--rootfs".into(),
                c.tarball.display().to_string(),
            ];
            if nobody {
                args.push("--rootless".into());
            } else {
                args.extend(["--binfmt-misc".into(), env.no_binfmt.display().to_string()]);
            }
            args.extend(["--".into(), "true".into()]);
            let o = run_capped(&env, &c, nobody, &args);
            let d = diff(&before, &snapshot(&c.decoy));
            let tarball = c.tarball.display().to_string();
            if std::env::var_os("HOSTILE_VERBOSE").is_some() {
                eprintln!(
                    "tarball {i} (nobody: {nobody}): exit {:?}: {}",
                    o.code,
                    o.stderr.trim()
                );
            }
            let ok_exit = match o.code {
                Some(0) => true,
                Some(code) if (1..=125).contains(&code) => o.stderr.contains(&tarball),
                _ => false,
            };
            if !d.is_empty() || !ok_exit {
                failures.push(format!(
                    "members {members:?} (nobody: {nobody}): exit {:?}, decoy changes {d:?}: {}",
                    o.code,
                    o.stderr.trim()
                ));
            }
            let _ = fs::remove_dir_all(&c.dir);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
