//! Fuzz target for the `rnfs-nfs3` argument (server side) and result (client side) decoders.
//! Input layout and checks: see `rnfs_fuzz::program_fuzz_target!`.
#![no_main]

rnfs_fuzz::program_fuzz_target!(rnfs_nfs3, rnfs_fuzz::NFS3_PROCEDURES);
