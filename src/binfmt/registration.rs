//! The binfmt_misc registration model: the register record formatter and parser, the parser
//! of `/proc/sys/fs/binfmt_misc/<entry>` files, validation against the kernel's grammar, and
//! kernel-exact header matching.
//!
//! Pure: no I/O. Implements `Documentation/admin-guide/binfmt-misc.rst` and
//! `fs/binfmt_misc.c` (`create_entry`, `check_special_flags`, `entry_status`, `check_file`);
//! the facts we rely on are listed in docs/design.md, "Kernel facts".

use std::fmt;

use serde::{Serialize, Serializer};

/// `BINPRM_BUF_SIZE`: the kernel reads this many bytes of a file before matching; a magic
/// pattern must fit inside them (`offset + len <= 256`, enforced since Linux 5.1).
pub const BINPRM_BUF_SIZE: usize = 256;
/// The kernel refuses register writes shorter than this (`count < 11`).
pub const MIN_RECORD_LEN: usize = 11;
/// The kernel refuses register writes longer than this (`count > MAX_REGISTER_LENGTH`).
pub const MAX_RECORD_LEN: usize = 1920;
/// Longest entry name (a dentry name).
pub const MAX_NAME_LEN: usize = 255;

/// Delimiters we may choose for a record, in order of preference. None of them can appear in an
/// escaped magic/mask (`\`, `x`, hex digits), and none is a flag letter.
const DELIMITERS: &[char] = &[':', '|', '#', ',', '!', '~', '%', '@', '^', ';'];

/// The flags of an entry (`P`, `O`, `C`, `F`). `C` implies `O` in the kernel, and we keep that
/// invariant here so that what we compare is what the kernel reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    /// `P`: preserve argv[0]; the interpreter learns it through `AT_FLAGS` (kernel >= 5.12).
    pub preserve_argv0: bool,
    /// `O`: pass the binary as an open file descriptor instead of a path.
    pub open_binary: bool,
    /// `C`: compute credentials (setuid) from the binary, not the interpreter. Implies `O`.
    pub credentials: bool,
    /// `F`: open the interpreter at registration time, so it works in any mount namespace/chroot.
    pub fix_binary: bool,
}

impl Flags {
    /// Our default: `F` so the emulator keeps working in chroots and containers, `P` so argv[0]
    /// arrives intact.
    pub const DEFAULT: Flags = Flags {
        preserve_argv0: true,
        open_binary: false,
        credentials: false,
        fix_binary: true,
    };

    /// Parses the letters `P`, `O`, `C`, `F` in any order (case-sensitive, as the kernel is).
    pub fn parse(s: &str) -> Result<Flags, FlagsError> {
        let mut f = Flags::default();
        for (i, c) in s.char_indices() {
            let slot = match c {
                'P' => &mut f.preserve_argv0,
                'O' => &mut f.open_binary,
                'C' => &mut f.credentials,
                'F' => &mut f.fix_binary,
                other => {
                    return Err(FlagsError {
                        input: s.to_owned(),
                        position: i,
                        found: other,
                    });
                }
            };
            *slot = true;
        }
        Ok(f.normalized())
    }

    /// `C` implies `O` (`check_special_flags` sets both).
    pub fn normalized(mut self) -> Flags {
        if self.credentials {
            self.open_binary = true;
        }
        self
    }
}

impl fmt::Display for Flags {
    /// The letters in the kernel's own order (`entry_status`): P, O, C, F.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, c) in [
            (self.preserve_argv0, 'P'),
            (self.open_binary, 'O'),
            (self.credentials, 'C'),
            (self.fix_binary, 'F'),
        ] {
            if on {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for Flags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A flag letter that is not one of `P O C F`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid flags {input:?}: {found:?} at position {position} is not a flag; use any of P (preserve argv[0]), O (open binary), C (credentials), F (fix binary)"
)]
pub struct FlagsError {
    pub input: String,
    pub position: usize,
    pub found: char,
}

impl crate::error::Classify for FlagsError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::BadInput
    }
}

/// How the kernel recognises a file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Matcher {
    /// Type `M`: `(buf[offset + i] ^ magic[i]) & mask[i] == 0` for every i. `mask: None` is the
    /// kernel's "no mask" (exact match).
    Magic {
        offset: usize,
        magic: Vec<u8>,
        mask: Option<Vec<u8>>,
    },
    /// Type `E`: the file name's extension (without the dot).
    Extension(String),
}

impl Matcher {
    /// For type `M`: the offset, the magic, and the mask with the kernel's "no mask" (exact
    /// match) made explicit.
    fn magic_parts(&self) -> Option<(usize, &[u8], Vec<u8>)> {
        match self {
            Matcher::Magic {
                offset,
                magic,
                mask,
            } => Some((
                *offset,
                magic,
                mask.clone().unwrap_or_else(|| vec![0xff; magic.len()]),
            )),
            Matcher::Extension(_) => None,
        }
    }

    /// Equality as the kernel would behave: bits outside the mask do not count.
    pub fn same_pattern(&self, other: &Matcher) -> bool {
        match (self.magic_parts(), other.magic_parts()) {
            (Some((o1, m1, k1)), Some((o2, m2, k2))) => {
                o1 == o2
                    && m1.len() == m2.len()
                    && k1 == k2
                    && m1.iter().zip(&k1).zip(m2).all(|((a, k), b)| a & k == b & k)
            }
            (None, None) => self == other,
            _ => false,
        }
    }

    /// Does this pattern accept the first bytes of a file, exactly as `check_file` decides?
    /// The kernel's buffer is zero-filled past the end of a short file, so we compare with zeros.
    pub fn matches_header(&self, header: &[u8]) -> bool {
        let Some((offset, magic, mask)) = self.magic_parts() else {
            return false;
        };
        magic.iter().zip(&mask).enumerate().all(|(i, (m, k))| {
            let b = header.get(offset + i).copied().unwrap_or(0);
            (b ^ m) & k == 0
        })
    }

    /// Can one file header satisfy both patterns? Exact: at every byte both patterns constrain,
    /// the bits both care about must agree; bytes only one side constrains can always be chosen.
    pub fn overlaps(&self, other: &Matcher) -> bool {
        match (self.magic_parts(), other.magic_parts()) {
            (Some((o1, m1, k1)), Some((o2, m2, k2))) => (0..BINPRM_BUF_SIZE).all(|pos| {
                let a = pos.checked_sub(o1).filter(|i| *i < m1.len());
                let b = pos.checked_sub(o2).filter(|i| *i < m2.len());
                match (a, b) {
                    (Some(i), Some(j)) => (m1[i] ^ m2[j]) & k1[i] & k2[j] == 0,
                    _ => true,
                }
            }),
            (None, None) => self == other,
            _ => false,
        }
    }
}

/// One binfmt_misc registration, as written to `register`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub name: String,
    pub matcher: Matcher,
    pub interpreter: String,
    pub flags: Flags,
}

/// The field of a record an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Delimiter,
    Name,
    Type,
    Offset,
    Magic,
    Mask,
    Interpreter,
    Flags,
    Record,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Delimiter => "delimiter",
            Field::Name => "name",
            Field::Type => "type",
            Field::Offset => "offset",
            Field::Magic => "magic",
            Field::Mask => "mask",
            Field::Interpreter => "interpreter",
            Field::Flags => "flags",
            Field::Record => "record",
        })
    }
}

/// A record the kernel would refuse (or that we refuse for the same reasons, earlier).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} (column {column}): {reason}")]
pub struct RecordError {
    pub field: Field,
    /// 1-based column in the record (byte offset + 1); 0 when the error is about the whole record.
    pub column: usize,
    pub reason: String,
}

impl crate::error::Classify for RecordError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::BadInput
    }
}

fn err(field: Field, column: usize, reason: impl Into<String>) -> RecordError {
    RecordError {
        field,
        column,
        reason: reason.into(),
    }
}

/// Escapes every byte as `\xHH`: unambiguous, delimiter-free, and the kernel decodes it.
pub fn escape_hex(bytes: &[u8]) -> String {
    // By hand: `format!` per byte was 2% of `install all` (33 records of ~40 bytes each).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 4);
    for &b in bytes {
        s.push_str("\\x");
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

/// Decodes a magic or mask field the way `string_unescape_inplace(UNESCAPE_HEX)` does: `\x`
/// followed by one or two hex digits is a byte; every other character stands for itself.
/// `column` is where the field starts, for error positions.
pub fn unescape_hex(field: Field, s: &str, column: usize) -> Result<Vec<u8>, RecordError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            let hex = |c: Option<&u8>| c.and_then(|c| (*c as char).to_digit(16));
            let Some(hi) = hex(b.get(i + 2)) else {
                return Err(err(
                    field,
                    column + i,
                    "\\x must be followed by hex digits, as in \\x7f",
                ));
            };
            match hex(b.get(i + 3)) {
                Some(lo) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 4;
                }
                None => {
                    out.push(hi as u8);
                    i += 3;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// A record's seven fields (`:name:type:offset:magic:mask:interpreter:flags`, any delimiter
/// the kernel accepts), each with the column it starts at (for error messages).
fn split_record(record: &str) -> Result<[(&str, usize); 7], RecordError> {
    let len = record.len();
    if !(MIN_RECORD_LEN..=MAX_RECORD_LEN).contains(&len) {
        return Err(err(
            Field::Record,
            0,
            format!(
                "record is {len} bytes; the kernel accepts {MIN_RECORD_LEN} to {MAX_RECORD_LEN}"
            ),
        ));
    }
    let mut chars = record.chars();
    let d = chars.next().unwrap_or(':');
    if matches!(d, 'P' | 'O' | 'C' | 'F' | '\n' | '\0') || d.is_ascii_hexdigit() || d == '\\' {
        return Err(err(
            Field::Delimiter,
            1,
            format!("{d:?} cannot be the delimiter; start the record with ':'"),
        ));
    }
    let body = &record[d.len_utf8()..];
    // Split into the seven fields, keeping each one's starting column for error messages.
    let mut fields: Vec<(&str, usize)> = Vec::with_capacity(7);
    let mut start = 0;
    for _ in 0..6 {
        match body[start..].find(d) {
            Some(i) => {
                fields.push((&body[start..start + i], start + d.len_utf8() + 1));
                start += i + d.len_utf8();
            }
            None => {
                let what = [
                    Field::Name,
                    Field::Type,
                    Field::Offset,
                    Field::Magic,
                    Field::Mask,
                    Field::Interpreter,
                ][fields.len()];
                return Err(err(
                    what,
                    start + d.len_utf8() + 1,
                    format!(
                        "missing the delimiter {d:?} after the {what} field; a record has 7 fields: {d}name{d}type{d}offset{d}magic{d}mask{d}interpreter{d}flags"
                    ),
                ));
            }
        }
    }
    fields.push((&body[start..], start + d.len_utf8() + 1));
    fields
        .try_into()
        .map_err(|_| err(Field::Record, 0, "a record has exactly seven fields"))
}

/// The matcher of a record's type, offset, magic and mask fields (each with its column).
fn parse_matcher(
    (typ, typ_col): (&str, usize),
    (offset, off_col): (&str, usize),
    (magic, magic_col): (&str, usize),
    (mask, mask_col): (&str, usize),
) -> Result<Matcher, RecordError> {
    Ok(match typ {
        "M" => {
            let offset = if offset.is_empty() {
                0
            } else {
                offset.parse::<usize>().map_err(|_| {
                    err(
                        Field::Offset,
                        off_col,
                        format!("{offset:?} is not a decimal number of bytes"),
                    )
                })?
            };
            let magic = unescape_hex(Field::Magic, magic, magic_col)?;
            if magic.is_empty() {
                return Err(err(Field::Magic, magic_col, "magic must not be empty"));
            }
            let mask = if mask.is_empty() {
                None
            } else {
                let m = unescape_hex(Field::Mask, mask, mask_col)?;
                if m.len() != magic.len() {
                    return Err(err(
                        Field::Mask,
                        mask_col,
                        format!(
                            "mask is {} bytes but magic is {}: they must be the same length",
                            m.len(),
                            magic.len()
                        ),
                    ));
                }
                Some(m)
            };
            Matcher::Magic {
                offset,
                magic,
                mask,
            }
        }
        "E" => Matcher::Extension(magic.to_owned()),
        other => {
            return Err(err(
                Field::Type,
                typ_col,
                format!("type {other:?} must be M (magic) or E (extension)"),
            ));
        }
    })
}

impl Registration {
    /// Checks everything the kernel checks in `create_entry`, plus the rules that keep the
    /// record printable and re-parsable (no control characters in name or interpreter).
    pub fn validate(&self) -> Result<(), RecordError> {
        validate_name(&self.name)?;
        match &self.matcher {
            Matcher::Magic {
                offset,
                magic,
                mask,
            } => {
                if magic.is_empty() {
                    return Err(err(Field::Magic, 0, "magic must not be empty"));
                }
                if let Some(mask) = mask
                    && mask.len() != magic.len()
                {
                    return Err(err(
                        Field::Mask,
                        0,
                        format!(
                            "mask is {} bytes but magic is {}: they must be the same length",
                            mask.len(),
                            magic.len()
                        ),
                    ));
                }
                if offset + magic.len() > BINPRM_BUF_SIZE {
                    return Err(err(
                        Field::Offset,
                        0,
                        format!(
                            "offset {offset} + magic length {} exceeds the {BINPRM_BUF_SIZE} bytes the kernel reads",
                            magic.len()
                        ),
                    ));
                }
            }
            Matcher::Extension(ext) => {
                if ext.is_empty() || ext.contains('/') || ext.chars().any(char::is_control) {
                    return Err(err(
                        Field::Magic,
                        0,
                        "extension must be non-empty, without '/' or control characters",
                    ));
                }
            }
        }
        if self.interpreter.is_empty() || !self.interpreter.starts_with('/') {
            return Err(err(
                Field::Interpreter,
                0,
                format!(
                    "interpreter {:?} must be an absolute path",
                    self.interpreter
                ),
            ));
        }
        if self.interpreter.chars().any(char::is_control) {
            return Err(err(
                Field::Interpreter,
                0,
                "interpreter path must not contain control characters",
            ));
        }
        let len = self.to_record_unchecked().len();
        if !(MIN_RECORD_LEN..=MAX_RECORD_LEN).contains(&len) {
            return Err(err(
                Field::Record,
                0,
                format!(
                    "record is {len} bytes; the kernel accepts {MIN_RECORD_LEN} to {MAX_RECORD_LEN}"
                ),
            ));
        }
        Ok(())
    }

    /// The record to write to `register`, after validation.
    pub fn to_record(&self) -> Result<String, RecordError> {
        self.validate()?;
        Ok(self.to_record_unchecked())
    }

    fn to_record_unchecked(&self) -> String {
        String::from_utf8(self.render(self.name.as_bytes()))
            .expect("a record made of UTF-8 fields is UTF-8")
    }

    /// The record with `name` (raw bytes) as the entry's name: how another tool's entry, whose
    /// name may hold spaces or bytes that are not UTF-8, is written back byte for byte. The name
    /// is checked against the kernel's own rules (`validate_kernel_name`), the rest as
    /// `validate` does.
    pub fn to_record_named(&self, name: &[u8]) -> Result<Vec<u8>, RecordError> {
        if name == self.name.as_bytes() && validate_name(&self.name).is_ok() {
            return self.to_record().map(String::into_bytes);
        }
        validate_kernel_name(name)?;
        Registration {
            name: "n".into(),
            ..self.clone()
        }
        .validate()?;
        let record = self.render(name);
        if !(MIN_RECORD_LEN..=MAX_RECORD_LEN).contains(&record.len()) {
            return Err(err(
                Field::Record,
                0,
                format!(
                    "record is {} bytes; the kernel accepts {MIN_RECORD_LEN} to {MAX_RECORD_LEN}",
                    record.len()
                ),
            ));
        }
        if self.delimiter(name).is_none() {
            return Err(err(
                Field::Name,
                2,
                "every delimiter appears in the name or interpreter",
            ));
        }
        Ok(record)
    }

    /// The first delimiter that appears in none of the free-text fields.
    fn delimiter(&self, name: &[u8]) -> Option<char> {
        let ext: &[u8] = match &self.matcher {
            Matcher::Extension(e) => e.as_bytes(),
            Matcher::Magic { .. } => b"",
        };
        let free_text = [name, self.interpreter.as_bytes(), ext];
        DELIMITERS
            .iter()
            .copied()
            .find(|d| free_text.iter().all(|t| !t.contains(&(*d as u8))))
    }

    fn render(&self, name: &[u8]) -> Vec<u8> {
        let interp = self.interpreter.as_bytes();
        let d = self.delimiter(name).unwrap_or(':');
        let (typ, offset, magic, mask) = match &self.matcher {
            Matcher::Magic {
                offset,
                magic,
                mask,
            } => (
                'M',
                offset.to_string(),
                escape_hex(magic),
                mask.as_deref().map(escape_hex).unwrap_or_default(),
            ),
            Matcher::Extension(e) => ('E', String::new(), e.clone(), String::new()),
        };
        let mut out = Vec::with_capacity(64 + name.len() + interp.len());
        out.push(d as u8);
        out.extend_from_slice(name);
        out.extend_from_slice(
            format!(
                "{d}{typ}{d}{offset}{d}{magic}{d}{mask}{d}{}{d}{flags}",
                self.interpreter,
                flags = self.flags
            )
            .as_bytes(),
        );
        out
    }

    /// Parses a register record with the kernel's grammar (`create_entry`). A trailing newline is
    /// accepted, as the kernel accepts it.
    pub fn parse_record(record: &str) -> Result<Registration, RecordError> {
        let [
            (name, _),
            (typ, typ_col),
            (offset, off_col),
            (magic, magic_col),
            (mask, mask_col),
            (interp, interp_col),
            (flags, flags_col),
        ] = split_record(record)?;
        let matcher = parse_matcher(
            (typ, typ_col),
            (offset, off_col),
            (magic, magic_col),
            (mask, mask_col),
        )?;
        let flags_text = flags.strip_suffix('\n').unwrap_or(flags);
        let flags = Flags::parse(flags_text).map_err(|e| {
            err(
                Field::Flags,
                flags_col + e.position,
                format!("{:?} is not a flag; use any of P O C F", e.found),
            )
        })?;
        let reg = Registration {
            name: name.to_owned(),
            matcher,
            interpreter: interp.to_owned(),
            flags,
        };
        // Positions for errors that validate() finds.
        let cols = |e: RecordError| {
            let column = match e.field {
                Field::Name => 2,
                Field::Magic => magic_col,
                Field::Mask => mask_col,
                Field::Offset => off_col,
                Field::Interpreter => interp_col,
                _ => e.column,
            };
            RecordError { column, ..e }
        };
        reg.validate().map_err(cols)?;
        Ok(reg)
    }

    /// Same registration as far as the kernel's behaviour goes (name, pattern, interpreter, flags).
    pub fn same_as(&self, other: &Registration) -> bool {
        self.name == other.name
            && self.interpreter == other.interpreter
            && self.flags.normalized() == other.flags.normalized()
            && self.matcher.same_pattern(&other.matcher)
    }
}

/// A name the way people read it: as is when it is UTF-8, else with every byte that is not
/// printable ASCII escaped as `\xHH` (so two different names never print the same unless one
/// holds a literal backslash sequence; the raw bytes stay authoritative).
pub fn display_name(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(s) => s.to_owned(),
        Err(_) => name.escape_ascii().to_string(),
    }
}

/// The kernel's own rules for an entry name (`create_entry`, and one dentry): non-empty, at most
/// 255 bytes, no `/`, not `.` or `..`, not a control file; NUL would end the record early.
/// Spaces and bytes that are not UTF-8 are accepted, as the kernel accepts them: other tools'
/// entries have such names, and rollback must write them back exactly.
pub fn validate_kernel_name(name: &[u8]) -> Result<(), RecordError> {
    let bad = |reason: &str| Err(err(Field::Name, 2, reason.to_owned()));
    if name.is_empty() {
        return bad("name must not be empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("name is longer than 255 bytes");
    }
    if name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
        return bad("name must not be '.', '..' or contain '/' or NUL");
    }
    if name == b"register" || name == b"status" {
        return bad("'register' and 'status' are the control files of binfmt_misc");
    }
    Ok(())
}

/// Entry names the kernel refuses, or that would break the binfmt_misc directory.
pub fn validate_name(name: &str) -> Result<(), RecordError> {
    let bad = |reason: &str| Err(err(Field::Name, 2, reason.to_owned()));
    if name.is_empty() {
        return bad("name must not be empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("name is longer than 255 bytes");
    }
    if name == "." || name == ".." || name.contains('/') {
        return bad("name must not be '.', '..' or contain '/'");
    }
    if name == "register" || name == "status" {
        return bad("'register' and 'status' are the control files of binfmt_misc");
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("name must not contain spaces or control characters");
    }
    Ok(())
}

/// One entry as the kernel reports it in `/proc/sys/fs/binfmt_misc/<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub registration: Registration,
    pub enabled: bool,
}

/// A `/proc/sys/fs/binfmt_misc/<name>` file we could not understand.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("entry {name:?}, line {line}: {reason}")]
pub struct EntryParseError {
    pub name: String,
    pub line: usize,
    pub reason: String,
}

/// An entry the kernel shows that we cannot read: the operation cannot go on.
impl crate::error::Classify for EntryParseError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Failed
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Parses the text of an entry file (`entry_status` in fs/binfmt_misc.c):
/// `enabled|disabled`, `interpreter X`, `flags: POCF`, then `offset N`, `magic HEX`, optional
/// `mask HEX` for type M, or `extension .X` for type E.
pub fn parse_entry(name: &str, text: &str) -> Result<Entry, EntryParseError> {
    let fail = |line: usize, reason: &str| EntryParseError {
        name: name.to_owned(),
        line,
        reason: reason.to_owned(),
    };
    let mut enabled = None;
    let mut interpreter = None;
    let mut flags = Flags::default();
    let mut offset = 0usize;
    let mut magic = None;
    let mut mask = None;
    let mut extension = None;
    // Lines end at '\n' only: an interpreter path may end in '\r' (`str::lines` would drop it).
    for (i, line) in text.split('\n').enumerate() {
        let n = i + 1;
        if line == "enabled" || line == "disabled" {
            enabled = Some(line == "enabled");
        } else if let Some(v) = line.strip_prefix("interpreter ") {
            interpreter = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("flags:") {
            flags = Flags::parse(v.trim()).map_err(|e| fail(n, &e.to_string()))?;
        } else if let Some(v) = line.strip_prefix("offset ") {
            offset = v
                .trim()
                .parse()
                .map_err(|_| fail(n, "offset is not a number"))?;
        } else if let Some(v) = line.strip_prefix("magic ") {
            magic = Some(decode_hex(v.trim()).ok_or_else(|| fail(n, "magic is not hex"))?);
        } else if let Some(v) = line.strip_prefix("mask ") {
            mask = Some(decode_hex(v.trim()).ok_or_else(|| fail(n, "mask is not hex"))?);
        } else if let Some(v) = line.strip_prefix("extension ") {
            // The kernel prints exactly one '.' before the extension, taken verbatim (it may
            // itself start with '.' or end with a space).
            extension = Some(v.strip_prefix('.').unwrap_or(v).to_owned());
        } else if !line.is_empty() {
            return Err(fail(n, &format!("unexpected line {line:?}")));
        }
    }
    let enabled = enabled.ok_or_else(|| fail(1, "missing enabled/disabled"))?;
    let interpreter = interpreter.ok_or_else(|| fail(2, "missing interpreter"))?;
    let matcher = match (magic, extension) {
        (Some(magic), None) => Matcher::Magic {
            offset,
            magic,
            mask,
        },
        (None, Some(ext)) => Matcher::Extension(ext),
        _ => return Err(fail(4, "expected exactly one of magic or extension")),
    };
    Ok(Entry {
        registration: Registration {
            name: name.to_owned(),
            matcher,
            interpreter,
            flags,
        },
        enabled,
    })
}

/// Renders an entry the way the kernel does; used by the recording fake and by tests.
pub fn render_entry(e: &Entry) -> String {
    let r = &e.registration;
    let mut s = format!(
        "{}\ninterpreter {}\nflags: {}\n",
        if e.enabled { "enabled" } else { "disabled" },
        r.interpreter,
        r.flags
    );
    match &r.matcher {
        Matcher::Magic {
            offset,
            magic,
            mask,
        } => {
            let hex = crate::input::hex;
            s += &format!("offset {offset}\nmagic {}\n", hex(magic));
            if let Some(m) = mask {
                s += &format!("mask {}\n", hex(m));
            }
        }
        Matcher::Extension(x) => s += &format!("extension .{x}\n"),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reg(record: &str) -> Registration {
        Registration::parse_record(record).unwrap()
    }

    #[test]
    fn flags_parse_display_and_normalize() {
        assert_eq!(Flags::parse("FP").unwrap().to_string(), "PF");
        assert_eq!(Flags::parse("C").unwrap().to_string(), "OC");
        assert_eq!(Flags::parse("").unwrap().to_string(), "");
        assert_eq!(Flags::parse("FCOP").unwrap().to_string(), "POCF");
        let e = Flags::parse("FX").unwrap_err();
        assert_eq!((e.position, e.found), (1, 'X'));
        assert!(
            Flags::parse("f").is_err(),
            "flags are case-sensitive like the kernel"
        );
    }

    #[test]
    fn parses_debian_qemu_record() {
        let r = reg(
            r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF",
        );
        assert_eq!(r.name, "qemu-aarch64");
        assert_eq!(r.interpreter, "/usr/libexec/qemu-binfmt/aarch64-binfmt-P");
        assert_eq!(r.flags.to_string(), "POF");
        let Matcher::Magic {
            offset,
            magic,
            mask,
        } = &r.matcher
        else {
            panic!("type M")
        };
        assert_eq!(*offset, 0);
        assert_eq!(&magic[..4], b"\x7fELF");
        assert_eq!(magic.len(), 20);
        assert_eq!(mask.as_ref().unwrap()[16], 0xfe);
    }

    #[test]
    fn escape_hex_spells_every_byte_in_lower_case() {
        assert_eq!(
            escape_hex(&[0x7f, b'E', 0, 0xff, 0xa0]),
            r"\x7f\x45\x00\xff\xa0"
        );
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(
            unescape_hex(Field::Magic, &escape_hex(&all), 0).unwrap(),
            all
        );
    }

    #[test]
    fn kernel_escape_rules() {
        // Literal text and one-digit escapes decode as the kernel's UNESCAPE_HEX does.
        let r = reg(r":x:M::\x7fELF\x2::/bin/i:");
        let Matcher::Magic { magic, mask, .. } = r.matcher else {
            panic!()
        };
        assert_eq!(magic, b"\x7fELF\x02");
        assert_eq!(mask, None);
        // Any other delimiter; extension type; trailing newline after flags.
        let r = reg("|jar|E||jar||/usr/bin/jexec|F\n");
        assert_eq!(r.matcher, Matcher::Extension("jar".into()));
        assert_eq!(r.flags.to_string(), "F");
    }

    /// Malformed records: the exact field, column and message.
    #[test]
    fn malformed_records() {
        let cases: &[(&str, Field, usize, &str)] = &[
            ("short", Field::Record, 0, "record is 5 bytes"),
            (
                "Fname:M::\\x7f::/bin/x:",
                Field::Delimiter,
                1,
                "cannot be the delimiter",
            ),
            (
                ":name:M::\\x7f::/bin/x",
                Field::Interpreter,
                16,
                "missing the delimiter",
            ),
            (
                ":name:Q::\\x7f::/bin/x:",
                Field::Type,
                7,
                "must be M (magic) or E",
            ),
            (
                ":name:M:zz:\\x7f::/bin/x:",
                Field::Offset,
                9,
                "not a decimal",
            ),
            (
                ":name:M::\\xzz::/bin/x:",
                Field::Magic,
                10,
                "followed by hex digits",
            ),
            (
                ":name:M::\\x7f:\\xff\\xff:/bin/x:",
                Field::Mask,
                15,
                "mask is 2 bytes but magic is 1",
            ),
            (
                ":name:M:::\\xff:/bin/x:",
                Field::Magic,
                10,
                "must not be empty",
            ),
            (
                ":name:M::\\x7f::/bin/x:FQ",
                Field::Flags,
                24,
                "'Q' is not a flag",
            ),
            (
                ":name:M::\\x7f::bin/x:F",
                Field::Interpreter,
                16,
                "absolute path",
            ),
            (":status:M::\\x7f::/bin/x:", Field::Name, 2, "control files"),
            (":a/b:M::\\x7f::/bin/x:", Field::Name, 2, "'/'"),
            (":..:M::\\x7f::/bin/x:", Field::Name, 2, "'..'"),
            (
                ":n:M:250:\\x01\\x02\\x03\\x04\\x05\\x06\\x07::/bin/x:",
                Field::Offset,
                6,
                "exceeds the 256 bytes",
            ),
        ];
        for (record, field, column, msg) in cases {
            let e = Registration::parse_record(record).unwrap_err();
            assert_eq!(e.field, *field, "{record}: {e}");
            assert_eq!(e.column, *column, "{record}: {e}");
            assert!(e.reason.contains(msg), "{record}: {e}");
        }
    }

    #[test]
    fn name_too_long_and_record_too_long() {
        let long = "n".repeat(256);
        let r = Registration {
            name: long,
            matcher: Matcher::Extension("x".into()),
            interpreter: "/bin/x".into(),
            flags: Flags::default(),
        };
        assert_eq!(r.validate().unwrap_err().field, Field::Name);
        let r = Registration {
            name: "n".into(),
            matcher: Matcher::Extension("x".into()),
            interpreter: format!("/{}", "i".repeat(1920)),
            flags: Flags::default(),
        };
        assert_eq!(r.validate().unwrap_err().field, Field::Record);
    }

    #[test]
    fn delimiter_avoids_colons_in_paths() {
        let r = Registration {
            name: "odd".into(),
            matcher: Matcher::Magic {
                offset: 0,
                magic: vec![0x7f],
                mask: None,
            },
            interpreter: "/opt/a:b/qemu".into(),
            flags: Flags::DEFAULT,
        };
        let rec = r.to_record().unwrap();
        assert!(rec.starts_with('|'), "{rec}");
        assert_eq!(Registration::parse_record(&rec).unwrap(), r);
    }

    #[test]
    fn entry_file_round_trip_and_real_sample() {
        let text = "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: PF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";
        let e = parse_entry("qemu-aarch64", text).unwrap();
        assert!(e.enabled);
        assert_eq!(e.registration.flags, Flags::DEFAULT);
        assert_eq!(render_entry(&e), text);
        let jar = "disabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n";
        let e = parse_entry("jar", jar).unwrap();
        assert_eq!(e.registration.matcher, Matcher::Extension("jar".into()));
        assert!(!e.enabled);
        assert!(parse_entry("x", "enabled\nflags: P\n").is_err());
        assert!(parse_entry("x", "enabled\ninterpreter /a\nmagic zz\n").is_err());
    }

    /// Found by the fuzzer (fuzz/corpus/*/regression-entry-*): the kernel prints the extension
    /// verbatim after one '.', and an interpreter path may end in '\r'; reading an entry back
    /// trimmed both, so the read-back after apply saw a different registration.
    #[test]
    fn entry_text_is_read_back_verbatim() {
        for ext in ["..", ".x", "x ", " x"] {
            let e = Entry {
                registration: Registration {
                    name: "e".into(),
                    matcher: Matcher::Extension(ext.into()),
                    interpreter: "/usr/bin/x".into(),
                    flags: Flags::default(),
                },
                enabled: true,
            };
            assert_eq!(parse_entry("e", &render_entry(&e)).unwrap(), e, "{ext:?}");
        }
        let text = "enabled\ninterpreter /usr/bin/x\r\nflags: \nextension .py\n";
        let e = parse_entry("e", text).unwrap();
        assert_eq!(e.registration.interpreter, "/usr/bin/x\r");
        assert_eq!(render_entry(&e), text);
    }

    #[test]
    fn matching_and_overlap() {
        let aarch64 = reg(
            r":a:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/q:F",
        )
        .matcher;
        let mut hdr =
            b"\x7fELF\x02\x01\x01\x03\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\xb7\x00".to_vec();
        assert!(aarch64.matches_header(&hdr), "PIE with GNU OSABI");
        hdr[18] = 0x3e;
        assert!(!aarch64.matches_header(&hdr), "x86_64");
        assert!(
            !aarch64.matches_header(b"\x7fELF"),
            "short file compares with zeros"
        );
        let loose = reg(r":b:M::\x7fELF::/q:F").matcher;
        assert!(loose.overlaps(&aarch64) && aarch64.overlaps(&loose));
        let shifted = reg(r":c:M:18:\x3e::/q:F").matcher;
        assert!(!shifted.overlaps(&aarch64));
        let shifted_same = reg(r":c:M:18:\xb7::/q:F").matcher;
        assert!(shifted_same.overlaps(&aarch64));
        assert!(aarch64.same_pattern(&aarch64.clone()));
        assert!(!aarch64.same_pattern(&loose));
    }

    /// Another tool's name, with a space and a byte that is not UTF-8, is written back exactly
    /// (a delimiter the name does not hold is chosen); names the kernel refuses are refused.
    #[test]
    fn record_with_a_raw_name() {
        let r = reg(r":x:E::zzz::/usr/bin/python3:");
        let rec = r.to_record_named(b"other tool \xff:").unwrap();
        assert_eq!(rec, b"|other tool \xff:|E||zzz||/usr/bin/python3|".to_vec());
        assert_eq!(display_name(b"other tool \xff"), r"other tool \xff");
        assert_eq!(display_name(b"foo bar"), "foo bar");
        for bad in [&b""[..], b"a/b", b"..", b"status", b"a\0b"] {
            assert_eq!(
                r.to_record_named(bad).unwrap_err().field,
                Field::Name,
                "{bad:?}"
            );
        }
        // Our own validated names take the usual path.
        assert_eq!(
            r.to_record_named(b"x").unwrap(),
            r.to_record().unwrap().into_bytes()
        );
    }

    fn arb_registration() -> impl Strategy<Value = Registration> {
        let name = "[a-zA-Z0-9._+-][a-zA-Z0-9._+:|#-]{0,40}"
            .prop_filter("kernel-reserved names", |n| {
                validate_name(n).is_ok() && n != "." && n != ".."
            });
        let interp = "/[a-zA-Z0-9._/:| -]{1,60}";
        let flags = (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(p, o, c, f)| {
                Flags {
                    preserve_argv0: p,
                    open_binary: o,
                    credentials: c,
                    fix_binary: f,
                }
                .normalized()
            },
        );
        let magic = (
            0usize..200,
            prop::collection::vec(any::<u8>(), 1..56),
            any::<bool>(),
        )
            .prop_map(|(offset, magic, with_mask)| {
                let mask = with_mask.then(|| magic.iter().map(|b| b.rotate_left(3)).collect());
                Matcher::Magic {
                    offset,
                    magic,
                    mask,
                }
            });
        let ext = "[a-z0-9]{1,8}".prop_map(Matcher::Extension);
        (name, prop_oneof![magic, ext], interp, flags).prop_map(
            |(name, matcher, interpreter, flags)| Registration {
                name,
                matcher,
                interpreter,
                flags,
            },
        )
    }

    proptest! {
        #[test]
        fn record_round_trip(r in arb_registration()) {
            let rec = r.to_record().unwrap();
            prop_assert!(rec.len() <= MAX_RECORD_LEN);
            prop_assert_eq!(Registration::parse_record(&rec).unwrap(), r);
        }

        #[test]
        fn entry_round_trip(r in arb_registration(), enabled in any::<bool>()) {
            let e = Entry { registration: r, enabled };
            let back = parse_entry(&e.registration.name, &render_entry(&e)).unwrap();
            prop_assert_eq!(back, e);
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,300}") {
            let _ = Registration::parse_record(&s);
        }

        #[test]
        fn overlap_is_symmetric_and_witnessed(
            a in prop::collection::vec(any::<u8>(), 1..8),
            ka in prop::collection::vec(any::<u8>(), 8),
            b in prop::collection::vec(any::<u8>(), 1..8),
            kb in prop::collection::vec(any::<u8>(), 8),
            oa in 0usize..4, ob in 0usize..4,
        ) {
            let ma = Matcher::Magic { offset: oa, mask: Some(ka[..a.len()].to_vec()), magic: a };
            let mb = Matcher::Magic { offset: ob, mask: Some(kb[..b.len()].to_vec()), magic: b };
            prop_assert_eq!(ma.overlaps(&mb), mb.overlaps(&ma));
            // When they overlap, build a witness header that both accept.
            if ma.overlaps(&mb) {
                let mut hdr = vec![0u8; 16];
                for m in [&ma, &mb] {
                    if let Matcher::Magic { offset, magic, mask } = m {
                        let k = mask.as_ref().unwrap();
                        for i in 0..magic.len() {
                            hdr[offset + i] = (hdr[offset + i] & !k[i]) | (magic[i] & k[i]);
                        }
                    }
                }
                prop_assert!(ma.matches_header(&hdr) && mb.matches_header(&hdr));
            }
        }
    }
}
