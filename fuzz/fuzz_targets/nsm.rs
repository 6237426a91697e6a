//! Fuzz target for the `rnfs_nlm::nsm` (status monitor, NSM v1) argument and result decoders.
//! Input layout and checks: see `rnfs_fuzz::program_fuzz_target!`.
#![no_main]

use rnfs_nlm::nsm;

rnfs_fuzz::program_fuzz_target!(nsm, rnfs_fuzz::NSM_PROCEDURES);
