//! Thread scheduling priority: background threads (the analysis workers, the endpoint
//! monitor's writer) run below the threads that serve senders and requests. No actors, no
//! keys, no tables.

/// Lowers the calling thread's scheduling priority by `nice` (Linux applies `setpriority`
/// to one thread when given its thread id; threads it starts later inherit it). `who` names
/// the thread in the warning logged when that fails; the thread then runs on as it was.
pub fn lower_thread_priority(nice: i32, who: &str) {
    if nice <= 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        #[allow(unsafe_code)] // reason: gettid/getpriority/setpriority have no safe wrappers.
        // SAFETY: plain syscalls on this thread's own id; no memory is shared with them.
        let failed = unsafe {
            let tid = libc::gettid() as libc::id_t;
            let now = libc::getpriority(libc::PRIO_PROCESS, tid);
            libc::setpriority(libc::PRIO_PROCESS, tid, (now + nice).min(19)) != 0
        };
        if failed {
            log::warn!(
                "{who}: could not lower its priority by {nice}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = who;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn lowers_only_the_calling_thread() {
        #[allow(unsafe_code)]
        // SAFETY: reads this thread's own priority.
        let prio =
            || unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        let before_here = prio();
        let inside = std::thread::spawn(move || {
            let start = prio();
            super::lower_thread_priority(3, "test thread");
            let lowered = prio();
            let child = std::thread::spawn(prio).join().unwrap();
            (start, lowered, child)
        })
        .join()
        .unwrap();
        assert_eq!(inside.1, (inside.0 + 3).min(19));
        assert_eq!(inside.2, inside.1, "threads it starts inherit it");
        assert_eq!(prio(), before_here, "other threads keep theirs");
        super::lower_thread_priority(0, "no-op");
        assert_eq!(prio(), before_here);
    }
}
