//! Fuzz target for the `rnfs-mount` argument (server side) and result (client side) decoders.
//! Input layout and checks: see `rnfs_fuzz::program_fuzz_target!`.
#![no_main]

rnfs_fuzz::program_fuzz_target!(rnfs_mount, rnfs_fuzz::MOUNT_PROCEDURES);
