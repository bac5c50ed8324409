fn main() -> std::process::ExitCode {
    canhgac_loadgen::main()
}
