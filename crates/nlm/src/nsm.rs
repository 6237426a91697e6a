//! Wire types of the Network Status Monitor, version 1 (program 100024), the protocol of
//! `rpc.statd`.
//!
//! A lock manager asks its local status monitor to watch the hosts it holds locks for (SM_MON);
//! when a monitored host reboots, its own status monitor sends SM_NOTIFY to every peer it knew,
//! and the local one calls the lock manager back with a [`status`] at the program, version and
//! procedure given in SM_MON's [`my_id`]. The callback is not part of NSM's program; which
//! procedure a lock manager registers for it is its own choice (see
//! [`NLMPROC_NSM_NOTIFY`](crate::NLMPROC_NSM_NOTIFY)).
//!
//! Transcribed from The Open Group's "Protocols for Interworking: XNFS" (Issue 4 / Version 3W,
//! chapter 11, "Network Status Monitor Protocol"), cross-checked against the BSDs' `sm_inter.x`.
//! Type, field and variant names follow the `.x`. [`Args::decode`] is the entry point for
//! dispatch and fuzzing.

use rnfs_xdr::{xdr_enum, xdr_struct};
pub use rnfs_xdr::{ArgsError, BufMut, Bytes, Decoder, Opaque, XdrDecode, XdrEncode};

/// Program number of the status monitor.
pub const SM_PROG: u32 = 100_024;
/// The only version.
pub const SM_VERS: u32 = 1;

/// Longest host name (bytes).
pub const SM_MAXSTRLEN: usize = 1024;
/// Size of the private data a monitoring program stores with a monitor request (bytes).
pub const SM_PRIV_SIZE: usize = 16;

pub const SM_NULL: u32 = 0;
pub const SM_STAT: u32 = 1;
pub const SM_MON: u32 = 2;
pub const SM_UNMON: u32 = 3;
pub const SM_UNMON_ALL: u32 = 4;
pub const SM_SIMU_CRASH: u32 = 5;
pub const SM_NOTIFY: u32 = 6;

/// A host name, at most [`SM_MAXSTRLEN`] bytes (bytes, not necessarily UTF-8).
pub type sm_string = Opaque<SM_MAXSTRLEN>;

xdr_struct! {
    /// SM_STAT's argument: the host asked about.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct sm_name {
        pub mon_name: sm_string,
    }
}

xdr_enum! {
    /// Whether the status monitor agrees to monitor (the `.x` calls the type `res`, or `sm_res`).
    pub enum res {
        STAT_SUCC = 0,
        STAT_FAIL = 1,
    }
}

xdr_struct! {
    /// The result of SM_STAT and SM_MON: success or failure, and the local status monitor's
    /// state number.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct sm_stat_res {
        pub res_stat: res,
        pub state: i32,
    }
}

xdr_struct! {
    /// The result of SM_UNMON and SM_UNMON_ALL: the local state number. State numbers grow by one
    /// at every change: odd while the host is up, even while it is down.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct sm_stat {
        pub state: i32,
    }
}

xdr_struct! {
    /// Who to call back when a monitored host changes state: host `my_name`, RPC program, version
    /// and procedure (signed in the `.x`; any value decodes).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct my_id {
        pub my_name: sm_string,
        pub my_prog: i32,
        pub my_vers: i32,
        pub my_proc: i32,
    }
}

xdr_struct! {
    /// A monitor registration: watch `mon_name` for `my_id` (SM_UNMON's argument).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct mon_id {
        pub mon_name: sm_string,
        pub my_id: my_id,
    }
}

xdr_struct! {
    /// SM_MON's argument: the registration and 16 bytes the status monitor hands back, untouched,
    /// in the [`status`] callback.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct mon {
        pub mon_id: mon_id,
        pub r#priv: [u8; SM_PRIV_SIZE],
    }
}

xdr_struct! {
    /// SM_NOTIFY's argument: host `mon_name` now has state number `state` (sent by a status monitor
    /// that restarted to its peers).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct stat_chge {
        pub mon_name: sm_string,
        pub state: i32,
    }
}

xdr_struct! {
    /// The callback a status monitor sends to a monitoring program (at the program, version and
    /// procedure of its [`my_id`]) when a monitored host changes state: the host, its new state
    /// number and the private data given in SM_MON. Not a procedure of this program; Linux's
    /// lockd receives it as NLM procedure 16 (`nlm_reboot` there, `nlm_sm_status` in FreeBSD).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct status {
        pub mon_name: sm_string,
        pub state: i32,
        pub r#priv: [u8; SM_PRIV_SIZE],
    }
}

procedure_enum! {
    /// The arguments of any NSM v1 procedure.
    pub enum Args ("arguments") {
        Null = SM_NULL,
        Stat(sm_name) = SM_STAT,
        Mon(mon) = SM_MON,
        Unmon(mon_id) = SM_UNMON,
        UnmonAll(my_id) = SM_UNMON_ALL,
        SimuCrash = SM_SIMU_CRASH,
        Notify(stat_chge) = SM_NOTIFY,
    }
}

procedure_enum! {
    /// The results of any NSM v1 procedure.
    pub enum Res ("results") {
        Null = SM_NULL,
        Stat(sm_stat_res) = SM_STAT,
        Mon(sm_stat_res) = SM_MON,
        Unmon(sm_stat) = SM_UNMON,
        UnmonAll(sm_stat) = SM_UNMON_ALL,
        SimuCrash = SM_SIMU_CRASH,
        Notify = SM_NOTIFY,
    }
}
