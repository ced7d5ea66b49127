#![no_main]
// Field projection over arbitrary documents and field lists.
libfuzzer_sys::fuzz_target!(|data: &[u8]| hearth::fuzzing::project(data));
