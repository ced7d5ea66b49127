//! Replays every input kept in fuzz/corpus/ through the fuzz targets' entry points on stable
//! Rust, so what fuzzing once found stays fixed in CI.

use std::path::Path;

#[test]
fn the_fuzz_corpus_replays_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut total = 0;
    for (target, run) in [
        ("frame", hearth::fuzzing::frame as fn(&[u8])),
        ("patch", hearth::fuzzing::patch),
        ("project", hearth::fuzzing::project),
    ] {
        let dir = root.join(target);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            run(&data);
            n += 1;
        }
        assert!(n > 0, "no corpus for {target}");
        total += n;
    }
    eprintln!("replayed {total} corpus inputs");
}
