//! SecretBuf through its public API: formatting, equality, wiping, limits,
//! threads, and the process-wide protection counters and mlock fallback. The
//! counter tests run in a child process of their own (this binary re-run with a
//! filter), so other tests' buffers cannot move the numbers they check.
//!
//! The memory-level tests (pages zero before munmap, guard pages fault) are unit
//! tests in src/secret/tests.rs: they need the module's insides.

// Helpers outside #[test] functions unwrap too (a failure is a test failure).
#![allow(clippy::unwrap_used)]

use bitcraps_crypto::secret::{
    protection_status, take_lock_warning, ProtectionStatus, SecretBuf, SecretError,
    MAX_LIVE_BUFFERS, MAX_SECRET_BYTES,
};
use std::process::Command;
use std::sync::{Arc, Barrier};

const CHILD_ENV: &str = "BITCRAPS_SECRET_TEST_CHILD";

// ---------------------------------------------------------------- type-level

#[test]
fn send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<SecretBuf>();
    assert_send_sync::<Arc<SecretBuf>>();
}

/// Compile-time: `SecretBuf` implements neither `Clone` nor `serde::Serialize`.
/// If it did, the `_` below would have two candidate impls and this file would not
/// compile (the type inference becomes ambiguous).
#[test]
fn not_clone_not_serialize() {
    trait AmbiguousIfClone<A> {
        fn check() {}
    }
    impl<T> AmbiguousIfClone<()> for T {}
    struct IsClone;
    impl<T: Clone> AmbiguousIfClone<IsClone> for T {}
    <SecretBuf as AmbiguousIfClone<_>>::check();

    trait AmbiguousIfSerialize<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfSerialize<()> for T {}
    struct IsSerialize;
    impl<T: ?Sized + serde::Serialize> AmbiguousIfSerialize<IsSerialize> for T {}
    <SecretBuf as AmbiguousIfSerialize<_>>::check();
}

// ---------------------------------------------------------------- behaviour

#[test]
fn debug_and_display_reveal_neither_content_nor_length() {
    let secret = b"hunter2-hunter2-hunter2-hunter2-hunter2"; // 39 bytes
    let buf = SecretBuf::from_slice(secret).unwrap();
    let hex_secret = hex::encode(secret);
    for shown in [
        format!("{buf:?}"),
        format!("{buf:#?}"),
        format!("{buf}"),
        format!("{:?}", Some(&buf)),
    ] {
        assert!(shown.contains("SecretBuf(redacted)"), "{shown}");
        assert!(!shown.contains("hunter"), "content leaked: {shown}");
        assert!(!shown.contains(&hex_secret[..8]), "content leaked: {shown}");
        assert!(!shown.contains("39"), "length leaked: {shown}");
        assert!(!shown.contains("104"), "a content byte leaked: {shown}"); // 'h'
    }
    // Two secrets of different lengths format identically.
    let other = SecretBuf::from_slice(&[7u8; 5]).unwrap();
    assert_eq!(format!("{buf:?}"), format!("{other:?}"));
    assert_eq!(format!("{buf}"), format!("{other}"));
}

#[test]
fn errors_name_no_requested_length() {
    let too_large = MAX_SECRET_BYTES + 12345;
    let err = SecretBuf::new(too_large).unwrap_err();
    assert_eq!(err, SecretError::TooLarge);
    let text = format!("{err} {err:?}");
    assert!(!text.contains(&too_large.to_string()), "{text}");
}

#[test]
fn limits() {
    assert_eq!(SecretBuf::new(0).unwrap_err(), SecretError::Empty);
    assert_eq!(SecretBuf::from_slice(&[]).unwrap_err(), SecretError::Empty);
    assert_eq!(
        SecretBuf::from_vec(Vec::new()).unwrap_err(),
        SecretError::Empty
    );
    assert_eq!(
        SecretBuf::new(MAX_SECRET_BYTES + 1).unwrap_err(),
        SecretError::TooLarge
    );
    assert_eq!(
        SecretBuf::from_slice(&vec![1u8; MAX_SECRET_BYTES + 1]).unwrap_err(),
        SecretError::TooLarge
    );
    let one = SecretBuf::new(1).unwrap();
    assert_eq!(one.len(), 1);
    assert!(!one.is_empty());
    let max = SecretBuf::new(MAX_SECRET_BYTES).unwrap();
    assert_eq!(max.len(), MAX_SECRET_BYTES);
}

#[test]
fn new_is_zero_filled_and_writable() {
    for len in [1, 31, 4095, 4096, 4097, MAX_SECRET_BYTES] {
        let mut buf = SecretBuf::new(len).unwrap();
        assert_eq!(buf.len(), len);
        assert_eq!(buf.expose().len(), len);
        assert!(buf.expose().iter().all(|&b| b == 0), "len {len}");
        // Every byte, including the last one before the trailing guard page.
        for (i, b) in buf.expose_mut().iter_mut().enumerate() {
            *b = (i % 251) as u8 + 1;
        }
        assert!(buf
            .expose()
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 251) as u8 + 1));
    }
}

#[test]
fn from_slice_from_vec_from_string_copy_the_content() {
    let a = SecretBuf::from_slice(b"0123456789").unwrap();
    assert_eq!(a.expose(), b"0123456789");
    let b = SecretBuf::from_vec(b"passphrase".to_vec()).unwrap();
    assert_eq!(b.expose(), b"passphrase");
    let c = SecretBuf::from_string("1234 pin".to_string()).unwrap();
    assert_eq!(c.expose(), b"1234 pin");
}

#[test]
fn ct_eq_is_correct() {
    let buf = SecretBuf::from_slice(b"exact secret value").unwrap();
    assert!(buf.ct_eq(b"exact secret value"));
    assert!(!buf.ct_eq(b"Exact secret value"), "first byte differs");
    assert!(!buf.ct_eq(b"exact secret valuE"), "last byte differs");
    assert!(!buf.ct_eq(b"exact secret valu"), "shorter");
    assert!(!buf.ct_eq(b"exact secret value!"), "longer");
    assert!(!buf.ct_eq(b""), "empty");
    let other = SecretBuf::from_slice(b"exact secret value").unwrap();
    assert!(buf.ct_eq(other.expose()));
    // Every single-bit flip anywhere is detected.
    let mut probe = b"exact secret value".to_vec();
    for i in 0..probe.len() * 8 {
        probe[i / 8] ^= 1 << (i % 8);
        assert!(!buf.ct_eq(&probe), "bit {i}");
        probe[i / 8] ^= 1 << (i % 8);
    }
    assert!(buf.ct_eq(&probe));
}

#[test]
fn wipe_zeroes_and_keeps_length() {
    let mut buf = SecretBuf::from_slice(&[0xEE; 300]).unwrap();
    buf.wipe();
    assert_eq!(buf.len(), 300);
    assert!(buf.expose().iter().all(|&b| b == 0));
    assert!(buf.ct_eq(&[0; 300]));
    // Reusable after the wipe.
    buf.expose_mut().copy_from_slice(&[0x11; 300]);
    assert!(buf.ct_eq(&[0x11; 300]));
}

// ---------------------------------------------------------------- threads

#[test]
fn threads_create_use_and_drop_concurrently() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 200;
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                let mut kept = Vec::new();
                for round in 0..ROUNDS {
                    let len = 1 + (t * 131 + round * 17) % 5000;
                    let fill = (t * ROUNDS + round) as u8;
                    let mut buf = SecretBuf::new(len).unwrap();
                    buf.expose_mut().fill(fill);
                    assert!(buf.ct_eq(&vec![fill; len]));
                    assert!(buf.expose().iter().all(|&b| b == fill));
                    if round % 3 == 0 {
                        buf.wipe();
                        assert!(buf.expose().iter().all(|&b| b == 0));
                        buf.expose_mut().fill(fill);
                    }
                    // Keep some alive a while, drop others at once, so creation
                    // and drops on different threads interleave.
                    if round % 4 == 0 {
                        kept.push((buf, fill, len));
                    }
                    if kept.len() > 8 {
                        let (old, f, l) = kept.remove(0);
                        assert!(old.ct_eq(&vec![f; l]), "another thread changed a buffer");
                    }
                }
                for (buf, f, l) in kept {
                    assert!(buf.ct_eq(&vec![f; l]));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn one_buffer_shared_by_many_threads() {
    let secret: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let buf = Arc::new(SecretBuf::from_slice(&secret).unwrap());
    let secret = Arc::new(secret);
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let buf = Arc::clone(&buf);
            let secret = Arc::clone(&secret);
            std::thread::spawn(move || {
                for i in 0..200 {
                    assert!(buf.ct_eq(&secret));
                    assert_eq!(buf.expose()[(t * 997 + i) % secret.len()], {
                        secret[(t * 997 + i) % secret.len()]
                    });
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // The last Arc drops the buffer on this thread; ownership moved across threads.
    let buf = Arc::try_unwrap(buf).unwrap();
    let moved = std::thread::spawn(move || {
        assert_eq!(buf.len(), 10_000);
        drop(buf);
    });
    moved.join().unwrap();
}

// ---------------------------------------------------------------- counters (children)

/// Re-runs this test binary selecting exactly `test` (an ignored test that does
/// its work only when `CHILD_ENV` names it) and returns its output on success.
fn run_child(test: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, test)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child {test}: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("1 passed"),
        "child {test} ran no test:\n{stdout}"
    );
    assert!(
        stderr.contains("child done"),
        "child {test} returned early:\n{stderr}"
    );
    stdout
}

fn is_child(test: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|v| v == test)
}

#[test]
fn protection_counters_move() {
    run_child("child_protection_counters");
}

#[test]
#[ignore = "child process of protection_counters_move"]
fn child_protection_counters() {
    if !is_child("child_protection_counters") {
        return;
    }
    let page = rustix::param::page_size() as u64;
    let idle = ProtectionStatus {
        mlock_available: true,
        live_buffers: 0,
        locked_bytes: 0,
        lock_failures: 0,
        guard_pages: true,
        unlocked_buffers: 0,
    };
    assert_eq!(protection_status(), idle);

    let a = SecretBuf::new(32).unwrap();
    let b = SecretBuf::new(page as usize + 1).unwrap(); // two data pages
    let c = SecretBuf::from_slice(b"token").unwrap();
    assert!(
        a.is_locked() && b.is_locked() && c.is_locked(),
        "mlock failed"
    );
    let s = protection_status();
    assert_eq!(s.live_buffers, 3);
    assert_eq!(s.locked_bytes, 4 * page);
    assert_eq!((s.lock_failures, s.unlocked_buffers), (0, 0));
    assert!(s.mlock_available && s.guard_pages);

    drop(b);
    let s = protection_status();
    assert_eq!((s.live_buffers, s.locked_bytes), (2, 2 * page));
    // Refused requests allocate nothing.
    assert!(SecretBuf::new(0).is_err() && SecretBuf::new(MAX_SECRET_BYTES + 1).is_err());
    assert_eq!(protection_status(), s);

    // Remember where the buffers lived (guard pages included) before dropping.
    let ranges: Vec<(usize, usize)> = [&a, &c]
        .iter()
        .map(|buf| {
            let first = buf.expose().as_ptr() as usize;
            let page = page as usize;
            (first - first % page - page, first + buf.len() + page)
        })
        .collect();
    drop((a, c));
    assert_eq!(protection_status(), idle);
    // Unmapped, guard pages too: no mapping overlaps the old ranges any more
    // (this child runs one test, so nothing else maps memory meanwhile).
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let range = line.split_whitespace().next().unwrap();
        let (lo, hi) = range.split_once('-').unwrap();
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).unwrap(),
            usize::from_str_radix(hi, 16).unwrap(),
        );
        for &(start, end) in &ranges {
            assert!(hi <= start || lo >= end, "still mapped after drop: {line}");
        }
    }
    assert_eq!(take_lock_warning(), None);
    // serde shape the node serves at /api/v1/memory-protection/status.
    let json = serde_json::to_value(protection_status()).unwrap();
    for key in [
        "mlock_available",
        "live_buffers",
        "locked_bytes",
        "lock_failures",
        "guard_pages",
        "unlocked_buffers",
    ] {
        assert!(json.get(key).is_some(), "missing {key}: {json}");
    }
    eprintln!("child done");
}

#[test]
fn live_buffer_cap_is_enforced() {
    run_child("child_live_buffer_cap");
}

#[test]
#[ignore = "child process of live_buffer_cap_is_enforced"]
fn child_live_buffer_cap() {
    if !is_child("child_live_buffer_cap") {
        return;
    }
    let mut bufs: Vec<SecretBuf> = (0..MAX_LIVE_BUFFERS)
        .map(|_| SecretBuf::new(8).unwrap())
        .collect();
    assert_eq!(protection_status().live_buffers, MAX_LIVE_BUFFERS);
    assert_eq!(SecretBuf::new(8).unwrap_err(), SecretError::TooManyBuffers);
    assert_eq!(
        protection_status().live_buffers,
        MAX_LIVE_BUFFERS,
        "refusal leaked a slot"
    );
    bufs.pop();
    bufs.push(SecretBuf::new(8).unwrap());
    drop(bufs);
    assert_eq!(protection_status().live_buffers, 0);
    eprintln!("child done");
}

#[test]
fn mlock_failure_falls_back_and_warns_once() {
    let out = run_child("child_real_mlock_failure");
    assert!(out.contains("1 passed"));
}

/// Forces a real mlock failure: RLIMIT_MEMLOCK = 0 for the process and no
/// CAP_IPC_LOCK in this thread's effective set (root ignores the limit with it).
/// Like `prlimit --memlock=0` for an unprivileged user.
#[test]
#[ignore = "child process of mlock_failure_falls_back_and_warns_once"]
fn child_real_mlock_failure() {
    use rustix::process::{setrlimit, Resource, Rlimit};
    use rustix::thread::{capabilities, set_capabilities, CapabilitySet};
    if !is_child("child_real_mlock_failure") {
        return;
    }
    setrlimit(
        Resource::Memlock,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .unwrap();
    let mut caps = capabilities(None).unwrap();
    caps.effective.remove(CapabilitySet::IPC_LOCK);
    set_capabilities(None, caps).unwrap();

    assert_eq!(take_lock_warning(), None, "no failure yet");
    let mut a = SecretBuf::from_slice(b"pin 4711").unwrap();
    assert!(!a.is_locked(), "mlock succeeded despite RLIMIT_MEMLOCK=0");
    let s = protection_status();
    assert_eq!(s.live_buffers, 1);
    assert_eq!(s.locked_bytes, 0);
    assert_eq!(s.lock_failures, 1);
    assert_eq!(s.unlocked_buffers, 1);
    assert!(!s.mlock_available);
    assert!(s.guard_pages);

    // Warned exactly once, with what an operator needs to fix it.
    let warning = take_lock_warning().expect("a warning after the first failure");
    for needle in ["mlock failed", "RLIMIT_MEMLOCK is 0 bytes", "CAP_IPC_LOCK"] {
        assert!(warning.contains(needle), "{needle:?} not in {warning:?}");
    }
    assert!(!warning.contains("4711"));
    assert_eq!(take_lock_warning(), None, "warned twice");

    // The unlocked buffer still works; more failures count but do not warn again.
    a.expose_mut()[0] = b'P';
    assert!(a.ct_eq(b"Pin 4711"));
    let b = SecretBuf::new(100).unwrap();
    assert!(!b.is_locked());
    let s = protection_status();
    assert_eq!(
        (s.lock_failures, s.unlocked_buffers, s.live_buffers),
        (2, 2, 2)
    );
    assert_eq!(take_lock_warning(), None);

    drop((a, b));
    let s = protection_status();
    assert_eq!(
        (s.live_buffers, s.unlocked_buffers, s.locked_bytes),
        (0, 0, 0)
    );
    assert!(!s.mlock_available, "sticky after a failure");
    eprintln!("child done");
}
