//! `ld` shares its name with the system linker: with this binary first on PATH, gcc must still
//! link programs, because linker invocations are handed over to the next `ld` on PATH.

use std::process::Command;

use assert_cmd::cargo::cargo_bin;

#[test]
fn a_c_program_links_with_this_ld_first_on_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin dir");
    std::fs::copy(cargo_bin("ld"), bin.join("ld")).expect("copy ld");
    // A second copy later on PATH must not send the call back to the first one.
    let bin2 = dir.path().join("bin2");
    std::fs::create_dir(&bin2).expect("bin2 dir");
    std::fs::copy(cargo_bin("ld"), bin2.join("ld")).expect("copy ld");
    let source = dir.path().join("hello.c");
    std::fs::write(
        &source,
        "#include <stdio.h>\nint main(void) { puts(\"linked\"); return 0; }\n",
    )
    .expect("source");
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        bin2.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let exe = dir.path().join("hello");
    let out = Command::new("gcc")
        .arg(&source)
        .arg("-o")
        .arg(&exe)
        .env("PATH", &path)
        .output()
        .expect("gcc runs");
    assert!(
        out.status.success(),
        "gcc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().expect("program runs");
    assert_eq!(String::from_utf8_lossy(&run.stdout), "linked\n");

    // A linker flag given straight to this binary reaches the system linker.
    let version = Command::new(bin.join("ld"))
        .arg("-v")
        .env("PATH", &path)
        .output()
        .expect("ld -v");
    assert!(version.status.success());
    assert!(
        String::from_utf8_lossy(&version.stdout).contains("GNU ld"),
        "{:?}",
        version
    );

    // The toolkit's own commands still work under the same PATH.
    let help = Command::new(bin.join("ld"))
        .arg("--help")
        .env("PATH", &path)
        .output()
        .expect("help");
    assert!(String::from_utf8_lossy(&help.stdout).contains("import"));
}

#[test]
fn linker_arguments_without_another_linker_fail_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(cargo_bin("ld"), dir.path().join("ld")).expect("copy ld");
    let out = Command::new(dir.path().join("ld"))
        .args(["-o", "a.out", "main.o"])
        .env("PATH", dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no other `ld` is on PATH"));
}
