//! Any bytes given to the plan compiler give a compiled plan or an input error, never a panic:
//! numbers out of range, wrong types, invalid UTF-8 and unknown fields included. The plan is
//! placed in a directory that does not exist, so the files it names cannot be read.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("/nonexistent/ld-fuzz/plan.json");
    match ld_replay::check_plan(path, data) {
        Ok(check) => assert!(check.names <= data.len()),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
