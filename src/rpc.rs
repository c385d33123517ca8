//! llama.cpp's RPC backend: remote devices for the decoder (`--rpc HOST:PORT,...`) and the worker
//! side (`artemis-rpc-server`). Both are built from the same vendored llama.cpp, so the protocol
//! versions always match between our binaries.
//!
//! llama.cpp aborts the process when a worker cannot be reached or breaks the protocol. So each
//! endpoint is probed here first (TCP connect with a short timeout, then the protocol's HELLO with
//! a version check), and an abort callback turns a worker that dies mid-run into one error line.

use std::ffi::{c_char, c_void, CStr, CString};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

// ggml-rpc.h (the sys crate's bindings do not include it).
extern "C" {
    fn ggml_backend_rpc_add_server(endpoint: *const c_char) -> *mut c_void;
    fn ggml_backend_rpc_start_server(
        endpoint: *const c_char,
        cache_dir: *const c_char,
        n_threads: usize,
        n_devices: usize,
        devices: *mut llama_cpp_sys_2::ggml_backend_dev_t,
    );
}

/// ggml-rpc.h `RPC_PROTO_MAJOR_VERSION` of the vendored llama.cpp.
pub const RPC_PROTO_MAJOR: u8 = 7;
/// `RPC_CMD_HELLO` (ggml-rpc.cpp asserts it is 14 in every version).
const RPC_CMD_HELLO: u8 = 14;
/// transport.h `RPC_CONN_CAPS_SIZE`.
const RPC_CONN_CAPS_SIZE: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("--rpc {endpoint}: {message}")]
    Endpoint { endpoint: String, message: String },
}

fn endpoint_err(endpoint: &str, message: impl Into<String>) -> RpcError {
    RpcError::Endpoint {
        endpoint: endpoint.to_string(),
        message: message.into(),
    }
}

/// Parses `HOST:PORT[,HOST:PORT...]`.
pub fn parse_endpoints(list: &str) -> Result<Vec<String>, RpcError> {
    let eps: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if eps.is_empty() {
        return Err(endpoint_err(list, "expected HOST:PORT[,HOST:PORT...]"));
    }
    for e in &eps {
        match e.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => {}
            _ => return Err(endpoint_err(e, "expected HOST:PORT")),
        }
    }
    Ok(eps)
}

/// Connects to a worker and checks its protocol version, within `timeout`; returns the version.
pub fn probe(endpoint: &str, timeout: Duration) -> Result<(u8, u8, u8), RpcError> {
    let addr = endpoint
        .to_socket_addrs()
        .map_err(|e| endpoint_err(endpoint, format!("cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| endpoint_err(endpoint, "cannot resolve"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| {
        endpoint_err(
            endpoint,
            format!("cannot connect: {e} (is artemis-rpc-server running there?)"),
        )
    })?;
    s.set_read_timeout(Some(timeout)).ok();
    s.set_write_timeout(Some(timeout)).ok();
    let mut msg = vec![RPC_CMD_HELLO];
    msg.extend_from_slice(&(RPC_CONN_CAPS_SIZE as u64).to_le_bytes());
    msg.extend_from_slice(&[0u8; RPC_CONN_CAPS_SIZE]);
    s.write_all(&msg)
        .map_err(|e| endpoint_err(endpoint, format!("handshake failed: {e}")))?;
    let mut size = [0u8; 8];
    s.read_exact(&mut size).map_err(|e| {
        endpoint_err(
            endpoint,
            format!("no handshake answer ({e}): not an RPC worker, or another protocol"),
        )
    })?;
    let size = u64::from_le_bytes(size) as usize;
    if size < 3 || size > 4096 {
        return Err(endpoint_err(
            endpoint,
            format!("unexpected handshake answer ({size} bytes): not a llama.cpp RPC worker"),
        ));
    }
    let mut rsp = vec![0u8; size];
    s.read_exact(&mut rsp)
        .map_err(|e| endpoint_err(endpoint, format!("handshake cut short: {e}")))?;
    let v = (rsp[0], rsp[1], rsp[2]);
    if v.0 != RPC_PROTO_MAJOR {
        return Err(endpoint_err(endpoint, format!("worker speaks RPC protocol {}.{}.{}, this build {}.x: run artemis-rpc-server from the same release", v.0, v.1, v.2, RPC_PROTO_MAJOR)));
    }
    Ok(v)
}

extern "C" fn on_ggml_abort(message: *const c_char) {
    let msg = if message.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned()
    };
    let msg = msg
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string();
    eprintln!("artemis: llama.cpp stopped: {msg} (an RPC worker may have gone away)");
    std::process::exit(1);
}

/// Registers the workers' devices with llama.cpp after probing each; llama.cpp then places the
/// decoder's layers on them (with `-ngl`). Installs the abort hook that reports a lost worker.
pub fn add_workers(endpoints: &[String], timeout: Duration) -> Result<(), RpcError> {
    for e in endpoints {
        probe(e, timeout)?;
    }
    // SAFETY: a plain function pointer that never returns into ggml.
    unsafe {
        llama_cpp_sys_2::ggml_set_abort_callback(Some(on_ggml_abort));
    }
    for e in endpoints {
        let c = CString::new(e.as_str()).map_err(|_| endpoint_err(e, "contains a NUL byte"))?;
        // SAFETY: valid C string; the returned registry is owned by ggml.
        let reg = unsafe { ggml_backend_rpc_add_server(c.as_ptr()) };
        if reg.is_null() {
            return Err(endpoint_err(e, "llama.cpp could not add the worker"));
        }
        unsafe {
            llama_cpp_sys_2::ggml_backend_register(reg as llama_cpp_sys_2::ggml_backend_reg_t)
        };
    }
    Ok(())
}

/// Which local devices a worker offers.
pub enum WorkerDevices {
    Cpu,
    /// ggml device indices (GPUs), as listed by [`local_devices`].
    Indices(Vec<usize>),
}

/// Local ggml devices: (index, name, description).
pub fn local_devices() -> Vec<(usize, String, String)> {
    let n = unsafe { llama_cpp_sys_2::ggml_backend_dev_count() };
    (0..n)
        .map(|i| unsafe {
            let d = llama_cpp_sys_2::ggml_backend_dev_get(i);
            let name = CStr::from_ptr(llama_cpp_sys_2::ggml_backend_dev_name(d))
                .to_string_lossy()
                .into_owned();
            let desc = CStr::from_ptr(llama_cpp_sys_2::ggml_backend_dev_description(d))
                .to_string_lossy()
                .into_owned();
            (i, name, desc)
        })
        .collect()
}

/// Serves local devices to RPC clients at `endpoint` until the process ends.
pub fn serve(endpoint: &str, threads: usize, devices: WorkerDevices) -> Result<(), String> {
    let mut devs: Vec<llama_cpp_sys_2::ggml_backend_dev_t> = match devices {
        WorkerDevices::Cpu => {
            let d = unsafe {
                llama_cpp_sys_2::ggml_backend_dev_by_type(
                    llama_cpp_sys_2::GGML_BACKEND_DEVICE_TYPE_CPU,
                )
            };
            if d.is_null() {
                return Err("no CPU device".into());
            }
            vec![d]
        }
        WorkerDevices::Indices(ix) => {
            let n = unsafe { llama_cpp_sys_2::ggml_backend_dev_count() };
            ix.iter()
                .map(|&i| {
                    if i < n {
                        Ok(unsafe { llama_cpp_sys_2::ggml_backend_dev_get(i) })
                    } else {
                        Err(format!("--device {i}: there are {n} devices"))
                    }
                })
                .collect::<Result<_, _>>()?
        }
    };
    let c = CString::new(endpoint).map_err(|_| "endpoint contains a NUL byte".to_string())?;
    // SAFETY: valid pointers for the duration of the (blocking) call.
    unsafe {
        ggml_backend_rpc_start_server(
            c.as_ptr(),
            std::ptr::null(),
            threads,
            devs.len(),
            devs.as_mut_ptr(),
        )
    };
    Err(format!(
        "the RPC server at {endpoint} stopped (port in use?)"
    ))
}

/// `--rpc` and `--tensor-split`, the same on every binary that loads a decoder.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RpcArgs {
    /// llama.cpp RPC workers (artemis-rpc-server) for the decoder's layers: HOST:PORT[,HOST:PORT...].
    /// Layers go there with -ngl; the vision encoder stays on this machine.
    #[arg(long)]
    pub rpc: Option<String>,
    /// Share of the offloaded layers per device, e.g. 3,1: the --rpc workers in order, then
    /// local GPUs (llama.cpp's --tensor-split; default: by free memory).
    #[arg(
        long = "tensor-split",
        value_name = "A,B,...",
        allow_hyphen_values = true
    )]
    pub tensor_split: Option<String>,
}

impl RpcArgs {
    /// Probes and adds the `--rpc` workers, then checks `--tensor-split` against the offload
    /// devices now present; returns the shares (empty: llama.cpp's default split).
    pub fn attach(&self) -> Result<Vec<f32>, String> {
        if let Some(list) = &self.rpc {
            parse_endpoints(list)
                .and_then(|eps| add_workers(&eps, Duration::from_secs(3)))
                .map_err(|e| e.to_string())?;
        }
        match &self.tensor_split {
            Some(s) => crate::cli::parse_tensor_split(s, crate::llama::offload_devices()),
            None => Ok(Vec::new()),
        }
    }
}
