//! What a child inherits of the spawning thread's signal state.
//!
//! The signal mask survives `fork` and `exec`, and the standard library deliberately lets a child
//! inherit it ("Inherit the signal mask from the parent rather than resetting it"; it only resets
//! SIGPIPE's disposition). A loop thread that blocks SIGINT or SIGTERM (to leave them to a
//! `sigwait` thread, say) would otherwise start children deaf to Ctrl-C and to `kill`. So when
//! the spawning thread blocks any signal, aioloop adds a `pre_exec` step that empties the mask
//! in the child, between `fork` and `exec`. Without one the standard library can use
//! `posix_spawn`, which is faster; that is why the step is added only when needed.
//!
//! Dispositions need no step: `exec` resets caught signals to their default action, and aioloop
//! ignores no signal (`SIG_IGN` is the only disposition that survives `exec`).

/// Returns true if the calling thread blocks any signal.
pub(crate) fn thread_blocks_signals() -> bool {
    // SAFETY: `pthread_sigmask` with a null new set only reads the mask into a zeroed local
    // `sigset_t`; `sigismember` reads that local set.
    unsafe {
        let mut current: libc::sigset_t = std::mem::zeroed();
        if libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut current) != 0 {
            return false;
        }
        (1..=super::hub::last_signal()).any(|sig| libc::sigismember(&current, sig) == 1)
    }
}

/// Makes children of `cmd` start with an empty signal mask.
pub(crate) fn reset_mask_in_child(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between `fork` and `exec`, where only
    // async-signal-safe calls are allowed: it calls `sigemptyset` and `sigprocmask` (both
    // async-signal-safe) on a set on its own stack, and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
}
