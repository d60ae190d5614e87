//! `orion-profile`: measured kernel traces (see `orion_gpu::profile` and `orion-profile --help`).

fn main() -> std::process::ExitCode {
    let code = orion_gpu::profile::cli::main_with(std::env::args_os());
    std::process::ExitCode::from(code.clamp(0, 255) as u8)
}
