//! Tests that need the module's insides: the real drop path observed before
//! munmap, and the guard pages (a child process that must die with SIGSEGV).
//! The public behaviour is tested in crypto/tests/secret.rs.

use super::sys::hooks;
use super::*;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};

/// Selects what the child test does; unset in a normal test run.
const CHILD_ENV: &str = "BITCRAPS_SECRET_GUARD_CHILD";
const CHILD_TEST: &str = "secret::tests::guard_page_child";
const SIGSEGV: i32 = 11;

#[test]
fn drop_zeroizes_pages_before_unmap() {
    let page = sys::page_size();
    for len in [1, 32, page - 1, page, page + 1, MAX_SECRET_BYTES] {
        let mut buf = SecretBuf::new(len).unwrap();
        buf.expose_mut().fill(0xA5);
        assert!(buf.expose().iter().all(|&b| b == 0xA5));
        let secret_addr = buf.expose().as_ptr() as usize;

        hooks::arm_before_unmap();
        drop(buf);
        let (addr, seen) = hooks::take_before_unmap().expect("drop did not reach the hook");

        // The hook saw this buffer's data pages (all of them, the secret at the end)...
        assert_eq!(seen.len(), len.div_ceil(page) * page, "len {len}");
        assert_eq!(addr % page, 0);
        assert_eq!(
            secret_addr + len,
            addr + seen.len(),
            "secret not right-aligned"
        );
        // ...and every byte was zero while still mapped.
        let nonzero = seen.iter().filter(|&&b| b != 0).count();
        assert_eq!(nonzero, 0, "len {len}: {nonzero} bytes survived the drop");
    }
}

#[test]
fn wipe_zeroizes_the_whole_buffer_in_place() {
    let mut buf = SecretBuf::from_slice(&[0xFF; 100]).unwrap();
    let before = buf.expose().as_ptr();
    buf.wipe();
    assert_eq!(buf.len(), 100);
    assert_eq!(buf.expose().as_ptr(), before, "wipe must not reallocate");
    assert!(buf.map.data().iter().all(|&b| b == 0));
}

fn run_child(mode: &str) -> ExitStatus {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            CHILD_TEST,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Guard against a filter that matches nothing (the child would "pass" by
    // running no test at all).
    assert!(
        stdout.contains("running 1 test") || out.status.signal().is_some(),
        "child ({mode}) ran no test:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.status
}

#[test]
fn guard_page_write_one_past_end_faults() {
    let status = run_child("past-end");
    assert_eq!(status.signal(), Some(SIGSEGV), "child: {status:?}");
}

#[test]
fn guard_page_write_before_data_pages_faults() {
    let status = run_child("before-start");
    assert_eq!(status.signal(), Some(SIGSEGV), "child: {status:?}");
}

/// The control: the same child writing the last byte inside the buffer exits 0,
/// so the two faults above come from the guard pages, not from the harness.
#[test]
fn guard_page_child_in_bounds_write_survives() {
    let status = run_child("in-bounds");
    assert!(status.success(), "child: {status:?}");
}

/// Runs only as the child of the guard-page tests (selected by name, with
/// `CHILD_ENV` set); a plain `--ignored` run returns at once.
#[test]
#[ignore = "child process of the guard_page_* tests"]
fn guard_page_child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    // No core file for the expected crash.
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: None,
        },
    );
    let page = sys::page_size();
    let mut buf = SecretBuf::from_slice(b"correct horse battery staple").unwrap();
    let len = buf.len();
    let start = buf.expose_mut().as_mut_ptr();
    let target = match mode.as_str() {
        // One past the last byte: the first byte of the trailing guard page.
        "past-end" => start.wrapping_add(len),
        // The byte before the first data page: the last byte of the leading guard.
        "before-start" => start.wrapping_sub((start as usize) % page + 1),
        "in-bounds" => {
            buf.expose_mut()[len - 1] = 0x41;
            eprintln!("child: wrote the last byte in bounds");
            return;
        }
        other => panic!("unknown child mode {other}"),
    };
    assert_eq!(
        (target as usize + usize::from(mode == "before-start")) % page,
        0,
        "target is not at a page boundary"
    );
    eprintln!("child: writing at {target:p} ({mode})");
    hooks::poke_guard(target);
    eprintln!("child: the write at {target:p} returned");
}

/// One mapping of /proc/self/smaps: (start, end, perms, VmFlags).
fn smaps_entry_containing(addr: usize) -> Option<(usize, usize, String, String)> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut current: Option<(usize, usize, String)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) {
                let perms = fields.next().unwrap_or("").to_string();
                current = Some((start, end, perms));
                continue;
            }
        }
        if let (Some(flags), Some((start, end, perms))) =
            (line.strip_prefix("VmFlags:"), current.as_ref())
        {
            if (*start..*end).contains(&addr) {
                return Some((*start, *end, perms.clone(), flags.trim().to_string()));
            }
        }
    }
    None
}

/// What the kernel says about one buffer: data pages read/write, locked
/// (`lo`), excluded from core dumps (`dd`) and wiped in a forked child (`wf`);
/// the pages on either side inaccessible (`---p`).
#[test]
fn kernel_view_guard_pages_locked_dontdump_wipeonfork() {
    let page = sys::page_size();
    let buf = SecretBuf::from_slice(&[9u8; 5000]).unwrap();
    let first = buf.expose().as_ptr() as usize;
    let data_start = first - first % page;
    let data_end = first + buf.len();
    assert_eq!(data_end % page, 0, "secret not right-aligned");

    let (start, end, perms, flags) = smaps_entry_containing(first).unwrap();
    assert!(start <= data_start && end >= data_end, "{start:x}-{end:x}");
    assert!(perms.starts_with("rw-p"), "data pages: {perms}");
    let flags: Vec<&str> = flags.split_whitespace().collect();
    assert!(flags.contains(&"dd"), "no MADV_DONTDUMP: {flags:?}");
    assert!(flags.contains(&"wf"), "no MADV_WIPEONFORK: {flags:?}");
    assert_eq!(flags.contains(&"lo"), buf.is_locked(), "{flags:?}");

    for guard in [data_start - 1, data_end] {
        let (_, _, perms, _) = smaps_entry_containing(guard).unwrap();
        assert!(perms.starts_with("---p"), "guard at {guard:x}: {perms}");
    }
}
