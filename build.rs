//! The arch table (registrations/arches.toml) as JSON in OUT_DIR, which `binfmt::arch` embeds
//! and parses at run time: the same data, several times faster to read than TOML. The table's
//! invariants are the crate's own check (`Table::check`), run by its tests.

fn main() {
    const TABLE: &str = "registrations/arches.toml";
    println!("cargo::rerun-if-changed={TABLE}");
    let src = std::fs::read_to_string(TABLE).unwrap_or_else(|e| panic!("{TABLE}: {e}"));
    let value: toml::Value = toml::from_str(&src).unwrap_or_else(|e| panic!("{TABLE}: {e}"));
    let json = serde_json::to_string(&value).expect("a TOML value is JSON");
    let out = std::path::Path::new(&std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("arches.json");
    std::fs::write(&out, json).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}
