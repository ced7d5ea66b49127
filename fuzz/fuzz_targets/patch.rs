#![no_main]
// Merge patch, JSON Patch and path edits applied through the update rules.
libfuzzer_sys::fuzz_target!(|data: &[u8]| hearth::fuzzing::patch(data));
