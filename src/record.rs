//! `ld record`: run the recording proxy until Ctrl-C or SIGTERM, write the HAR, and with
//! `--actions` import it into a plan with the same filters. `--recover` rebuilds the HAR of a
//! recording that was killed.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use regex::Regex;

use crate::exit;

/// Arguments of `ld record`.
#[derive(Debug, Args)]
pub(crate) struct RecordArgs {
    /// Where to listen: `:8080` is 127.0.0.1:8080; other interfaces only when named (0.0.0.0:8080)
    #[arg(long, default_value = ":8080", value_name = "ADDR")]
    pub(crate) proxy: String,

    /// The HAR file to write (a journal beside it keeps every exchange until then)
    #[arg(short, long, default_value = "recording.har", value_name = "FILE")]
    pub(crate) output: PathBuf,

    /// Also import the recording into a plan when the proxy stops
    #[arg(long, value_name = "FILE")]
    pub(crate) actions: Option<PathBuf>,

    /// Rebuild FILE (a HAR output or its .journal) from the journal of a killed recording, then exit
    #[arg(long, value_name = "FILE", conflicts_with_all = ["proxy", "auth", "passthrough"])]
    pub(crate) recover: Option<PathBuf>,

    /// Record only exchanges whose full URL matches this regex (repeatable; any one suffices)
    #[arg(long, value_name = "RE", help_heading = "Filters")]
    pub(crate) include: Vec<String>,

    /// Do not record exchanges whose full URL matches this regex (repeatable; wins over --include)
    #[arg(long, value_name = "RE", help_heading = "Filters")]
    pub(crate) exclude: Vec<String>,

    /// Record only exchanges whose full URL matches a regex in this file: one a line, `#`
    /// comments and blank lines skipped (repeatable; adds to --include)
    #[arg(long, value_name = "FILE", help_heading = "Filters")]
    pub(crate) include_from: Vec<PathBuf>,

    /// Do not record exchanges whose full URL matches a regex in this file: one a line, `#`
    /// comments and blank lines skipped (repeatable; adds to --exclude)
    #[arg(long, value_name = "FILE", help_heading = "Filters")]
    pub(crate) exclude_from: Vec<PathBuf>,

    /// Leave this request or response header out of the HAR, whatever its case; it is still
    /// forwarded (repeatable)
    #[arg(long, value_name = "NAME", help_heading = "Filters")]
    pub(crate) drop_header: Vec<String>,

    /// Leave the headers named in this file out of the HAR: one name a line, `#` comments and
    /// blank lines skipped (repeatable)
    #[arg(long, value_name = "FILE", help_heading = "Filters")]
    pub(crate) drop_header_from: Vec<PathBuf>,

    /// Tunnel hosts matching this regex untouched and unrecorded, e.g. certificate-pinned apps (repeatable)
    #[arg(long, value_name = "RE", help_heading = "Filters")]
    pub(crate) passthrough: Vec<String>,

    /// Record bodies and WebSocket messages up to this size; what is forwarded is never cut
    #[arg(long, default_value = "10MiB", value_name = "SIZE", value_parser = parse_size, help_heading = "Filters")]
    pub(crate) max_body: usize,

    /// Trust the CA certificates in this PEM file for upstream servers too (repeatable)
    #[arg(long, value_name = "FILE", help_heading = "Upstream TLS")]
    pub(crate) upstream_ca: Vec<PathBuf>,

    /// Do not verify upstream certificates (test servers only)
    #[arg(long, help_heading = "Upstream TLS")]
    pub(crate) insecure_upstream: bool,

    /// Present this client certificate to upstreams that ask for one: [HOST=]CERT[,KEY], the
    /// key in CERT when KEY is left out; HOST is a name or *.domain (every host when left
    /// out); repeatable, the first matching one is used
    #[arg(long, value_name = "[HOST=]CERT[,KEY]", value_parser = parse_client_cert, help_heading = "Upstream TLS")]
    pub(crate) client_cert: Vec<ld_recorder::ClientCert>,

    /// Require clients to send these proxy credentials (Proxy-Authorization: Basic)
    #[arg(long, value_name = "USER:PASS")]
    pub(crate) auth: Option<String>,

    /// Drop a client connection that has not sent a whole request head (or, in a CONNECT tunnel, finished its TLS handshake) within this
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_header_timeout, help_heading = "Client connections")]
    pub(crate) header_timeout: Duration,

    /// Close a kept-alive client connection idle this long between requests
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_idle_timeout, help_heading = "Client connections")]
    pub(crate) idle_timeout: Duration,

    /// Serve at most this many client connections at once; more wait until one closes
    #[arg(long, default_value_t = 512, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_CONNECTIONS), help_heading = "Client connections")]
    pub(crate) max_connections: u32,

    /// Print nothing but errors (and the address listened on)
    #[arg(short, long)]
    pub(crate) quiet: bool,
}

fn parse_size(text: &str) -> Result<usize, String> {
    ld_recorder::parse_size(text)
}

/// The most `--max-connections` takes: each connection is a file descriptor (two with its
/// upstream), far past what one process is normally allowed.
const MAX_CONNECTIONS: i64 = 100_000;

fn parse_header_timeout(text: &str) -> Result<Duration, String> {
    parse_timeout(text, Duration::from_secs(3600))
}

fn parse_idle_timeout(text: &str) -> Result<Duration, String> {
    parse_timeout(text, Duration::from_secs(24 * 3600))
}

/// A duration such as `10s`, `500ms` or `2m`, from 100ms up to `max`.
fn parse_timeout(text: &str, max: Duration) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| format!("{text:?}: {e}"))?;
    if d < Duration::from_millis(100) || d > max {
        return Err(format!(
            "{text:?} is out of range: give between 100ms and {}h",
            max.as_secs() / 3600
        ));
    }
    Ok(d)
}

pub(crate) fn run(args: RecordArgs) -> anyhow::Result<ExitCode> {
    if let Some(file) = &args.recover {
        let recovered = ld_recorder::recover(file).map_err(recorder_error)?;
        if !args.quiet {
            eprintln!(
                "recovered {} exchange{} into {}{}",
                recovered.entries,
                if recovered.entries == 1 { "" } else { "s" },
                recovered.output.display(),
                if recovered.skipped > 0 {
                    format!(" ({} torn line(s) left out)", recovered.skipped)
                } else {
                    String::new()
                }
            );
        }
        if let Some(actions) = &args.actions {
            import(&recovered.output, actions, &args)?;
        }
        return Ok(ExitCode::from(exit::OK));
    }
    let listen = ld_recorder::parse_listen(&args.proxy)
        .map_err(|e| exit::input_error(format!("--proxy: {e}")))?;
    if !listen.ip().is_loopback() {
        eprintln!(
            "ld record: warning: listening on {listen}: anyone who can reach this address can use \
             the proxy and read what it records{}",
            if args.auth.is_none() {
                " (consider --auth user:pass)"
            } else {
                ""
            }
        );
    }
    if let Some(auth) = &args.auth
        && !auth.contains(':')
    {
        return Err(exit::input_error("--auth wants USER:PASS"));
    }
    let data_dir = crate::ca::data_dir()?;
    crate::ca::tighten_key(&data_dir)?;
    let mut options = ld_recorder::Options::new(listen, args.output.clone(), data_dir);
    options.include = compile("include", &args.include)?;
    options.exclude = compile("exclude", &args.exclude)?;
    for path in &args.include_from {
        options.include.extend(crate::import::pattern_file(path)?);
    }
    for path in &args.exclude_from {
        options.exclude.extend(crate::import::pattern_file(path)?);
    }
    options.drop_headers = crate::import::drop_headers(&args.drop_header, &args.drop_header_from)?;
    options.passthrough = compile("passthrough", &args.passthrough)?;
    options.max_body = args.max_body;
    options.upstream.extra_roots = args.upstream_ca.clone();
    options.upstream.insecure = args.insecure_upstream;
    options.upstream.client_certs = args.client_cert.clone();
    options.auth = args.auth.clone();
    options.header_timeout = args.header_timeout;
    options.idle_timeout = args.idle_timeout;
    options.max_connections = args.max_connections as usize;
    options.quiet = args.quiet;
    options.live_status = !args.quiet && std::io::stderr().is_terminal();
    let summary = ld_recorder::record(options).map_err(recorder_error)?;
    if !args.quiet {
        eprintln!(
            "wrote {} ({} exchange{}{}, {} error{})",
            summary.output.display(),
            summary.entries,
            if summary.entries == 1 { "" } else { "s" },
            if summary.recovered > 0 {
                format!(
                    ", {} recovered from an interrupted session",
                    summary.recovered
                )
            } else {
                String::new()
            },
            summary.errors,
            if summary.errors == 1 { "" } else { "s" }
        );
    }
    if let Some(actions) = &args.actions {
        import(&summary.output, actions, &args)?;
    }
    Ok(ExitCode::from(exit::OK))
}

fn compile(flag: &str, patterns: &[String]) -> anyhow::Result<Vec<Regex>> {
    patterns
        .iter()
        .map(|p| {
            Regex::new(p).map_err(|e| {
                exit::input_error(format!(
                    "--{flag} {p:?} is not a valid regular expression: {e}"
                ))
            })
        })
        .collect()
}

/// Errors that are the user's to fix exit 2; the rest (bind, I/O, TLS) exit 3.
fn recorder_error(e: ld_recorder::Error) -> anyhow::Error {
    match e {
        ld_recorder::Error::Bind { addr, source }
            if source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            anyhow::anyhow!(
                "cannot listen on {addr}: the address is already in use (another `ld record` or \
                 proxy?); stop it or pick another port with --proxy"
            )
        }
        e @ (ld_recorder::Error::NoJournal(_)
        | ld_recorder::Error::UpstreamCa { .. }
        | ld_recorder::Error::Option(_)) => exit::input_error(e.to_string()),
        other => anyhow::Error::new(other),
    }
}

/// `--actions`: the importer on the HAR just written, with the recording's filters.
fn import(har: &Path, actions: &Path, args: &RecordArgs) -> anyhow::Result<()> {
    let filter = crate::import::filter(
        &args.include,
        &args.exclude,
        &args.include_from,
        &args.exclude_from,
        false,
    )?;
    let options = ld_converters::ImportOptions {
        filter,
        drop_headers: crate::import::drop_headers(&args.drop_header, &args.drop_header_from)?,
        ..ld_converters::ImportOptions::default()
    };
    let bytes = std::fs::read(har).with_context(|| format!("could not read {}", har.display()))?;
    let import = ld_converters::import(
        ld_converters::Format::Har,
        &har.display().to_string(),
        &bytes,
        &options,
    )
    .map_err(|e| exit::input_error(e.to_string()))?;
    if let Some(env) = import.secrets_env() {
        let mut path = actions.as_os_str().to_os_string();
        path.push(".secrets.env");
        let path = PathBuf::from(path);
        ld_plan::fs::write_atomic(&path, env.as_bytes(), true)
            .with_context(|| format!("could not write the secrets file {}", path.display()))?;
        if !args.quiet {
            eprintln!(
                "{} secret values moved to {} (mode 0600)",
                import.secrets.len(),
                path.display()
            );
        }
    }
    let plan = import.to_json_string();
    ld_plan::fs::write_atomic(actions, plan.as_bytes(), false)
        .with_context(|| format!("could not write the plan {}", actions.display()))?;
    if !args.quiet {
        eprintln!("{}", import.summary.render());
        eprintln!("wrote {}", actions.display());
    }
    Ok(())
}

/// `--client-cert [HOST=]CERT[,KEY]`.
fn parse_client_cert(text: &str) -> Result<ld_recorder::ClientCert, String> {
    let (host, files) = match text.split_once('=') {
        Some((h, f)) if !h.is_empty() => (Some(h.to_string()), f),
        Some(_) => return Err("the host before `=` is empty".into()),
        None => (None, text),
    };
    let (cert, key) = files.split_once(',').unwrap_or((files, files));
    if cert.is_empty() || key.is_empty() {
        return Err("expected [HOST=]CERT[,KEY]".into());
    }
    for f in [cert, key] {
        if !std::path::Path::new(f).is_file() {
            return Err(format!("{f}: no such file"));
        }
    }
    Ok(ld_recorder::ClientCert {
        host,
        cert: PathBuf::from(cert),
        key: PathBuf::from(key),
    })
}
