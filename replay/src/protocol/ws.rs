//! WebSocket steps (LoadDensity's `websocket_user`): `connect`, `send`, `recv`, `sendrecv`,
//! `close` over one connection per user and `connection` name.

use super::{CompileCx, Failure, FailureKind, Protocol, SessionCx, Step, StepCx};

/// The task fields a WebSocket step takes besides the common ones.
pub(crate) const FIELDS: &[&str] = &[
    "method",
    "request_url",
    "url",
    "payload",
    "expect",
    "headers",
    "subprotocols",
];

#[derive(Debug)]
pub(crate) struct WsTask {}

impl WsTask {
    pub(crate) fn compile(cx: &mut CompileCx<'_, '_>) -> crate::Result<WsTask> {
        Err(cx.err("", "websocket tasks are being built"))
    }
}

/// One user's WebSocket connections.
#[derive(Default)]
pub(crate) struct WsSessions {}

pub(crate) struct WebSocket;

impl Protocol for WebSocket {
    type Task = WsTask;
    type Session = WsSessions;

    fn session(_: &SessionCx) -> WsSessions {
        WsSessions::default()
    }

    async fn exec(_: &mut WsSessions, _: &WsTask, _: &mut StepCx<'_, '_>) -> Step {
        Step::failed("".into(), Failure::new(FailureKind::Plan, "not built"))
    }
}
