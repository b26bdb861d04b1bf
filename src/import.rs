//! `ld import`: read a file, detect its format, run the importer, write the plan and the
//! secrets side file atomically.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use ld_converters::{Filter, Format, GivenLoad, ImportOptions};

use crate::exit;

/// Arguments of `ld import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The file to import: a HAR, Postman collection, OpenAPI description, cURL commands or
    /// a JMeter plan (`-` reads standard input)
    pub(crate) file: PathBuf,

    /// Where to write the plan (`-` for standard output)
    #[arg(short, long, default_value = "actions.json", value_name = "FILE")]
    pub(crate) output: PathBuf,

    /// The input format, when detection should not decide
    #[arg(long, value_name = "FORMAT", value_parser = ["har", "postman", "openapi", "curl", "jmeter"])]
    pub(crate) from: Option<String>,

    /// A Postman environment file whose variables override the collection's
    #[arg(long = "env", value_name = "FILE", help_heading = "Sources")]
    pub(crate) environment: Option<PathBuf>,

    /// The directory relative files the input names (bodies, form parts, `$ref`s) are read
    /// from, as newman's `--working-dir`; the input file's directory by default
    #[arg(long, value_name = "DIR", help_heading = "Sources")]
    pub(crate) working_dir: Option<PathBuf>,

    /// The base URL of the API, replacing an OpenAPI description's servers
    #[arg(long, value_name = "URL", help_heading = "Sources")]
    pub(crate) server: Option<String>,

    /// Keep only OpenAPI operations with this tag, or Postman requests in this folder (repeatable)
    #[arg(long, value_name = "TAG", help_heading = "Filters")]
    pub(crate) tag: Vec<String>,

    /// Import OpenAPI operations marked deprecated
    #[arg(long, help_heading = "Filters")]
    pub(crate) include_deprecated: bool,

    /// Keep only requests whose full URL (or OpenAPI operationId or tag) matches this regex
    /// (repeatable; any one suffices)
    #[arg(long, value_name = "RE", help_heading = "Filters")]
    pub(crate) include: Vec<String>,

    /// Drop requests whose full URL (or OpenAPI operationId or tag) matches this regex
    /// (repeatable; wins over --include)
    #[arg(long, value_name = "RE", help_heading = "Filters")]
    pub(crate) exclude: Vec<String>,

    /// Keep requests whose full URL matches a regex in this file: one a line, `#` comments and
    /// blank lines skipped (repeatable; adds to --include)
    #[arg(long, value_name = "FILE", help_heading = "Filters")]
    pub(crate) include_from: Vec<PathBuf>,

    /// Drop requests whose full URL matches a regex in this file: one a line, `#` comments and
    /// blank lines skipped (repeatable; adds to --exclude)
    #[arg(long, value_name = "FILE", help_heading = "Filters")]
    pub(crate) exclude_from: Vec<PathBuf>,

    /// Drop images, fonts, stylesheets, scripts and media (by MIME type and extension)
    #[arg(long, help_heading = "Filters")]
    pub(crate) skip_static: bool,

    /// Add or override a header on every task, e.g. 'Authorization: Bearer ${env.TOKEN}'
    #[arg(
        short = 'H',
        long = "header",
        value_name = "NAME: VALUE",
        help_heading = "Plan"
    )]
    pub(crate) headers: Vec<String>,

    /// Leave this header out of every task, whatever its case (repeatable; --header still adds)
    #[arg(long, value_name = "NAME", help_heading = "Plan")]
    pub(crate) drop_header: Vec<String>,

    /// Leave the headers named in this file out of every task: one name a line, `#` comments
    /// and blank lines skipped (repeatable)
    #[arg(long, value_name = "FILE", help_heading = "Plan")]
    pub(crate) drop_header_from: Vec<PathBuf>,

    /// Keep credentials in the plan instead of moving them to the secrets file
    #[arg(long, help_heading = "Plan")]
    pub(crate) inline_secrets: bool,

    /// Where secrets go [default: the plan's path + `.secrets.env`]
    #[arg(long, value_name = "FILE", help_heading = "Plan")]
    pub(crate) secrets_file: Option<PathBuf>,

    /// Keep the recorded pauses between requests as think time
    #[arg(long, help_heading = "Plan")]
    pub(crate) think_time: bool,

    /// Replay recorded values as they were instead of extracting the ones responses produce
    /// (HAR)
    #[arg(long, help_heading = "Learning from responses")]
    pub(crate) no_correlate: bool,

    /// A second recording of the same flow: values that differ between the two are dynamic,
    /// values that stay the same are not correlated or are checked (HAR)
    #[arg(long, value_name = "HAR", help_heading = "Learning from responses")]
    pub(crate) compare: Option<PathBuf>,

    /// Also write the correlation rules as JSON to this file
    #[arg(long, value_name = "FILE", help_heading = "Learning from responses")]
    pub(crate) correlation_report: Option<PathBuf>,

    /// Checks learned from recorded JSON bodies: their shape (json_shape), also the values that
    /// stayed the same (json_path), or none (HAR)
    #[arg(long, value_name = "MODE", default_value = "shape",
          value_parser = ["shape", "values", "off"], help_heading = "Learning from responses")]
    pub(crate) assert_body: String,

    /// .proto files that describe recorded gRPC calls: their messages are written as JSON
    /// (`payload`) instead of bytes (`payload_base64`) (HAR; repeatable)
    #[arg(long, value_name = "FILE", help_heading = "gRPC")]
    pub(crate) proto: Vec<PathBuf>,

    /// A directory searched for the imports of --proto files (repeatable)
    #[arg(long, value_name = "DIR", help_heading = "gRPC", requires = "proto")]
    pub(crate) import_path: Vec<PathBuf>,

    /// Virtual users of the generated LD_start_test [default: 10, or a JMeter thread group's]
    #[arg(long, help_heading = "Load")]
    pub(crate) users: Option<u64>,

    /// Users started per second [default: 5, or a JMeter thread group's ramp-up]
    #[arg(long, help_heading = "Load")]
    pub(crate) spawn_rate: Option<f64>,

    /// Test duration, e.g. 60s, 2m [default: 60s, or a JMeter thread group's]
    #[arg(long, value_parser = humantime::parse_duration, help_heading = "Load")]
    pub(crate) duration: Option<std::time::Duration>,

    /// User template (LoadDensity's user_detail_dict.user)
    #[arg(long, default_value = "fast_http_user", help_heading = "Load")]
    pub(crate) user: String,

    /// Print nothing but errors
    #[arg(short, long)]
    pub(crate) quiet: bool,

    /// Files the input refers to are read only inside this directory (set by `ld mcp`)
    #[arg(skip)]
    pub(crate) files_within: Option<PathBuf>,
}

/// What an import wrote.
pub(crate) struct Written {
    pub(crate) summary: ld_converters::Summary,
    /// The secrets file and how many values went to it, when any did.
    pub(crate) secrets: Option<(PathBuf, usize)>,
    /// What was learned from the responses (HAR imports).
    pub(crate) correlation: Option<Box<ld_converters::CorrelationReport>>,
}

pub(crate) fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let written = write(&args)?;
    if !args.quiet {
        if let Some((path, count)) = &written.secrets {
            eprintln!(
                "{count} secret values moved to {} (mode 0600; keep it out of version control)",
                path.display()
            );
        }
        if let Some(report) = &written.correlation {
            eprintln!("{}", report.render());
        }
        eprintln!("{}", written.summary.render());
        if args.output != Path::new("-") {
            eprintln!("wrote {}", args.output.display());
        }
    }
    Ok(ExitCode::from(exit::OK))
}

/// Imports `args.file` and writes the plan and its secrets file; prints nothing but the plan
/// when it goes to standard output.
pub(crate) fn write(args: &ImportArgs) -> anyhow::Result<Written> {
    let stdin = args.file == Path::new("-");
    // Files are streamed by the importers that can, and by detection.
    let (name, head) = if stdin {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("could not read standard input")?;
        ("<stdin>".to_string(), bytes)
    } else {
        (args.file.display().to_string(), Vec::new())
    };
    let format = match &args.from {
        Some(f) => Format::from_name(f)
            .ok_or_else(|| exit::input_error(format!("unknown format {f:?}")))?,
        None => {
            let detected = if stdin {
                Format::detect(&head)
            } else {
                detect_file(&args.file)?
            };
            match detected {
                Some(format) => format,
                None => return Err(undetected(&name, stdin, &head, &args.file)),
            }
        }
    };
    let defaults = ImportOptions::default();
    let environment = match &args.environment {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                exit::input_error(format!("could not read {}: {e}", path.display()))
            })?;
            Some((path.display().to_string(), bytes))
        }
        None => None,
    };
    let compare =
        match &args.compare {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                exit::input_error(format!("could not read {}: {e}", path.display()))
            })?),
            None => None,
        };
    let grpc_schema = if args.proto.is_empty() {
        None
    } else {
        let schema = ld_converters::GrpcSchema::compile(&args.proto, &args.import_path)
            .map_err(|e| exit::input_error(format!("--proto: {e}")))?;
        Some(std::sync::Arc::new(schema))
    };
    let base_dir = match &args.working_dir {
        Some(dir) => Some(dir.clone()),
        None => (args.file != Path::new("-")).then(|| match args.file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }),
    };
    let options = ImportOptions {
        filter: filter(
            &args.include,
            &args.exclude,
            &args.include_from,
            &args.exclude_from,
            args.skip_static,
        )?
        .with_tags(&args.tag),
        inline_secrets: args.inline_secrets,
        think_time: args.think_time,
        user: args.user.clone(),
        users: args.users.unwrap_or(defaults.users),
        spawn_rate: args.spawn_rate.unwrap_or(defaults.spawn_rate),
        duration: args.duration.map_or(defaults.duration, |d| d.as_secs()),
        headers: parse_headers(&args.headers)?,
        drop_headers: drop_headers(&args.drop_header, &args.drop_header_from)?,
        given: GivenLoad {
            users: args.users.is_some(),
            spawn_rate: args.spawn_rate.is_some(),
            duration: args.duration.is_some(),
        },
        server: args.server.clone(),
        include_deprecated: args.include_deprecated,
        environment,
        base_dir,
        files_within: args.files_within.clone(),
        correlate: !args.no_correlate,
        assert_body: ld_converters::BodyChecks::from_name(&args.assert_body).unwrap_or_default(),
        compare,
        grpc_schema,
    };
    let result = if stdin {
        ld_converters::import(format, &name, &head, &options)
    } else {
        drop(head);
        ld_converters::import_file(format, &args.file, &options)
    };
    let import = result.map_err(|e| match e {
        ld_converters::Error::Read { .. } => exit::input_error(format!(
            "{e}: {}",
            std::error::Error::source(&e)
                .map(ToString::to_string)
                .unwrap_or_default()
        )),
        other => exit::input_error(other.to_string()),
    })?;

    if import.summary.kept == 0 {
        return Err(nothing_to_import(&name, &import.summary));
    }

    let to_stdout = args.output == Path::new("-");
    let mut import = import;
    let mut secrets = None;
    if let Some(env) = import.secrets_env() {
        // A plan sent to standard output or a device (`-o /dev/null`) has no directory of its
        // own for the side file: it goes to the current one, maybe beside another plan's.
        let device = std::fs::metadata(&args.output).is_ok_and(|m| !m.is_file());
        let beside_plan = (!to_stdout && !device).then(|| {
            let mut os = args.output.clone().into_os_string();
            os.push(".secrets.env");
            PathBuf::from(os)
        });
        let path = args
            .secrets_file
            .clone()
            .or_else(|| beside_plan.clone())
            .unwrap_or_else(|| PathBuf::from("actions.json.secrets.env"));
        // The side file of the plan being written is replaced with it; any other file that is
        // already there is kept, and the new secrets are added to it.
        let owned = beside_plan.as_ref() == Some(&path);
        let text = match std::fs::read_to_string(&path) {
            Ok(existing) if !owned => import.merged_secrets_env(&existing).map_err(|name| {
                exit::input_error(format!(
                    "{} already holds {name} with another value; pass --secrets-file with a \
                     new file (or remove {name} from it)",
                    path.display()
                ))
            })?,
            _ => env,
        };
        if !owned {
            import.name_secrets_file(&secrets_reference(&path, &args.output, to_stdout || device));
        }
        ld_plan::fs::write_atomic(&path, text.as_bytes(), true)
            .with_context(|| format!("could not write the secrets file {}", path.display()))?;
        secrets = Some((path, import.secrets.len()));
    }
    if to_stdout {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        if let Err(e) = import.write_plan(&mut out).and_then(|()| out.flush())
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(e).context("could not write the plan to standard output");
        }
    } else {
        ld_plan::fs::write_atomic_with(&args.output, false, |out| import.write_plan(out))
            .with_context(|| format!("could not write the plan {}", args.output.display()))?;
    }
    if let (Some(path), Some(report)) = (&args.correlation_report, &import.correlation) {
        let mut text = serde_json::to_string_pretty(&report.to_json())
            .context("could not write the correlation report")?;
        text.push('\n');
        ld_plan::fs::write_atomic(path, text.as_bytes(), false).with_context(|| {
            format!("could not write the correlation report {}", path.display())
        })?;
    }
    Ok(Written {
        summary: import.summary,
        secrets,
        correlation: import.correlation,
    })
}

/// The error of an import that kept no request: an empty plan would replay nothing, so none is
/// written. Says what was read, what was dropped and why, and what to change.
fn nothing_to_import(name: &str, summary: &ld_converters::Summary) -> anyhow::Error {
    let mut message = format!(
        "nothing to import from {name}: read {} requests, kept none",
        summary.read
    );
    for (reason, n) in &summary.dropped {
        message.push_str(&format!("\n  dropped {n} {reason}"));
    }
    for (warning, n) in &summary.warnings {
        match n {
            1 => message.push_str(&format!("\n  warning: {warning}")),
            n => message.push_str(&format!("\n  warning: {warning} ({n} times)")),
        }
    }
    let filtered = summary.dropped.keys().any(|reason| reason.contains("--"));
    message.push_str(if filtered {
        "\nno plan written; loosen the options named above (--include, --exclude, --tag, \
         --skip-static, --include-deprecated) to keep some requests"
    } else if summary.read == 0 {
        "\nno plan written; check that the file holds requests, or pass --from with its format"
    } else {
        "\nno plan written; fix or remove what the reasons above name"
    });
    exit::input_error(message)
}

/// The URL filter of `--include`, `--exclude` and their files `--include-from`,
/// `--exclude-from` (shared with `ld record`).
pub(crate) fn filter(
    include: &[String],
    exclude: &[String],
    include_from: &[PathBuf],
    exclude_from: &[PathBuf],
    skip_static: bool,
) -> anyhow::Result<Filter> {
    let mut filter =
        Filter::new(include, exclude, skip_static).map_err(|e| exit::input_error(e.to_string()))?;
    for (exclude, files) in [(false, include_from), (true, exclude_from)] {
        for path in files {
            filter = filter.with_patterns(exclude, pattern_file(path)?);
        }
    }
    Ok(filter)
}

/// The regexes of an `--include-from` or `--exclude-from` file.
pub(crate) fn pattern_file(path: &Path) -> anyhow::Result<Vec<regex::Regex>> {
    let text = read_list(path)?;
    ld_converters::patterns_from_file(&path.display().to_string(), &text)
        .map_err(|e| exit::input_error(e.to_string()))
}

/// The lowercased header names of `--drop-header` and `--drop-header-from` (shared with
/// `ld record`).
pub(crate) fn drop_headers(names: &[String], files: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut all = names
        .iter()
        .map(|n| ld_converters::header_name("drop-header", n))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| exit::input_error(e.to_string()))?;
    for path in files {
        let text = read_list(path)?;
        all.extend(
            ld_converters::header_names_from_file(&path.display().to_string(), &text)
                .map_err(|e| exit::input_error(e.to_string()))?,
        );
    }
    Ok(all)
}

/// A list file given to a flag, as text.
fn read_list(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| exit::input_error(format!("could not read {}: {e}", path.display())))
}

/// The first 64 KiB of a file, enough to tell its format.
fn detect_file(file: &Path) -> anyhow::Result<Option<Format>> {
    std::fs::File::open(file)
        .and_then(Format::detect_reader)
        .map_err(|e| exit::input_error(format!("could not read {}: {e}", file.display())))
}

/// Why no format was recognised: an empty file says so, anything else lists what was tried.
fn undetected(name: &str, stdin: bool, head: &[u8], file: &Path) -> anyhow::Error {
    let empty = if stdin {
        head.iter().all(u8::is_ascii_whitespace)
    } else {
        read_head(file).is_ok_and(|h| h.iter().all(u8::is_ascii_whitespace))
    };
    if empty {
        return exit::input_error(format!(
            "{name}: the file is empty: there is nothing to import; give a HAR, a Postman collection, an OpenAPI description, curl commands or a JMeter plan"
        ));
    }
    let tried: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
    exit::input_error(
        ld_converters::Error::UnknownFormat {
            name: name.to_string(),
            tried: tried.join(", "),
        }
        .to_string(),
    )
}

fn read_head(file: &Path) -> anyhow::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(64 * 1024);
    std::fs::File::open(file)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .map_err(|e| exit::input_error(format!("could not read {}: {e}", file.display())))?;
    Ok(head)
}

fn parse_headers(raw: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    raw.iter()
        .map(|h| {
            let (name, value) = h.split_once(':').ok_or_else(|| {
                exit::input_error(format!(
                    "--header {h:?} has no colon; write it as 'Name: value'"
                ))
            })?;
            let name = name.trim();
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(exit::input_error(format!(
                    "--header {h:?}: {name:?} is not a header name"
                )));
            }
            Ok((name.to_string(), value.trim().to_string()))
        })
        .collect()
}

/// How the plan names its secrets file `secrets` (the `ld_secrets_file` variable, read
/// relative to the plan): its file name when it sits beside the plan `output`, else its
/// absolute path (always for a plan written to standard output, which has no place yet).
fn secrets_reference(secrets: &Path, output: &Path, no_place: bool) -> String {
    let absolute = std::path::absolute(secrets).unwrap_or_else(|_| secrets.to_path_buf());
    if !no_place
        && let (Ok(plan), Some(dir)) = (std::path::absolute(output), absolute.parent())
        && plan.parent() == Some(dir)
        && let Some(name) = absolute.file_name()
    {
        return name.to_string_lossy().into_owned();
    }
    absolute.display().to_string()
}
