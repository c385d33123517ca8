//! The vendored, patched llama.cpp as seen from Rust: backend setup and system information.

/// llama.cpp's own description of the compiled backends and CPU features.
pub fn system_info() -> String {
    // SAFETY: llama_print_system_info returns a pointer to a static, NUL-terminated buffer.
    unsafe {
        let p = llama_cpp_sys_2::llama_print_system_info();
        if p.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Devices that decoder layers can be offloaded to: GPUs (CUDA, …) and RPC workers already
/// added with `--rpc`. Not `llama_supports_gpu_offload`, which is true in every build that
/// compiles ggml-rpc in, whether or not a worker was given.
pub fn offload_devices() -> usize {
    // SAFETY: ggml's device registry is initialised on first use and lives for the process;
    // indices below ggml_backend_dev_count are valid.
    unsafe {
        (0..llama_cpp_sys_2::ggml_backend_dev_count())
            .map(|i| {
                llama_cpp_sys_2::ggml_backend_dev_type(llama_cpp_sys_2::ggml_backend_dev_get(i))
            })
            .filter(|&t| {
                t == llama_cpp_sys_2::GGML_BACKEND_DEVICE_TYPE_GPU
                    || t == llama_cpp_sys_2::GGML_BACKEND_DEVICE_TYPE_IGPU
            })
            .count()
    }
}
