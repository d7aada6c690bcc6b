//! The `devstack-rust` binary: everything is in the library.

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    devstack_rust::run().await
}
