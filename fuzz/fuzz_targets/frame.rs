#![no_main]
// Frame decoding and command parsing: never panic on any input.
libfuzzer_sys::fuzz_target!(|data: &[u8]| hearth::fuzzing::frame(data));
