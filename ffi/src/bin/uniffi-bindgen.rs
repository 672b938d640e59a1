//! Generates the Kotlin, Swift and Python bindings from the compiled fitkart-ffi library.

fn main() {
    uniffi::uniffi_bindgen_main()
}
