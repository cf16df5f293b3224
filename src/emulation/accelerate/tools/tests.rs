use std::collections::HashMap;
use std::os::unix::fs::symlink;
use std::path::Path;

use super::{Cover, base, bin_entries, plan_tools, source_version};
use crate::confined::Tree;

#[test]
fn binnmu_suffixes_aside_versions_must_match() {
    assert_eq!(source_version("5.2.15-2+b13"), "5.2.15-2");
    assert_eq!(source_version("5.2.15-2+b8"), "5.2.15-2");
    assert_eq!(source_version("4.9-1+deb12u1"), "4.9-1+deb12u1");
    assert_eq!(source_version("1:3.8-4"), "1:3.8-4");
    assert_eq!(source_version("1.0+b"), "1.0+b");
}

#[test]
fn only_entries_directly_in_the_bin_directories_count() {
    let l = "/.\n/bin\n/bin/dash\n/usr/bin/ls\n/usr/sbin/chroot\n/usr/share/doc/x\n/usr/bin/sub/x\n/usr/bin/..\n/usr/libexec/coreutils/libstdbuf.so\n/usr/bin/\n";
    let got: Vec<String> = bin_entries(l).into_iter().collect();
    assert_eq!(got, ["/bin/dash", "/usr/bin/ls", "/usr/sbin/chroot"]);
}

/// A fabricated arm64 program (a static aarch64 executable).
fn arm64_program() -> Vec<u8> {
    crate::elf::write::elf_exec(64, crate::binfmt::arch::Endian::Little, 183, 0, &[0; 16])
}

/// A fabricated usrmerged rootfs (`bin -> usr/bin`) with dpkg file lists, and a fabricated
/// host dpkg info directory naming the host's real programs.
struct Fixture {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    info: std::path::PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let info = dir.path().join("host-info");
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
        std::fs::create_dir_all(&info).unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        Fixture {
            _dir: dir,
            root,
            info,
        }
    }
    fn program(&self, rel: &str) {
        std::fs::write(self.root.join(rel), arm64_program()).unwrap();
    }
    fn file(&self, rel: &str, body: &str) {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    fn lists(&self, pkg: &str, rootfs: &str, host: &str) {
        self.file(&format!("var/lib/dpkg/info/{pkg}.list"), rootfs);
        std::fs::write(self.info.join(format!("{pkg}.list")), host).unwrap();
    }
    fn plan(&self, rootfs: &[(&str, &str)], host: &[(&str, &str)]) -> super::ToolsPlan {
        let m = |v: &[(&str, &str)]| -> HashMap<String, String> {
            v.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        let tree = Tree::open(&self.root).unwrap();
        plan_tools(&tree, &["arm64".into()], &m(rootfs), &m(host), &self.info)
    }
}

fn host_has(programs: &[&str]) -> bool {
    let ok = programs
        .iter()
        .all(|p| Path::new("/usr/bin").join(p).is_file());
    if !ok {
        eprintln!("skipped: the host lacks one of {programs:?}");
    }
    ok && std::env::consts::ARCH == "x86_64"
}

/// Same versions on both sides: each program both lists name is covered once (usrmerge:
/// `/bin/dash`, `/bin/sh` and `/usr/bin/dash` are one file), by the host's program of the
/// same name; `uname`, `arch` and scripts stay the rootfs's; a package whose versions differ
/// stays emulated and the note says why; perl is kept emulated.
#[test]
fn same_versions_cover_each_program_once_and_the_rest_stays_emulated() {
    if !host_has(&["dash", "ls", "uname", "arch", "make", "sed"]) {
        return;
    }
    let f = Fixture::new();
    for p in ["dash", "ls", "uname", "arch", "make", "sed"] {
        f.program(&format!("usr/bin/{p}"));
    }
    symlink("dash", f.root.join("usr/bin/sh")).unwrap();
    f.file("usr/bin/egrep", "#!/bin/sh\nexec grep -E \"$@\"\n");
    f.lists(
        "dash",
        "/.\n/bin\n/bin/dash\n/bin/sh\n",
        "/.\n/bin\n/bin/dash\n/bin/sh\n",
    );
    f.lists(
        "coreutils",
        "/bin/ls\n/bin/uname\n/usr/bin/arch\n/usr/bin/egrep\n/usr/bin/only-in-rootfs\n",
        "/bin/ls\n/bin/uname\n/usr/bin/arch\n/usr/bin/egrep\n",
    );
    f.lists("make", "/usr/bin/make\n", "/usr/bin/make\n");
    f.lists("sed", "/bin/sed\n", "/bin/sed\n");
    let plan = f.plan(
        &[
            ("dash", "0.5.12-2"),
            ("coreutils", "9.1-1"),
            ("make", "4.3-4.1"),
            ("sed", "4.9-1+deb12u1"),
            ("perl-base", "5.36.0-7"),
        ],
        &[
            ("dash", "0.5.12-2"),
            ("coreutils", "9.1-1"),
            ("make", "4.3-4.1+b1"),
            ("sed", "4.9-1"),
            ("perl-base", "5.36.0-7"),
        ],
    );
    assert_eq!(
        plan.covers,
        [
            Cover {
                target: "/usr/bin/dash".into(),
                host: "/bin/dash".into(),
                argv0: "sh".into()
            },
            Cover {
                target: "/usr/bin/make".into(),
                host: "/usr/bin/make".into(),
                argv0: "make".into()
            },
            Cover {
                target: "/usr/bin/ls".into(),
                host: "/bin/ls".into(),
                argv0: "ls".into()
            },
        ]
    );
    let note = plan.note();
    assert_eq!(
        note,
        "native build tools from the host: dash 0.5.12-2, make 4.3-4.1+b1 (rootfs 4.3-4.1), coreutils 9.1-1 (3 programs); emulated: uname, arch, dpkg, dpkg-architecture, stdbuf, sed (rootfs 4.9-1+deb12u1, host 4.9-1), perl-base (perl takes $^X from /proc/self/exe, which is the host's loader for a native program)"
    );
    // A package on one side only stays emulated; nothing at all is no error.
    let plan = f.plan(&[("dash", "0.5.12-2")], &[]);
    assert!(plan.covers.is_empty());
    assert!(
        plan.note()
            .contains("dash (rootfs 0.5.12-2, not on the host)")
    );
    assert!(
        plan.note()
            .starts_with("native build tools from the host: none;")
    );
}

/// bash started as `sh` is in POSIX mode and the launcher's argv[0] is fixed: a bash that
/// the rootfs's /bin/sh leads to stays emulated; otherwise it is native (binNMUs aside).
#[test]
fn a_bash_that_bin_sh_leads_to_stays_emulated() {
    if !host_has(&["bash"]) {
        return;
    }
    let f = Fixture::new();
    f.program("usr/bin/bash");
    f.lists("bash", "/bin/bash\n", "/bin/bash\n");
    let versions = [("bash", "5.2.15-2+b13")];
    let host = [("bash", "5.2.15-2+b8")];
    let plan = f.plan(&versions, &host);
    assert_eq!(plan.covers.len(), 1, "{plan:?}");
    assert_eq!(plan.covers[0].argv0, "bash");
    assert!(
        plan.note()
            .contains("bash 5.2.15-2+b8 (rootfs 5.2.15-2+b13) (1 programs)"),
        "{}",
        plan.note()
    );
    symlink("bash", f.root.join("usr/bin/sh")).unwrap();
    let plan = f.plan(&versions, &host);
    assert!(plan.covers.is_empty(), "{plan:?}");
}

/// A hostile rootfs: its file lists and programs are read inside it only. A list that is a
/// symlink to the host's absolute path reads the rootfs's file of that name; a program that
/// is a symlink to a host path resolves inside the rootfs (missing there: not covered); an
/// entry only the rootfs lists is never covered; a FIFO or an oversized list leaves its
/// package emulated, named. Every cover's target is a rootfs file and every host program one
/// the host's own list names.
#[test]
fn a_hostile_rootfs_cannot_choose_host_files_or_read_outside_itself() {
    if !host_has(&["ls", "cat", "make", "dash"]) {
        return;
    }
    let f = Fixture::new();
    // coreutils.list -> /var/lib/dpkg/info/coreutils.list on the host: inside the rootfs, the
    // file at /etc/fake.list.
    f.file(
        "etc/fake.list",
        "/usr/bin/ls\n/usr/bin/cat\n/usr/bin/evil\n/usr/bin/../../etc/shadow\n",
    );
    symlink(
        "/../../../../etc/fake.list",
        f.root.join("var/lib/dpkg/info/coreutils.list"),
    )
    .unwrap();
    std::fs::write(
        f.info.join("coreutils.list"),
        "/usr/bin/ls\n/usr/bin/cat\n/usr/bin/true\n",
    )
    .unwrap();
    f.program("usr/bin/ls");
    // cat -> the host's /usr/bin/cat by an absolute link: inside the rootfs it leads nowhere.
    symlink("/../../usr/lib/host-cat", f.root.join("usr/bin/cat")).unwrap();
    f.program("usr/bin/evil");
    // make.list is a FIFO; dash.list is larger than the cap (sparse).
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        f.root.join("var/lib/dpkg/info/make.list"),
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
    std::fs::write(f.info.join("make.list"), "/usr/bin/make\n").unwrap();
    f.program("usr/bin/make");
    f.program("usr/bin/dash");
    std::fs::File::create(f.root.join("var/lib/dpkg/info/dash.list"))
        .unwrap()
        .set_len(super::MAX_LIST + 1)
        .unwrap();
    std::fs::write(f.info.join("dash.list"), "/bin/dash\n").unwrap();
    let v = [
        ("coreutils", "9.1-1"),
        ("make", "4.3-4.1"),
        ("dash", "0.5.12-2"),
    ];
    let plan = f.plan(&v, &v);
    assert_eq!(
        plan.covers,
        [Cover {
            target: "/usr/bin/ls".into(),
            host: "/usr/bin/ls".into(),
            argv0: "ls".into()
        }]
    );
    let note = plan.note();
    assert!(
        note.contains("make (cannot read the rootfs's /var/lib/dpkg/info/make.list:")
            && note.contains("not a regular file"),
        "{note}"
    );
    assert!(
        note.contains("dash (cannot read the rootfs's /var/lib/dpkg/info/dash.list:")
            && note.contains("larger than"),
        "{note}"
    );
    assert_eq!(base("/usr/bin/ls"), "ls");
}

/// Each cover gets its own launcher in /run/binfmtctl/tools (two rootfs files of one name get
/// two), started with the plan's argv[0] on the host's program bound once at host/bin; the
/// rootfs's file is covered by it.
#[test]
fn each_covered_file_gets_a_launcher_of_the_hosts_program() {
    use super::super::{Builder, Item};
    if !host_has(&["dash", "ls"]) {
        return;
    }
    let mut b = Builder::new(Path::new("/usr/bin/dash")).unwrap();
    let cover = |target: &str, host: &str, argv0: &str| Cover {
        target: target.into(),
        host: host.into(),
        argv0: argv0.into(),
    };
    let plan = super::ToolsPlan {
        native: vec![("dash".into(), "0.5.12-2".into())],
        covers: vec![
            cover("/usr/bin/dash", "/bin/dash", "sh"),
            cover("/usr/bin/ls", "/usr/bin/ls", "ls"),
            cover("/usr/sbin/ls", "/usr/bin/ls", "ls"),
        ],
        emulated: vec![],
    };
    b.tools(&plan).unwrap();
    let covers: Vec<(String, String)> = b
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Cover { target, launcher } => Some((target.clone(), launcher.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        covers,
        [
            ("/usr/bin/dash".into(), "/run/binfmtctl/tools/dash".into()),
            ("/usr/bin/ls".into(), "/run/binfmtctl/tools/ls".into()),
            ("/usr/sbin/ls".into(), "/run/binfmtctl/tools/ls.1".into()),
        ]
    );
    let launcher = b
        .items
        .iter()
        .find_map(|i| match i {
            Item::Launcher { path, bytes } if path == "/run/binfmtctl/tools/dash" => {
                Some(bytes.clone())
            }
            _ => None,
        })
        .unwrap();
    let dash = std::fs::canonicalize("/bin/dash").unwrap();
    let inside = b.host_files.get(&dash).unwrap();
    assert_eq!(inside, "/run/binfmtctl/host/bin/dash");
    let want = format!("--argv0\0sh\0{inside}\0");
    assert!(memchr::memmem::find(&launcher, want.as_bytes()).is_some());
    // The host's ls is bound once for both covers.
    let binds = b
        .items
        .iter()
        .filter(|i| matches!(i, Item::Bind { path, .. } if path.starts_with("/run/binfmtctl/host/bin/ls")))
        .count();
    assert_eq!(binds, 1);
}

#[test]
fn the_tools_launchers_live_in_the_injection() {
    assert_eq!(
        super::TOOLS_DIR,
        format!("{}/tools", crate::emulation::accelerate::DIR)
    );
}
