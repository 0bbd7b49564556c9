//! Replays the cargo-fuzz corpora (fuzz/corpus/*) on stable Rust, so every
//! input the fuzzers found interesting — and every shrunk crash, once added to
//! the corpus — stays a regression test of the normal suite.

#[path = "../../fuzz/common.rs"]
mod common;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = format!("{}/../fuzz/corpus/{target}", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let data = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("fuzz input {} panics", path.display());
        }
        n += 1;
    }
    println!("{target}: replayed {n} corpus inputs");
    n
}

#[test]
fn parse_check_corpus() {
    assert!(replay("parse_check", common::parse_check) >= 50);
}

#[test]
fn nft_roundtrip_corpus() {
    assert!(replay("nft_roundtrip", common::nft_roundtrip) >= 2);
}
