//! Virtual users and the load models that start, pace and stop them.
//!
//! Closed model (LoadDensity's): a number of users, started at a spawn rate, each running the
//! scenario in a loop for a duration or a number of iterations; stages change the number of
//! users over time. Open model: iterations start at a constant arrival rate whatever the
//! server's speed; an arrival that finds no free user is counted as dropped, never delayed,
//! and latency is measured from the intended start, so a slow server cannot hide its queue
//! (no coordinated omission).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::HttpVersion;
use crate::check::{ExtractorCheck, ExtractorVerdict, Seen, snippet};
use crate::cookies::Jar;
use crate::http::{Http, HttpTransport};
use crate::pace::{Lag, Pace, Schedule};
use crate::program::{Mode, Profile, TestSpec};
use crate::protocol::grpc::{Grpc, GrpcSessions};
use crate::protocol::mqtt::{Mqtt, MqttSessions};
use crate::protocol::socket::{Socket, SocketSessions};
use crate::protocol::sse::{Sse, SseSessions};
use crate::protocol::ws::{WebSocket, WsSessions};
use crate::protocol::{
    Deferred, Extra, FailureKind, Late, Observation, Protocol, SessionCx, Step, StepCx,
};
use crate::stats::{BatchSender, Buffer, Record};
use crate::task::{Proto, Retry, RetryClass, Task};
use crate::template::Scope;

/// The load one `LD_start_test` runs with, after the command line's overrides.
#[derive(Debug, Clone)]
pub(crate) enum Load {
    Closed {
        users: u64,
        spawn_rate: f64,
        duration: Option<Duration>,
        iterations: Option<u64>,
        profile: Option<Profile>,
    },
    Open {
        rate: f64,
        duration: Option<Duration>,
        max_users: u64,
    },
    /// Recorded pace: `copies` users, started at `spawn_rate`, each sending the recording
    /// once on its schedule, a lane per recorded connection.
    Paced {
        copies: u64,
        spawn_rate: f64,
        pace: Pace,
        schedule: Arc<Schedule>,
    },
}

/// What every virtual user of one test shares, read-only.
pub(crate) struct TestCtx {
    pub(crate) tasks: Arc<Vec<Task>>,
    pub(crate) mode: Mode,
    pub(crate) vars: HashMap<String, String>,
    pub(crate) seed: Option<u64>,
    pub(crate) epoch: Instant,
    pub(crate) http: HttpVersion,
    /// The run store's recorder, for sampled response bodies (see `store`).
    pub(crate) store: Option<ld_store::Recorder>,
    /// The most bytes of a response body kept (`--max-body`).
    pub(crate) max_body: usize,
    /// HTTP/2 connections up to `--h2-streams` users share, when that is above 1.
    pub(crate) h2_pool: Option<Arc<crate::h2::Pool>>,
    /// Virtual users running now, for the progress line and the live outputs.
    pub(crate) active: std::sync::atomic::AtomicU64,
    /// The share of the plan this process runs (`--segment`).
    pub(crate) segment: crate::segment::Segment,
    /// `--verify-correlation`: where extractors' verdicts go.
    pub(crate) audit: Option<Arc<Audit>>,
    cumulative: Vec<u64>,
}

impl Load {
    /// How long the test is planned to last, when that is known in advance.
    pub(crate) fn planned(&self) -> Option<Duration> {
        match self {
            Load::Closed {
                duration: Some(d), ..
            }
            | Load::Open {
                duration: Some(d), ..
            } => Some(*d),
            Load::Closed {
                profile: Some(p), ..
            } => Some(p.total()),
            Load::Paced { schedule, .. } => Some(schedule.total),
            _ => None,
        }
    }
}

/// The extractors' verdicts of a `--verify-correlation` run, at most [`Audit::MAX`].
#[derive(Debug, Default)]
pub(crate) struct Audit {
    checks: std::sync::Mutex<Vec<ExtractorCheck>>,
}

impl Audit {
    const MAX: usize = 10_000;

    fn push(&self, task: &Task, e: &crate::check::Extract, verdict: ExtractorVerdict) {
        let mut checks = self.checks.lock().unwrap_or_else(|p| p.into_inner());
        if checks.len() < Self::MAX {
            checks.push(ExtractorCheck {
                task: task.name.to_string(),
                var: e.var.clone(),
                source: e.describe(),
                verdict,
            });
        }
    }

    pub(crate) fn take(&self) -> Vec<ExtractorCheck> {
        std::mem::take(&mut *self.checks.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Counts a virtual user as active while it lives (aborted or not).
struct Active(Arc<TestCtx>);

impl Active {
    fn new(ctx: &Arc<TestCtx>) -> Active {
        ctx.active
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Active(ctx.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0
            .active
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl TestCtx {
    pub(crate) fn new(
        spec: &TestSpec,
        vars: HashMap<String, String>,
        seed: Option<u64>,
        epoch: Instant,
        http: HttpVersion,
    ) -> Self {
        let mut sum = 0;
        let cumulative = spec
            .tasks
            .iter()
            .map(|t| {
                sum += t.weight;
                sum
            })
            .collect();
        TestCtx {
            tasks: spec.tasks.clone(),
            mode: spec.mode,
            vars,
            seed,
            epoch,
            http,
            store: None,
            max_body: crate::DEFAULT_MAX_BODY,
            h2_pool: None,
            active: std::sync::atomic::AtomicU64::new(0),
            segment: crate::segment::Segment::WHOLE,
            audit: None,
            cumulative,
        }
    }

    /// Weighted mode: one task, in proportion to the weights (weight 0 never).
    fn pick(&self, rng: &mut SmallRng) -> Option<&Task> {
        let total = *self.cumulative.last()?;
        if total == 0 {
            return None;
        }
        let x = rng.random_range(0..total);
        let i = self.cumulative.partition_point(|c| *c <= x);
        self.tasks.get(i)
    }
}

/// One user's sessions, one per protocol, each connected lazily by its steps.
struct Sessions {
    http: HttpTransport,
    ws: WsSessions,
    sse: SseSessions,
    socket: SocketSessions,
    mqtt: MqttSessions,
    grpc: GrpcSessions,
}

impl Sessions {
    fn new(cx: &SessionCx, h2_pool: Option<Arc<crate::h2::Pool>>) -> Self {
        let mut http = Http::session(cx);
        http.share_h2(h2_pool);
        Sessions {
            http,
            ws: WebSocket::session(cx),
            sse: Sse::session(cx),
            socket: Socket::session(cx),
            mqtt: Mqtt::session(cx),
            grpc: Grpc::session(cx),
        }
    }

    /// The outcomes still to come of the user's earlier steps, until `cap` at the latest.
    async fn finish(&mut self, cap: Option<Instant>, out: &mut Vec<Late>) {
        Http::finish(&mut self.http, cap, out).await;
        WebSocket::finish(&mut self.ws, cap, out).await;
        Sse::finish(&mut self.sse, cap, out).await;
        Socket::finish(&mut self.socket, cap, out).await;
        Mqtt::finish(&mut self.mqtt, cap, out).await;
        Grpc::finish(&mut self.grpc, cap, out).await;
    }
}

/// What the lanes of one paced user share: its cookies and the values its steps extracted.
#[derive(Debug, Default)]
struct Lanes {
    state: std::sync::Mutex<LaneState>,
}

#[derive(Debug, Default)]
struct LaneState {
    jar: Jar,
    vars: HashMap<String, String>,
    session: HashMap<String, String>,
}

/// One virtual user.
struct Vu {
    ctx: Arc<TestCtx>,
    sessions: Sessions,
    jar: Jar,
    /// Samples streaming steps yielded, reused between steps.
    extra: Vec<Extra>,
    /// Outcomes that come after their steps.
    deferred: Deferred,
    vars: HashMap<String, String>,
    session: HashMap<String, String>,
    rng: SmallRng,
    rows: Vec<(usize, Option<usize>)>,
    buffer: Buffer,
    stop: watch::Receiver<bool>,
    /// A lane of a paced user: the state it shares with the other lanes.
    lanes: Option<Arc<Lanes>>,
    /// Values extracted since the last [`Vu::push`], for the other lanes: `(session?, name,
    /// value)`.
    published: Vec<(bool, String, String)>,
}

impl Vu {
    fn new(ctx: Arc<TestCtx>, id: u64, tx: BatchSender, stop: watch::Receiver<bool>) -> Self {
        let rng = match ctx.seed {
            Some(seed) => SmallRng::seed_from_u64(seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            None => SmallRng::from_os_rng(),
        };
        let cx = SessionCx {
            http: ctx.http,
            max_body: ctx.max_body,
        };
        Vu {
            sessions: Sessions::new(&cx, ctx.h2_pool.clone()),
            jar: Jar::default(),
            extra: Vec::new(),
            deferred: Deferred::default(),
            vars: ctx.vars.clone(),
            session: HashMap::new(),
            rng,
            rows: Vec::new(),
            buffer: Buffer::new(tx),
            stop,
            ctx,
            lanes: None,
            published: Vec::new(),
        }
    }

    /// A lane: takes the cookies and values the user's other lanes have so far.
    fn pull(&mut self) {
        let Some(lanes) = &self.lanes else {
            return;
        };
        let shared = lanes.state.lock().unwrap_or_else(|p| p.into_inner());
        self.jar.copy_from(&shared.jar);
        for (k, v) in &shared.vars {
            self.vars.insert(k.clone(), v.clone());
        }
        for (k, v) in &shared.session {
            self.session.insert(k.clone(), v.clone());
        }
    }

    /// A lane: gives the other lanes the cookies it stored and the values it extracted.
    fn push(&mut self) {
        let Some(lanes) = &self.lanes else {
            return;
        };
        let journal = self.jar.take_journal();
        let mut shared = lanes.state.lock().unwrap_or_else(|p| p.into_inner());
        for (header, host, path) in journal {
            shared.jar.store(&header, &host, &path);
        }
        for (session, k, v) in self.published.drain(..) {
            if session {
                shared.session.insert(k, v);
            } else {
                shared.vars.insert(k, v);
            }
        }
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps, waking early when the user is stopped (at once when it already is).
    async fn pause(&mut self, d: Duration) {
        if d.is_zero() || self.stopped() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.stop.changed() => {}
        }
    }

    fn condition(&mut self, task: &Task) -> bool {
        if task.run_if.is_none() && task.skip_if.is_none() {
            return true;
        }
        self.rows.clear();
        let mut scope = Scope {
            vars: &self.vars,
            session: &self.session,
            rng: &mut self.rng,
            rows: &mut self.rows,
        };
        if let Some(p) = &task.run_if
            && !p.holds(&mut scope)
        {
            return false;
        }
        if let Some(p) = &task.skip_if
            && p.holds(&mut scope)
        {
            return false;
        }
        true
    }

    /// One pass of the scenario; returns how many tasks ran.
    async fn iteration(&mut self, mut intended: Option<Instant>) -> usize {
        let ctx = self.ctx.clone();
        let mut ran = 0;
        if ctx.mode == Mode::Weighted {
            let task = ctx.pick(&mut self.rng);
            if let Some(task) = task
                && self.condition(task)
            {
                self.exec(task, intended).await;
                ran += 1;
            }
            return ran;
        }
        // An open-model arrival already counts as sent: it runs to its end (within the grace
        // period), whereas a closed-model user leaves at the next task once stopped.
        let open = intended.is_some();
        for task in ctx.tasks.iter() {
            if !open && self.stopped() {
                break;
            }
            if !self.condition(task) {
                continue;
            }
            self.exec(task, intended.take()).await;
            ran += 1;
        }
        ran
    }

    /// Runs a step under its task's retry policy: a failure, or a failed check while the
    /// flaky budget lasts, is tried again after the policy's delay, until its class's budget
    /// is spent or the test ends. The last attempt is the step's result.
    async fn with_retries(
        &mut self,
        task: &Task,
        retry: &Retry,
        start: Instant,
        sample: bool,
    ) -> Step {
        let mut used = [0u32; 3];
        let mut attempt = 0u32;
        loop {
            self.extra.clear();
            let step = self.step(task, start, sample).await;
            let class = match &step.result {
                Err(f) => Some(RetryClass::of(f.kind)),
                Ok(seen) if retry.flaky > 0 && self.checks_fail(task, seen, start) => {
                    Some(RetryClass::Flaky)
                }
                Ok(_) => None,
            };
            let Some(class) = class else {
                return step;
            };
            let slot = &mut used[class as usize];
            if *slot >= retry.budget(class) || self.stopped() {
                return step;
            }
            *slot += 1;
            attempt += 1;
            let wait = retry.delay(attempt, &mut self.rng);
            self.pause(wait).await;
            if self.stopped() {
                return step;
            }
        }
    }

    /// Whether any of the task's checks fails on what a step saw.
    fn checks_fail(&mut self, task: &Task, seen: &Observation, start: Instant) -> bool {
        if task.checks.is_empty() {
            return false;
        }
        let latency = start.elapsed().as_secs_f64() * 1000.0;
        let mut view = Seen::new(seen.code, &seen.headers, &seen.body, latency);
        self.rows.clear();
        let mut scope = Scope {
            vars: &self.vars,
            session: &self.session,
            rng: &mut self.rng,
            rows: &mut self.rows,
        };
        task.checks
            .iter()
            .any(|c| c.verify(&mut view, &mut scope).is_some())
    }

    async fn exec(&mut self, task: &Task, intended: Option<Instant>) {
        if let Some(t) = &task.throttle {
            // The wait races the end of the test: a user stopped while it waits for its
            // turn sends nothing, so the end of a test is no burst of throttled requests.
            let wait = t.reserve();
            self.pause(wait).await;
            if self.stopped() {
                return;
            }
        }
        self.rows.clear();
        let start = intended.unwrap_or_else(Instant::now);
        let sample = crate::store::wants_body(self.ctx.store.as_ref(), task.name_id);
        let step = match &task.retry {
            None => {
                self.extra.clear();
                self.step(task, start, sample).await
            }
            Some(retry) => self.with_retries(task, retry, start, sample).await,
        };
        let end = Instant::now();
        let latency = end.saturating_duration_since(start);
        for i in 0..self.extra.len() {
            let e = self.extra[i].clone();
            let at = start + e.latency;
            let failure = e.failure.map(|f| (f.kind, f.message, 0));
            self.record(task, start, at, 0, e.bytes, step.target.clone(), failure);
        }
        self.record_late();
        match step.result {
            // Its outcome comes later, as a late sample: there is nothing to check yet.
            Ok(_) if self.deferred.pending => {}
            Ok(seen_reply) => {
                if sample {
                    crate::store::sample(
                        self.ctx.store.as_ref(),
                        task.name_id,
                        seen_reply.code,
                        &seen_reply.headers,
                        &seen_reply.body,
                    );
                }
                let mut seen = Seen::new(
                    seen_reply.code,
                    &seen_reply.headers,
                    &seen_reply.body,
                    latency.as_secs_f64() * 1000.0,
                );
                let mut failed: Vec<String> = Vec::new();
                let mut first_failed = 0u16;
                if !task.checks.is_empty() {
                    let mut scope = Scope {
                        vars: &self.vars,
                        session: &self.session,
                        rng: &mut self.rng,
                        rows: &mut self.rows,
                    };
                    for (i, check) in task.checks.iter().enumerate() {
                        if let Some(m) = check.verify(&mut seen, &mut scope) {
                            if failed.is_empty() {
                                first_failed = u16::try_from(i + 1).unwrap_or(u16::MAX);
                            }
                            failed.push(m);
                        }
                    }
                }
                if !failed.is_empty() {
                    self.audit(task, |_, _| ExtractorVerdict::NotRun);
                } else {
                    for e in &task.extract {
                        let taken = e.take(&mut seen);
                        if let Some(audit) = &self.ctx.audit {
                            let verdict = e.verify(&mut seen, taken.as_deref());
                            audit.push(task, e, verdict);
                        }
                        if let Some(v) = taken {
                            if self.lanes.is_some() {
                                self.published.push((e.session, e.var.clone(), v.clone()));
                            }
                            if e.session {
                                self.session.insert(e.var.clone(), v);
                            } else {
                                self.vars.insert(e.var.clone(), v);
                            }
                        }
                    }
                }
                let error = (!failed.is_empty()).then(|| {
                    let mut m = failed.join("; ");
                    if !seen_reply.body.is_empty() {
                        m.push_str("; body: ");
                        m.push_str(&snippet(&seen_reply.body));
                    }
                    (FailureKind::Check, m, first_failed)
                });
                self.record(
                    task,
                    start,
                    end,
                    seen_reply.code,
                    seen_reply.wire_bytes,
                    step.target,
                    error,
                );
            }
            Err(f) => {
                let failure = Some((f.kind, f.message, 0));
                self.record(task, start, end, 0, 0, step.target, failure);
            }
        }
        // A paced lane keeps the recording's time, not the think times.
        if let Some(think) = task.think
            && self.lanes.is_none()
        {
            let d = think.pick(&mut self.rng);
            self.pause(d).await;
        }
    }

    /// `--verify-correlation`: a verdict on each of the task's extractors.
    fn audit(
        &self,
        task: &Task,
        verdict: impl Fn(&Task, &crate::check::Extract) -> ExtractorVerdict,
    ) {
        if let Some(audit) = &self.ctx.audit {
            for e in &task.extract {
                audit.push(task, e, verdict(task, e));
            }
        }
    }

    /// One attempt of the task's protocol step.
    async fn step(&mut self, task: &Task, started: Instant, sample: bool) -> Step {
        let mut scope = Scope {
            vars: &self.vars,
            session: &self.session,
            rng: &mut self.rng,
            rows: &mut self.rows,
        };
        self.deferred.pending = false;
        let mut cx = StepCx {
            name_id: task.name_id,
            name: &task.name,
            scope: &mut scope,
            jar: &mut self.jar,
            want_body: task.needs_body || sample,
            want_headers: task.needs_headers || sample,
            timeout: task.timeout,
            max_body: self.ctx.max_body,
            started,
            extra: &mut self.extra,
            deferred: &mut self.deferred,
        };
        let s = &mut self.sessions;
        match &task.proto {
            Proto::Http(t) => Box::pin(Http::exec(&mut s.http, t, &mut cx)).await,
            Proto::WebSocket(t) => Box::pin(WebSocket::exec(&mut s.ws, t, &mut cx)).await,
            Proto::Sse(t) => Box::pin(Sse::exec(&mut s.sse, t, &mut cx)).await,
            Proto::Socket(t) => Box::pin(Socket::exec(&mut s.socket, t, &mut cx)).await,
            Proto::Mqtt(t) => Box::pin(Mqtt::exec(&mut s.mqtt, t, &mut cx)).await,
            Proto::Grpc(t) => Box::pin(Grpc::exec(&mut s.grpc, t, &mut cx)).await,
        }
    }

    /// Records the late samples the last step (or `finish`) yielded.
    fn record_late(&mut self) {
        for l in std::mem::take(&mut self.deferred.samples) {
            let end = l.started + l.latency;
            let (kind, error) = match l.failure {
                Some(f) => (f.kind, Some(format!("{}: {}", l.name, f.message))),
                None => (FailureKind::Check, None),
            };
            let record = Record {
                name_id: l.name_id as u32,
                status: 0,
                latency_us: l.latency.as_micros() as u64,
                bytes: l.bytes,
                at_us: l
                    .started
                    .saturating_duration_since(self.ctx.epoch)
                    .as_micros() as u64,
                url: l.target,
                error: error.map(String::into_boxed_str),
                protocol: l.protocol,
                kind,
                check: 0,
            };
            self.buffer.push(record, end);
        }
    }

    /// The user ends: the outcomes of its steps still to come are waited for and recorded.
    /// A stopped user waits at most half the grace period the test gives it.
    async fn finish(&mut self) {
        let cap = self.stopped().then(|| Instant::now() + GRACE / 2);
        let mut out = std::mem::take(&mut self.deferred.samples);
        self.sessions.finish(cap, &mut out).await;
        self.deferred.samples = out;
        self.record_late();
        self.buffer.flush(Instant::now());
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        task: &Task,
        start: Instant,
        end: Instant,
        status: u16,
        bytes: u64,
        url: Arc<str>,
        failure: Option<(FailureKind, String, u16)>,
    ) {
        let (kind, check) = failure
            .as_ref()
            .map_or((FailureKind::Check, 0), |(k, _, c)| (*k, *c));
        let error = failure.map(|(_, m, _)| m);
        let record = Record {
            name_id: task.name_id as u32,
            status,
            latency_us: end.saturating_duration_since(start).as_micros() as u64,
            bytes,
            at_us: start.saturating_duration_since(self.ctx.epoch).as_micros() as u64,
            url,
            error: error.map(|e| format!("{}: {e}", task.name).into_boxed_str()),
            protocol: task.proto.kind(),
            kind,
            check,
        };
        self.buffer.push(record, end);
    }
}

/// Runs one test with `load` until it ends or `cancel` turns true; returns the count of
/// dropped arrivals (open model) and, for a paced test, how close to their offsets its
/// requests started.
pub(crate) async fn run(
    ctx: Arc<TestCtx>,
    load: Load,
    tx: BatchSender,
    mut cancel: watch::Receiver<bool>,
) -> (u64, Option<String>) {
    match load {
        Load::Closed {
            users,
            spawn_rate,
            duration,
            iterations,
            profile,
        } => {
            closed(
                ctx,
                users,
                spawn_rate,
                duration,
                iterations,
                profile,
                tx,
                &mut cancel,
            )
            .await;
            (0, None)
        }
        Load::Open {
            rate,
            duration,
            max_users,
        } => (
            open(ctx, rate, duration, max_users, tx, &mut cancel).await,
            None,
        ),
        Load::Paced {
            copies,
            spawn_rate,
            pace,
            schedule,
        } => {
            let note = paced(ctx, copies, spawn_rate, &pace, schedule, tx, &mut cancel).await;
            (0, Some(note))
        }
    }
}

/// Recorded pace: each copy of the recording is a user of one lane per recorded
/// connection, the lanes sharing the user's cookies and extracted values.
async fn paced(
    ctx: Arc<TestCtx>,
    copies: u64,
    spawn_rate: f64,
    pace: &Pace,
    schedule: Arc<Schedule>,
    tx: BatchSender,
    cancel: &mut watch::Receiver<bool>,
) -> String {
    let segment = ctx.segment;
    let lag = Arc::new(std::sync::Mutex::new(Lag::default()));
    let start = Instant::now();
    let mut vus: Vec<Handle> = Vec::new();
    let mut id = 0u64;
    for copy in 0..copies {
        if spawn_rate.is_finite() && spawn_rate > 0.0 {
            let due = start + Duration::from_secs_f64(copy as f64 / spawn_rate);
            let now = Instant::now();
            if due > now {
                tokio::select! {
                    _ = tokio::time::sleep(due - now) => {}
                    _ = cancel.changed() => {}
                }
            }
        }
        if *cancel.borrow() {
            break;
        }
        if !segment.owns(copy) {
            continue;
        }
        let lanes = Arc::new(Lanes::default());
        let copy_start = Instant::now();
        for lane in 0..schedule.lanes.len() {
            let (stop_tx, stop_rx) = watch::channel(false);
            let mut vu = Vu::new(ctx.clone(), id, tx.clone(), stop_rx);
            id += 1;
            vu.jar = Jar::journaled();
            vu.lanes = Some(lanes.clone());
            let join = tokio::spawn(lane_user(
                vu,
                schedule.clone(),
                lane,
                copy_start,
                lag.clone(),
            ));
            vus.push(Handle {
                stop: stop_tx,
                join,
            });
        }
    }
    while !*cancel.borrow() && !vus.iter().all(|h| h.join.is_finished()) {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = cancel.changed() => {}
        }
    }
    finish(vus, grace(cancel)).await;
    let lag = lag.lock().unwrap_or_else(|p| p.into_inner());
    crate::pace::report(&schedule, pace, &lag, start.elapsed())
}

/// One lane of a paced user: its tasks, each started at its scaled offset after `start`.
async fn lane_user(
    mut vu: Vu,
    schedule: Arc<Schedule>,
    lane: usize,
    start: Instant,
    lag: Arc<std::sync::Mutex<Lag>>,
) {
    let _active = Active::new(&vu.ctx);
    let ctx = vu.ctx.clone();
    for &(i, offset) in schedule.lanes.get(lane).map_or(&[][..], Vec::as_slice) {
        let due = start + offset;
        let now = Instant::now();
        if due > now {
            vu.pause(due - now).await;
        }
        if vu.stopped() {
            break;
        }
        let late = Instant::now().saturating_duration_since(due);
        lag.lock().unwrap_or_else(|p| p.into_inner()).record(late);
        let Some(task) = ctx.tasks.get(i) else {
            continue;
        };
        vu.pull();
        if vu.condition(task) {
            vu.exec(task, None).await;
        }
        vu.push();
    }
    vu.finish().await;
}

struct Handle {
    stop: watch::Sender<bool>,
    join: JoinHandle<()>,
}

/// How long in-flight requests may finish once a test is over.
const GRACE: Duration = Duration::from_secs(2);
/// How long in-flight requests may finish when the run is stopped before its end (the
/// first Ctrl-C of `ld replay`); the users still running then are aborted.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(5);

/// The grace period of the users still running when a test ends.
fn grace(cancel: &watch::Receiver<bool>) -> Duration {
    if *cancel.borrow() {
        INTERRUPT_GRACE
    } else {
        GRACE
    }
}
const TICK: Duration = Duration::from_millis(20);

#[allow(clippy::too_many_arguments)]
async fn closed(
    ctx: Arc<TestCtx>,
    users: u64,
    spawn_rate: f64,
    duration: Option<Duration>,
    iterations: Option<u64>,
    profile: Option<Profile>,
    tx: BatchSender,
    cancel: &mut watch::Receiver<bool>,
) {
    let segment = ctx.segment;
    let start = Instant::now();
    let deadline = match (&profile, duration) {
        (Some(p), None) => Some(start + p.total()),
        (_, Some(d)) => Some(start + d),
        (None, None) => None,
    };
    let mut vus: Vec<Handle> = Vec::new();
    let mut alive = 0usize;
    let mut credit = 1.0f64;
    let mut last = start;
    loop {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) || *cancel.borrow() {
            break;
        }
        let t = now - start;
        let (target, rate) = match &profile {
            Some(p) => match p.at(t) {
                Some(x) => x,
                None => break,
            },
            None => (users, spawn_rate),
        };
        let target = target as usize;
        credit += rate * (now - last).as_secs_f64();
        last = now;
        // `target`, `alive` and the spawn credit count the plan's users; this segment starts
        // the ones whose numbers it owns, when the whole plan would start them.
        if target > alive {
            let room = target - alive;
            let n = if rate.is_infinite() || rate <= 0.0 {
                room
            } else {
                (credit.floor().max(0.0) as usize).min(room)
            };
            for id in (alive as u64..(alive + n) as u64).filter(|k| segment.owns(*k)) {
                let (stop_tx, stop_rx) = watch::channel(false);
                let vu = Vu::new(ctx.clone(), id, tx.clone(), stop_rx);
                let join = tokio::spawn(closed_user(vu, iterations));
                vus.push(Handle {
                    stop: stop_tx,
                    join,
                });
            }
            alive += n;
            credit -= n as f64;
        } else {
            credit = credit.min(1.0);
            if target < alive {
                // The most recently started users leave first.
                let mut to_stop =
                    (segment.share(alive as u64) - segment.share(target as u64)) as usize;
                for h in vus.iter().rev() {
                    if to_stop == 0 {
                        break;
                    }
                    if !*h.stop.borrow() {
                        let _ = h.stop.send(true);
                        to_stop -= 1;
                    }
                }
                alive = target;
            }
        }
        if iterations.is_some()
            && alive >= target
            && profile.is_none()
            && vus.iter().all(|h| h.join.is_finished())
        {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = cancel.changed() => {}
        }
    }
    finish(vus, grace(cancel)).await;
}

async fn closed_user(mut vu: Vu, iterations: Option<u64>) {
    let _active = Active::new(&vu.ctx);
    let mut done = 0u64;
    while !vu.stopped() && iterations.is_none_or(|n| done < n) {
        if vu.iteration(None).await == 0 {
            // Nothing was eligible this time: do not spin.
            vu.pause(Duration::from_millis(10)).await;
        }
        done += 1;
    }
    vu.finish().await;
}

async fn finish(vus: Vec<Handle>, grace: Duration) {
    for h in &vus {
        let _ = h.stop.send(true);
    }
    let until = tokio::time::Instant::now() + grace;
    for h in vus {
        let abort = h.join.abort_handle();
        if tokio::time::timeout_at(until, h.join).await.is_err() {
            abort.abort();
        }
    }
}

async fn open(
    ctx: Arc<TestCtx>,
    rate: f64,
    duration: Option<Duration>,
    max_users: u64,
    tx: BatchSender,
    cancel: &mut watch::Receiver<bool>,
) -> u64 {
    let interval = Duration::from_secs_f64(1.0 / rate.max(1e-6));
    let start = Instant::now();
    let end = duration.map(|d| start + d);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<usize>();
    let mut senders: Vec<mpsc::Sender<Instant>> = Vec::new();
    let mut handles: Vec<Handle> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut dropped = 0u64;
    // Arrivals are numbered in the whole plan; this segment takes every `count`-th one.
    let segment = ctx.segment;
    let max_users = segment.share(max_users).max(1);
    let mut next = segment.index;
    let intended = |i: u64| start + interval.mul_f64(i as f64);
    loop {
        let now = Instant::now();
        if *cancel.borrow() {
            break;
        }
        while let Ok(id) = done_rx.try_recv() {
            free.push(id);
        }
        loop {
            let at = intended(next);
            if at > now || end.is_some_and(|e| at >= e) {
                break;
            }
            next += segment.count;
            let id = match free.pop() {
                Some(id) => Some(id),
                None if (senders.len() as u64) < max_users => {
                    let id = senders.len();
                    let (job_tx, job_rx) = mpsc::channel::<Instant>(1);
                    let (stop_tx, stop_rx) = watch::channel(false);
                    // Numbered as the segment's users: no two segments share a seed.
                    let vu = Vu::new(ctx.clone(), segment.nth(id as u64), tx.clone(), stop_rx);
                    let join = tokio::spawn(open_user(vu, id, job_rx, done_tx.clone()));
                    senders.push(job_tx);
                    handles.push(Handle {
                        stop: stop_tx,
                        join,
                    });
                    Some(id)
                }
                None => None,
            };
            match id {
                Some(id) if senders[id].try_send(at).is_ok() => {}
                _ => dropped += 1,
            }
        }
        // Every arrival due before the end has been dispatched (or dropped) at this point, so
        // a run of D seconds at R/s accounts for exactly ceil(R * D) arrivals.
        if end.is_some_and(|e| now >= e) {
            break;
        }
        let wake = tokio::time::Instant::from_std(intended(next));
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            Some(id) = done_rx.recv() => free.push(id),
            _ = cancel.changed() => {}
        }
    }
    drop(senders);
    finish(handles, grace(cancel)).await;
    dropped
}

async fn open_user(
    mut vu: Vu,
    id: usize,
    mut jobs: mpsc::Receiver<Instant>,
    done: mpsc::UnboundedSender<usize>,
) {
    let _active = Active::new(&vu.ctx);
    while let Some(intended) = jobs.recv().await {
        vu.iteration(Some(intended)).await;
        if done.send(id).is_err() {
            break;
        }
    }
    vu.finish().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_interpolate_and_steps_hold() {
        let p = Profile::Ramp(vec![
            (Duration::from_secs(10), 100),
            (Duration::from_secs(10), 100),
            (Duration::from_secs(10), 0),
        ]);
        assert_eq!(p.at(Duration::from_secs(5)).map(|x| x.0), Some(50));
        assert_eq!(p.at(Duration::from_secs(15)).map(|x| x.0), Some(100));
        assert_eq!(p.at(Duration::from_secs(25)).map(|x| x.0), Some(50));
        assert_eq!(p.at(Duration::from_secs(31)), None);
        let s = Profile::from_shape(
            "stages",
            &serde_json::json!({"stages": [{"duration": 5, "users": 3, "spawn_rate": 1}]}),
        )
        .expect("stages");
        assert_eq!(s.at(Duration::from_secs(1)), Some((3, 1.0)));
        assert_eq!(s.total(), Duration::from_secs(5));
    }
}
