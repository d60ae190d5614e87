//! `orion-real`: see `orion-real --help`.

fn main() -> std::process::ExitCode {
    let code = orion_gpu::cli::main_with(std::env::args_os(), &mut std::io::stdout(), &mut std::io::stderr());
    std::process::ExitCode::from(code.clamp(0, 255) as u8)
}
