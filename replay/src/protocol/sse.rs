//! Server-sent events (LoadDensity's `sse_user`): `open`, `wait`, `close`.

use super::{CompileCx, Failure, FailureKind, Protocol, SessionCx, Step, StepCx};

/// The task fields a WebSocket step takes besides the common ones.
pub(crate) const FIELDS: &[&str] = &["method", "request_url", "url", "expect", "headers", "count"];

#[derive(Debug)]
pub(crate) struct SseTask {}

impl SseTask {
    pub(crate) fn compile(cx: &mut CompileCx<'_, '_>) -> crate::Result<SseTask> {
        Err(cx.err("", "sse tasks are being built"))
    }
}

/// One user's event streams.
#[derive(Default)]
pub(crate) struct SseSessions {}

pub(crate) struct Sse;

impl Protocol for Sse {
    type Task = SseTask;
    type Session = SseSessions;

    fn session(_: &SessionCx) -> SseSessions {
        SseSessions::default()
    }

    async fn exec(_: &mut SseSessions, _: &SseTask, _: &mut StepCx<'_, '_>) -> Step {
        Step::failed("".into(), Failure::new(FailureKind::Plan, "not built"))
    }
}
