fn main() -> std::process::ExitCode {
    canhgac_collector::cli::main()
}
