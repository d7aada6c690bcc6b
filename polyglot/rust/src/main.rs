//! The `devstack-api` binary: everything is in the library, but for the one process-wide
//! setting below.

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    // Process-wide, explicit and only here: at most two malloc arenas, where glibc would give
    // each allocating thread (HTTP worker, runtime, AMQP I/O thread) one of its own. Measured
    // effect on the figures in docs/polyglot/rust.md: small (the heap is ~12 MB either way).
    // SAFETY: mallopt only changes allocator parameters; it is called before any other thread
    // exists.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    devstack_rust::run().await
}
