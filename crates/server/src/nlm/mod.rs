//! File locking for NFSv3 clients: NLM version 4 (The Open Group, XNFS Issue 4, chapter 10, and
//! its 64-bit revision in RFC 1813 Appendix II) and the part of NSM (XNFS chapter 11) a lock
//! server answers. Each program has its table, one row per procedure (see [`crate::program`]);
//! the lock state they act on is [`crate::locking`]'s.

mod nsm;
mod table;

pub(crate) use nsm::NSM;
pub(crate) use table::NLM4;
