//! First-party plugins embedded in the agent binary, so one file works out
//! of the box. Any of them can be replaced by a `.wasm` file in the config.

include!(concat!(env!("OUT_DIR"), "/builtin.rs"));
