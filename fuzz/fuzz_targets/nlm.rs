//! Fuzz target for the `rnfs-nlm` NLM v4 argument (server side) and result (client side)
//! decoders. Input layout and checks: see `rnfs_fuzz::program_fuzz_target!`; procedures 16 to 19
//! are not part of NLM v4 and must be `ProcUnavail`.
#![no_main]

rnfs_fuzz::program_fuzz_target!(
    rnfs_nlm,
    rnfs_fuzz::NLM_PROCEDURES,
    rnfs_fuzz::NLM_UNAVAILABLE
);
