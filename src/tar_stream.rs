//! Reading tar streams others made (image tarballs, `podman export` output, a .deb's
//! `data.tar`): the decompressor told by magic (gzip, zstd or none) and the check that a tar
//! comes out (`archive_stream`), and `TarGuard`, which bounds the metadata members the tar
//! reader would hold in memory whole. Shared by `inspection::scan`, `emulation::rootfs` and
//! `qemu::deb`; imports none of them.
//!
//! Pure on its input: reads the stream it is given, nothing else.

use std::io::{self, Read};

/// The tar stream inside `input` (plain, gzip or zstd, told apart by magic); `None` when what
/// comes out is not a tar. Pure on its input, so the fuzz harness drives it from bytes.
pub fn archive_stream<'a, R: io::BufRead + 'a>(
    mut input: R,
) -> io::Result<Option<Box<dyn Read + 'a>>> {
    let mut magic = [0u8; 4];
    let head = input.fill_buf()?;
    let n = head.len().min(4);
    magic[..n].copy_from_slice(&head[..n]);
    let reader: Box<dyn Read + 'a> = match &magic[..n] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(input)),
        [0x28, 0xb5, 0x2f, 0xfd] => Box::new(
            ruzstd::decoding::StreamingDecoder::new(input)
                .map_err(|e| io::Error::other(e.to_string()))?,
        ),
        _ => Box::new(input),
    };
    let mut reader = io::BufReader::with_capacity(64 * 1024, reader);
    let head = io::BufRead::fill_buf(&mut reader)?;
    if head.len() < 262 || &head[257..262] != b"ustar" {
        return Ok(None);
    }
    Ok(Some(Box::new(TarGuard::new(reader))))
}

/// The largest tar metadata member (GNU long name or link, pax header) we accept: 1 MiB. The
/// tar reader keeps such members in memory whole, and a compressed archive can declare one of
/// gigabytes in a few kilobytes.
pub const MAX_TAR_METADATA: u64 = 1 << 20;

/// Follows the tar stream block by block as it passes through and fails the read when a
/// metadata member is larger than `MAX_TAR_METADATA`. It mirrors the tar reader (header sizes in
/// octal or base-256, pax `size` overrides, GNU sparse extension blocks); where it cannot (a
/// header whose checksum does not match), it stops watching and leaves the error to the reader.
pub(crate) struct TarGuard<R> {
    inner: R,
    watching: bool,
    block: [u8; 512],
    filled: usize,
    /// Data bytes (padded to whole blocks) to pass before the next header.
    skip: u64,
    /// GNU sparse extension blocks follow; then `skip_after_ext` bytes of data.
    in_ext: bool,
    skip_after_ext: u64,
    /// The data of a pax `x` member being collected, for its `size` record.
    pax: Option<Vec<u8>>,
    /// A pax `size` for the next entry.
    pax_size: Option<u64>,
}

impl<R: Read> TarGuard<R> {
    pub(crate) fn new(inner: R) -> Self {
        TarGuard {
            inner,
            watching: true,
            block: [0; 512],
            filled: 0,
            skip: 0,
            in_ext: false,
            skip_after_ext: 0,
            pax: None,
            pax_size: None,
        }
    }

    fn observe(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while self.watching && !bytes.is_empty() {
            if self.skip > 0 {
                let n = bytes
                    .len()
                    .min(usize::try_from(self.skip).unwrap_or(usize::MAX));
                if let Some(p) = &mut self.pax {
                    p.extend_from_slice(&bytes[..n]);
                }
                self.skip -= n as u64;
                bytes = &bytes[n..];
                if self.skip == 0
                    && let Some(p) = self.pax.take()
                {
                    self.pax_size = pax_record(&p, "size").and_then(|v| v.parse().ok());
                }
                continue;
            }
            let n = bytes.len().min(512 - self.filled);
            self.block[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
            if self.filled == 512 {
                self.filled = 0;
                self.on_block()?;
            }
        }
        Ok(())
    }

    fn on_block(&mut self) -> io::Result<()> {
        let b = &self.block;
        if self.in_ext {
            self.in_ext = b[504] == 1;
            if !self.in_ext {
                self.skip = self.skip_after_ext;
            }
            return Ok(());
        }
        if b.iter().all(|&x| x == 0) {
            return Ok(());
        }
        let (Some(size), true) = (tar_size(&b[124..136]), tar_checksum_ok(b)) else {
            self.watching = false;
            return Ok(());
        };
        let kind = b[156];
        let metadata = matches!(kind, b'L' | b'K' | b'x' | b'g');
        let size = if metadata {
            if size > MAX_TAR_METADATA {
                return Err(io::Error::other(format!(
                    "a tar metadata member (type {}) of {size} bytes: more than {MAX_TAR_METADATA} bytes of long name or pax data is not a real archive",
                    kind as char
                )));
            }
            if kind == b'x' {
                self.pax = Some(Vec::with_capacity(usize::try_from(size).unwrap_or(0)));
            }
            size
        } else {
            self.pax_size.take().unwrap_or(size)
        };
        let padded = size.div_ceil(512).saturating_mul(512);
        // Old GNU sparse: extension blocks follow the header when `isextended` is set.
        if kind == b'S' && b[482] == 1 {
            self.in_ext = true;
            self.skip_after_ext = padded;
        } else {
            self.skip = padded;
        }
        Ok(())
    }
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.observe(&buf[..n])?;
        Ok(n)
    }
}

/// A tar size field: octal text, or base-256 when the first byte has its high bit set.
fn tar_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        if field[0] & 0x40 != 0 || field[1..4].iter().any(|&b| b != 0) {
            return None;
        }
        return Some(
            field[4..]
                .iter()
                .fold(0u64, |a, &b| (a << 8) | u64::from(b)),
        );
    }
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let t = text.trim_matches(' ');
    if t.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(t, 8).ok()
}

fn tar_checksum_ok(b: &[u8; 512]) -> bool {
    let sum: u64 = b[..148]
        .iter()
        .chain(&b[156..])
        .map(|&x| u64::from(x))
        .sum::<u64>()
        + 8 * 32;
    tar_size(&b[148..156]) == Some(sum)
}

/// The value of `key` in pax extended header records ("LEN key=value\n").
fn pax_record(data: &[u8], key: &str) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    text.split('\n').find_map(|rec| {
        let (_, kv) = rec.split_once(' ')?;
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_owned())
    })
}
