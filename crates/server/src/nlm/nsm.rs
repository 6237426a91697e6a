//! The status monitor (NSM, program 100024 version 1; XNFS chapter 11) as a lock server needs it:
//! SM_NOTIFY from a client's status monitor says that host rebooted, and frees everything it
//! held (as NLM FREE_ALL does). SM_STAT answers with the server's state number. SM_MON, SM_UNMON,
//! SM_UNMON_ALL and SM_SIMU_CRASH are a local lock manager's requests to its own host's monitor;
//! rnfsd is not a general status monitor, so they are unavailable.

use rnfs_nlm::nsm::*;
use rnfs_oncrpc::AuthStat;

use crate::call::Call;
use crate::locking::client_key;
use crate::program::{handler, null, unavailable, Procedure, Program};
use crate::service::Service;

/// NSM version 1.
pub const NSM: Program = Program {
    prog: SM_PROG,
    name: "NSM",
    low: SM_VERS,
    high: SM_VERS,
    procedures: &[
        Procedure::new(SM_NULL, "NULL", handler!(null)),
        Procedure::new(SM_STAT, "STAT", handler!(stat)),
        unavailable(SM_MON, "MON"),
        unavailable(SM_UNMON, "UNMON"),
        unavailable(SM_UNMON_ALL, "UNMON_ALL"),
        unavailable(SM_SIMU_CRASH, "SIMU_CRASH"),
        Procedure::new(SM_NOTIFY, "NOTIFY", handler!(notify)).modifies(),
    ],
    stats_any_version: false,
    tcp_only: false,
};

/// SM_STAT: whether `mon_name` could be monitored (it cannot, here) and our state number.
fn stat(svc: &Service, _: &Call, _: sm_name) -> Result<sm_stat_res, AuthStat> {
    Ok(sm_stat_res {
        res_stat: res::STAT_FAIL,
        state: svc.locking.nsm_state(),
    })
}

/// SM_NOTIFY: host `mon_name` (at the caller's address) restarted with a new state number.
fn notify(svc: &Service, call: &Call, args: stat_chge) -> Result<(), AuthStat> {
    svc.locking.free_client(
        call.now_ms,
        &client_key(call.peer.ip(), args.mon_name.as_bytes()),
    );
    Ok(())
}
