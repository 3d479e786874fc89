//! Exports only the frozen version symbol, with an ABI version no server speaks, as a plugin built
//! against a far newer SDK would. The host must refuse it with one clear line and never call further.

/// A version from the future.
#[unsafe(no_mangle)]
pub extern "C" fn poppet_plugin_abi_version() -> u32 {
    999
}
