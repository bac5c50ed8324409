fn main() -> std::process::ExitCode {
    canhgac_agent::cli::main()
}
