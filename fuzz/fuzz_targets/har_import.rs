//! Any bytes given to the HAR importer give a plan or an error, never a panic.
#![no_main]

use ld_converters::{Format, ImportOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Format::detect(data);
    let options = ImportOptions {
        think_time: true,
        ..ImportOptions::default()
    };
    if let Ok(import) = ld_converters::import(Format::Har, "fuzz.har", data, &options) {
        let text = import.to_json_string();
        let again = ld_plan::Plan::parse(&text).expect("a written plan reads back");
        assert_eq!(again.to_json_string(), text);
    }
});
