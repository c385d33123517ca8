fn main() { println!("{}", artemis_gguf::llama::system_info()); }
