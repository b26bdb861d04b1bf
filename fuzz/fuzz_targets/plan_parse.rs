//! Any text given to the plan reader gives a plan or an error, never a panic; a plan that reads
//! writes back to text that reads to the same plan.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(plan) = ld_plan::Plan::parse(text) {
        let written = plan.to_json_string();
        let again = ld_plan::Plan::parse(&written).expect("a written plan reads back");
        assert_eq!(again.to_json_string(), written);
        for (i, action) in plan.actions.iter().enumerate() {
            if action.command == "LD_start_test" {
                let _ = action.as_start_test(&plan.pointer(i));
            }
        }
    }
});
