//! Reading the files a user names on the command line (the config, binfmt.d files, files to
//! inspect, tarballs to scan): the one place that opens them.
//!
//! The user's path is followed (a symlink the user names is theirs to name), but the object
//! opened must be a regular file: it is opened with `O_NONBLOCK` (so a FIFO cannot hang us),
//! checked with `fstat` on the open descriptor (so it cannot be swapped after a check), and text
//! is read with a size limit (so `/dev/zero` or a huge file cannot grow memory without bound).
//! Needs no privileges beyond read access; implements nothing of the kernel's.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The largest text input we read (config, binfmt.d files): 1 MiB. Real ones are a few
/// hundred bytes.
pub const MAX_TEXT: u64 = 1 << 20;

/// Why an input file was refused. Each variant names the file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path} does not exist: check the path")]
    Missing { path: PathBuf },
    #[error("cannot open {path}: {}: check its permissions", io_words(.cause))]
    Open { path: PathBuf, cause: io::Error },
    #[error("{path} is {kind}, not a regular file: name a regular file")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error(
        "{path} is larger than {limit} bytes: this is not a file binfmtctl reads; check the path"
    )]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("cannot read {path}: {}", io_words(.cause))]
    Read { path: PathBuf, cause: io::Error },
    #[error("{path}:{line}: not UTF-8 text (a binary file?): name a text file")]
    NotText { path: PathBuf, line: usize },
}

impl crate::error::Classify for InputError {
    /// A file the user named that cannot be read as one: bad input, nothing changed.
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::BadInput
    }
}

impl InputError {
    pub fn is_missing(&self) -> bool {
        matches!(self, InputError::Missing { .. })
    }
}

/// "Permission denied (os error 13)" -> "permission denied".
fn io_words(e: &io::Error) -> String {
    let s = e.to_string();
    s.split(" (os error").next().unwrap_or(&s).to_lowercase()
}

/// What kind of object a mode describes, in words.
pub fn kind_of(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_file() {
        "a regular file"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    }
}

/// Opens `path` for reading; the final object must be a regular file.
pub fn open_regular(path: &Path) -> Result<File, InputError> {
    use rustix::fs::{Mode, OFlags, open};
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = open(path, flags, Mode::empty()).map_err(|e| {
        let cause = io::Error::from(e);
        if cause.kind() == io::ErrorKind::NotFound {
            InputError::Missing {
                path: path.to_owned(),
            }
        } else {
            InputError::Open {
                path: path.to_owned(),
                cause,
            }
        }
    })?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|cause| InputError::Read {
        path: path.to_owned(),
        cause,
    })?;
    if !meta.is_file() {
        return Err(InputError::NotRegular {
            path: path.to_owned(),
            kind: kind_of(meta.file_type()),
        });
    }
    Ok(file)
}

/// Reads at most `limit` bytes of an opened file; more is an error.
pub fn read_bounded(path: &Path, file: File, limit: u64) -> Result<Vec<u8>, InputError> {
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|cause| InputError::Read {
            path: path.to_owned(),
            cause,
        })?;
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(bytes)
}

/// Checks that bytes read from `path` are UTF-8 text without NUL bytes.
pub fn text(path: &Path, bytes: Vec<u8>) -> Result<String, InputError> {
    let bad = match std::str::from_utf8(&bytes) {
        Err(e) => Some(e.valid_up_to()),
        Ok(s) => s.find('\0'),
    };
    if let Some(at) = bad {
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(InputError::NotText {
            path: path.to_owned(),
            line,
        });
    }
    Ok(String::from_utf8(bytes).unwrap_or_default())
}

/// A regular text file of at most `limit` bytes, as UTF-8.
pub fn read_text(path: &Path, limit: u64) -> Result<String, InputError> {
    let file = open_regular(path)?;
    let bytes = read_bounded(path, file, limit)?;
    text(path, bytes)
}

/// Bytes as lowercase hex digits (`7f454c46`): digests, build ids, and magic and mask in JSON.
/// (binfmt_misc records spell bytes as `\xHH`: `registration::escape_hex`.)
pub fn hex(b: &[u8]) -> String {
    // By hand: a `format!` per byte showed in `install all`'s profile.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &b in b {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Is `dir` a directory only root or we can change (root writes there): not a symlink, owned
/// by root, by us or by `also_owner`, and not writable by group or others? `Ok(Ok(owner))` when
/// it is, `Ok(Err(why))` when not, `Err` when it cannot be looked at.
pub fn private_dir(dir: &Path, also_owner: Option<u32>) -> std::io::Result<Result<u32, String>> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(dir)?;
    let me = rustix::process::geteuid().as_raw();
    Ok(if m.file_type().is_symlink() {
        Err("it is a symbolic link".into())
    } else if !m.is_dir() {
        Err("it is not a directory".into())
    } else if m.uid() != 0 && m.uid() != me && Some(m.uid()) != also_owner {
        Err(format!("it belongs to uid {}", m.uid()))
    } else if m.mode() & 0o022 != 0 {
        Err(format!(
            "it is writable by group or others (mode {:o})",
            m.mode() & 0o7777
        ))
    } else {
        Ok(m.uid())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lower_case_digits_a_byte() {
        assert_eq!(hex(&[0x7f, 0, 0xff, 0x0a, 0xa0]), "7f00ff0aa0");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn refuses_what_is_not_a_regular_file() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // Would block forever without O_NONBLOCK: no writer.
        let e = read_text(&fifo, MAX_TEXT).unwrap_err().to_string();
        assert!(
            e.ends_with("fifo is a FIFO, not a regular file: name a regular file"),
            "{e}"
        );
        let e = read_text(Path::new("/dev/zero"), MAX_TEXT)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/dev/zero is a character device, not a regular file: name a regular file"
        );
        let e = read_text(d.path(), MAX_TEXT).unwrap_err().to_string();
        assert!(e.contains("is a directory, not a regular file"), "{e}");
        assert!(
            read_text(&d.path().join("nope"), MAX_TEXT)
                .unwrap_err()
                .is_missing()
        );
    }

    #[test]
    fn bounded_and_text_only() {
        let d = tempfile::tempdir().unwrap();
        let big = d.path().join("big");
        std::fs::write(&big, vec![b'a'; 101]).unwrap();
        let e = read_text(&big, 100).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "big is larger than 100 bytes: this is not a file binfmtctl reads; check the path"
            ),
            "{e}"
        );
        assert_eq!(read_text(&big, 101).unwrap().len(), 101);
        let bin = d.path().join("bin");
        std::fs::write(&bin, b"arches = []\n\n\xff\xfe").unwrap();
        let e = read_text(&bin, 100).unwrap_err().to_string();
        assert!(
            e.ends_with("bin:3: not UTF-8 text (a binary file?): name a text file"),
            "{e}"
        );
        std::fs::write(&bin, b"a\0b").unwrap();
        assert!(matches!(
            read_text(&bin, 100),
            Err(InputError::NotText { line: 1, .. })
        ));
    }
}
