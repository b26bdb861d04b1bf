//! Raw TCP and UDP (LoadDensity's `socket_user`): send a payload, read what comes back.

use super::{CompileCx, Failure, FailureKind, Protocol, SessionCx, Step, StepCx};

/// The task fields a WebSocket step takes besides the common ones.
pub(crate) const FIELDS: &[&str] = &[
    "target",
    "payload",
    "expect_bytes",
    "expect_substring",
    "tls",
];

#[derive(Debug)]
pub(crate) struct SocketTask {
    udp: bool,
}

impl SocketTask {
    pub(crate) fn kind(&self) -> super::ProtocolKind {
        if self.udp {
            super::ProtocolKind::Udp
        } else {
            super::ProtocolKind::Tcp
        }
    }

    pub(crate) fn compile(cx: &mut CompileCx<'_, '_>) -> crate::Result<SocketTask> {
        Err(cx.err("", "socket tasks are being built"))
    }
}

/// One user's sockets.
#[derive(Default)]
pub(crate) struct SocketSessions {}

pub(crate) struct Socket;

impl Protocol for Socket {
    type Task = SocketTask;
    type Session = SocketSessions;

    fn session(_: &SessionCx) -> SocketSessions {
        SocketSessions::default()
    }

    async fn exec(_: &mut SocketSessions, _: &SocketTask, _: &mut StepCx<'_, '_>) -> Step {
        Step::failed("".into(), Failure::new(FailureKind::Plan, "not built"))
    }
}
