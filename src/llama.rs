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
