//! artemis-rpc-server: a llama.cpp RPC worker built from the same vendored llama.cpp as the other
//! artemis binaries (so the protocol always matches). Clients (`artemis-chat --rpc`,
//! `artemis-serve --rpc`) place decoder layers on the devices it offers.
//!
//! The RPC protocol has no authentication and no encryption: anyone who can reach the port can
//! use the worker's memory and compute. Keep it on loopback, a private network, or an SSH tunnel.

use std::process::ExitCode;

use clap::Parser;

use artemis_gguf::rpc::{local_devices, serve, WorkerDevices};

/// Serve this machine's CPU (or GPUs) to artemis-chat / artemis-serve over llama.cpp's RPC protocol.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Address to listen on (a non-loopback address exposes an unauthenticated service).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 50052)]
    port: u16,
    /// CPU threads (default and -1: all cores).
    #[arg(short = 't', long, allow_hyphen_values = true, value_parser = |s: &str| artemis_gguf::cli::parse_threads("-t", s))]
    threads: Option<usize>,
    /// Device indices to serve (see --list-devices; default: the CPU).
    #[arg(short = 'd', long = "device", value_delimiter = ',')]
    devices: Vec<usize>,
    /// Memory to advertise, in MiB (informational; llama.cpp's worker reports the device's own).
    #[arg(short = 'm', long = "mem")]
    mem: Option<u64>,
    /// List the devices of this build and exit.
    #[arg(long = "list-devices")]
    list_devices: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // the backend (and its devices) must be initialised before listing or serving
    if let Err(e) = artemis_gguf::engine::backend(false) {
        eprintln!("artemis-rpc-server: {e}");
        return ExitCode::FAILURE;
    }
    if args.list_devices {
        for (i, name, desc) in local_devices() {
            println!("{i}: {name} ({desc})");
        }
        return ExitCode::SUCCESS;
    }
    if !matches!(args.host.as_str(), "127.0.0.1" | "localhost" | "::1") {
        eprintln!(
            "artemis-rpc-server: warning: listening on {} — the RPC protocol has no authentication or encryption; \
             anyone who can reach this port can use this machine's memory and compute. Prefer 127.0.0.1 with an SSH tunnel \
             (ssh -N -L 50052:127.0.0.1:50052 worker) or a private network.",
            args.host
        );
    }
    if let Some(m) = args.mem {
        eprintln!("artemis-rpc-server: note: --mem {m} is informational; the worker reports its device's memory");
    }
    let threads = args
        .threads
        .unwrap_or_else(artemis_gguf::cli::default_threads);
    let endpoint = format!("{}:{}", args.host, args.port);
    let devices = if args.devices.is_empty() {
        WorkerDevices::Cpu
    } else {
        WorkerDevices::Indices(args.devices.clone())
    };
    eprintln!("artemis-rpc-server: serving on {endpoint} with {threads} threads");
    match serve(&endpoint, threads, devices) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("artemis-rpc-server: {e}");
            ExitCode::FAILURE
        }
    }
}
