//! The command line: options, and one conversion (or listing) run with them.

mod bars;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{ArgAction, CommandFactory, Parser};

use initramfs_stream::AtomicFile;
use initramfs_stream::BlockingIo;
use initramfs_stream::Excludes;
use initramfs_stream::{BootOptions, InitChoice};
use initramfs_stream::{
    Codec, Compression, ImageReference, InitramfsBuilder, Mtimes, Platform, PreparedImage,
};

/// Turn a container image into a bootable Linux initramfs (CPIO newc).
#[derive(Debug, Parser)]
#[command(name = "initramfs-stream", version = env!("INITRAMFS_STREAM_VERSION"), about, long_about = None)]
pub struct Cli {
    /// The image: a registry NAME[:TAG][@DIGEST] (e.g. alpine,
    /// host:port/org/app:v1, docker://...), oci:DIR[:TAG],
    /// oci-archive:FILE[:TAG], docker-archive:FILE[:NAME[:TAG]|:@N] (FILE
    /// may be - for stdin, or a pipe) or docker-daemon:NAME[:TAG|@DIGEST].
    #[arg(required_unless_present_any = ["completions", "man"])]
    image: Option<String>,

    /// Write the archive to FILE (atomically) instead of stdout.
    #[arg(short, long, value_name = "FILE", conflicts_with = "list")]
    output: Option<PathBuf>,

    /// gzip, zstd, xz, lz4 or none. Default: from the -o extension (.gz
    /// gzip, .zst zstd, .xz xz, .lz4 lz4, .cpio none, else gzip); none on
    /// stdout.
    #[arg(short = 'c', long, value_name = "CODEC")]
    compression: Option<Codec>,

    /// Compression level (gzip 1-9, default 6; zstd 1-22, default 3;
    /// xz 0-9, default 6).
    #[arg(short = 'l', long, value_name = "N")]
    level: Option<i32>,

    /// Threads for reading layers and compressing (default: all cores).
    /// The output is the same for any value.
    #[arg(short = 'j', long, value_name = "N")]
    jobs: Option<usize>,

    /// Platform to select from a multi-platform image (default: the host's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,

    /// Install this host file as /init (mode 0755), replacing the image's.
    #[arg(long, value_name = "FILE", conflicts_with = "no_init")]
    init: Option<PathBuf>,

    /// Add a host file or directory at DST (absolute) in the archive;
    /// repeatable, later ones win. Files get mode 0755.
    #[arg(long, value_name = "SRC:DST")]
    inject: Vec<String>,

    /// Output exactly the image's filesystem: no /init, no boot essentials
    /// (with --inject: only the injected files are added).
    #[arg(long)]
    no_init: bool,

    /// Use the generated POSIX sh /init instead of the static one (needs
    /// /bin/sh and busybox-style tools in the image).
    #[arg(long, conflicts_with_all = ["no_init", "init"])]
    sh_init: bool,

    /// Seconds the static /init waits, after sending the image's
    /// StopSignal on Ctrl-Alt-Del, before it kills the command.
    #[arg(long, value_name = "SECONDS", default_value_t = initramfs_stream::boot::DEFAULT_STOP_TIMEOUT)]
    stop_timeout: u64,

    /// Leave out image paths matching GLOB (absolute, gitignore-style:
    /// /usr/share/doc, /usr/share/man/**, *.pyc); an excluded directory
    /// takes its subtree. Repeatable.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,

    /// Read --exclude patterns from FILE, one a line (# comments).
    #[arg(long, value_name = "FILE")]
    exclude_from: Vec<PathBuf>,

    /// Give every entry this mtime (seconds since the epoch). Without it,
    /// SOURCE_DATE_EPOCH clamps every mtime to at most its value.
    #[arg(long, value_name = "SECONDS")]
    mtime: Option<u64>,

    /// Do not check that the command /init will run can run (program,
    /// machine, dynamic loader, libraries, #! interpreter, User).
    #[arg(long)]
    no_check: bool,

    /// Refuse an archive that needs more guest memory (the VMM's memory
    /// size) than SIZE to boot (suffixes K, M, G, T).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    guest_memory: Option<u64>,

    /// Memory the guest kernel keeps for itself, for the guest memory
    /// estimate (default: Debian's 6.1 cloud kernel for amd64, 42M).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    kernel_footprint: Option<u64>,

    /// Print the archive's tree like `tar tv` instead of writing it (only
    /// the layers' headers are read).
    #[arg(long)]
    list: bool,

    /// Print the summary as one JSON object (on stdout with -o, else on
    /// stderr); with --list, one JSON object per path.
    #[arg(long, conflicts_with = "quiet")]
    json: bool,

    /// Refuse images with more paths than this.
    #[arg(long, value_name = "N", default_value_t = initramfs_stream::DEFAULT_MAX_ENTRIES)]
    max_entries: usize,

    /// Refuse an archive larger than this, or a layer that decompresses to
    /// more (bytes; suffixes K, M, G, T for powers of 1024).
    #[arg(long, value_name = "SIZE", value_parser = parse_size,
          default_value = "32G")]
    max_size: u64,

    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,

    /// Log the steps on stderr (-vv: more detail).
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,

    /// Print a shell completion script for SHELL and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<clap_complete::Shell>,

    /// Print the man page (roff) and exit.
    #[arg(long, exclusive = true)]
    man: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

impl Cli {
    /// Completions or the man page, when asked for: nothing else runs.
    pub fn print_generated(&self) -> Option<Result<()>> {
        let mut cmd = Cli::command();
        // Rendered in memory first: the generators panic on a closed pipe.
        let mut text = Vec::new();
        if let Some(shell) = self.completions {
            clap_complete::generate(shell, &mut cmd, "initramfs-stream", &mut text);
        } else if self.man {
            if let Err(e) = clap_mangen::Man::new(cmd).render(&mut text) {
                return Some(Err(e).context("cannot render the man page"));
            }
        } else {
            return None;
        }
        Some(write_stdout(&text))
    }

    /// Logging on stderr for -v and -vv.
    pub fn init_logging(&self) {
        let level = match self.verbose {
            0 => return,
            1 => tracing::Level::INFO,
            _ => tracing::Level::DEBUG,
        };
        let _ = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .without_time()
            .try_init();
    }
}

/// "4096", "512M", "32G": a size in bytes with an optional binary suffix.
fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, shift) = match s.trim().char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown size suffix in '{s}' (K, M, G or T)")),
            };
            (&s.trim()[..i], shift)
        }
        _ => (s.trim(), 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a size (e.g. 512M, 32G)"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// SOURCE_DATE_EPOCH, as reproducible-builds.org defines it.
fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v
            .trim()
            .parse()
            .map(Some)
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")),
        _ => Ok(None),
    }
}

fn excludes(cli: &Cli) -> Result<Excludes> {
    let mut patterns = cli.exclude.clone();
    for file in &cli.exclude_from {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read --exclude-from {}", file.display()))?;
        patterns.extend(Excludes::parse_file(&text).map(String::from));
    }
    Excludes::new(&patterns).map_err(anyhow::Error::msg)
}

pub async fn run(cli: &Cli) -> Result<()> {
    run_image(cli).await.map_err(with_flag_hint)
}

/// The failure with the option that would help, for the failures of the
/// image source an option can do something about.
fn with_flag_hint(e: anyhow::Error) -> anyhow::Error {
    use initramfs_stream::source::{SourceError, TransportKind};
    let Some(source) = source_error(&e) else {
        return e;
    };
    let hint = match source {
        SourceError::MemoryLimit { what, limit } => {
            return anyhow::anyhow!(
                "{what}: the stream is larger than --memory-limit ({}, held compressed); \
                 raise it, or give the archive as a file",
                initramfs_stream::human_bytes(*limit)
            )
        }
        SourceError::Transport {
            kind: TransportKind::NotTls,
            ..
        } => "is it a plain-HTTP registry? then use --plain-http",
        SourceError::Transport {
            kind: TransportKind::Certificate,
            ..
        } => "trust its CA with --ca-file, or skip verification with --insecure",
        SourceError::Auth(auth) => match &auth.tried {
            Some(tried) if tried.from.is_none() => "given with --username and --password-stdin",
            Some(_) => return e,
            None => "give them with --username and --password-stdin",
        },
        SourceError::CaFile { .. } => "the file given with --ca-file",
        SourceError::HalfCredential => "--username and --password-stdin go together",
        _ => return e,
    };
    anyhow::anyhow!("{} ({hint})", one_line(&e))
}

/// The image source's error behind a failure, wherever it was wrapped: in
/// the library's `Error`, or in an I/O error of a layer stream.
fn source_error(e: &anyhow::Error) -> Option<&initramfs_stream::source::SourceError> {
    use initramfs_stream::source::SourceError;
    e.chain().find_map(|cause| {
        if let Some(initramfs_stream::Error::Source(s)) =
            cause.downcast_ref::<initramfs_stream::Error>()
        {
            return Some(s);
        }
        if let Some(s) = cause.downcast_ref::<SourceError>() {
            return Some(s);
        }
        cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<SourceError>())
    })
}

/// The error chain on one line, outermost first, without repeats.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

async fn run_image(cli: &Cli) -> Result<()> {
    let started = Instant::now();
    let image = cli.image.as_deref().unwrap_or_default();
    let reference = image_reference(image, &cli.registry)?;
    let codec = cli.compression.unwrap_or(match &cli.output {
        Some(path) => Codec::for_path(path),
        None => Codec::None,
    });
    let compression = Compression::new(codec, cli.level)
        .map_err(|e| anyhow::anyhow!("-l/--level {}: {e}", cli.level.unwrap_or_default()))?;
    if !cli.list && cli.output.is_none() && std::io::stdout().is_terminal() {
        bail!("refusing to write an archive to a terminal; use -o FILE or redirect stdout (e.g. | zstd > out.img)");
    }

    let init = match (&cli.init, cli.no_init) {
        (_, true) if cli.inject.is_empty() => None,
        (_, true) => Some(InitChoice::Keep),
        (Some(file), false) => Some(InitChoice::File(file.clone())),
        (None, false) if cli.sh_init => Some(InitChoice::Script),
        (None, false) => Some(InitChoice::Auto),
    };
    let boot = init.map(|init| {
        let mut boot = BootOptions::default();
        boot.init = init;
        boot.injects = cli.inject.clone();
        boot.stop_timeout = Some(cli.stop_timeout);
        boot
    });
    let epoch = source_date_epoch()?;
    let mtimes = match (cli.mtime, epoch) {
        (Some(t), _) => Mtimes::Fixed(t),
        (None, Some(e)) => Mtimes::Clamp(e),
        (None, None) => Mtimes::Keep,
    };
    let mut builder = InitramfsBuilder::new(reference)
        .compression(compression)
        .max_entries(cli.max_entries)
        .max_size(cli.max_size)
        .boot(boot)
        .generated_mtime(cli.mtime.or(epoch).unwrap_or(0))
        .mtimes(mtimes)
        .excludes(excludes(cli)?)
        .check(!cli.no_check)
        .guest_memory(cli.guest_memory);
    if let Some(bytes) = cli.kernel_footprint {
        builder = builder.kernel_footprint(bytes);
    }
    if let Some(jobs) = cli.jobs {
        builder = builder.jobs(jobs);
    }
    if let Some(p) = &cli.platform {
        builder = builder.platform(Platform::parse(p)?);
    }
    // Bars only for a person watching: never in a pipe, and not over logs.
    let bars = (!cli.quiet && cli.verbose == 0 && std::io::stderr().is_terminal())
        .then(|| Arc::new(bars::Bars::new()));
    if let Some(b) = &bars {
        builder = builder.progress(Arc::clone(b) as _);
    }
    let result = convert(cli, builder, started, bars.as_deref()).await;
    if let Some(b) = &bars {
        b.clear();
    }
    result
}

async fn convert(
    cli: &Cli,
    builder: InitramfsBuilder,
    started: Instant,
    bars: Option<&bars::Bars>,
) -> Result<()> {
    let prepared = builder.prepare().await?;
    if !cli.quiet {
        if let Some(b) = bars {
            b.clear();
        }
        for w in prepared.warnings() {
            eprintln!("initramfs-stream: warning: {w}");
        }
    }
    if cli.list {
        if cli.json && !cli.quiet {
            report_check(&prepared);
        }
        return list(&prepared, cli.json);
    }

    let summary = match &cli.output {
        Some(path) => {
            let mut file = AtomicFile::create(path)
                .await
                .with_context(|| format!("cannot create {}", path.display()))?;
            let summary = prepared.write_to(file.writer()).await?;
            file.commit()
                .await
                .with_context(|| format!("cannot write {}", path.display()))?;
            summary
        }
        None => {
            // A duplicate of fd 1 as a plain file: unbuffered, no line
            // scanning, and Send (a StdoutLock is not).
            use std::os::fd::AsFd;
            let fd = std::io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .context("cannot use stdout")?;
            let stdout = BlockingIo(std::fs::File::from(fd));
            prepared.write_to(stdout).await?
        }
    };
    if let Some(b) = bars {
        b.clear();
    }
    let elapsed = started.elapsed();
    if cli.json {
        let mut json = summary.json(elapsed);
        json["image"] = cli.image.clone().into();
        json["output"] = cli.output.as_ref().map(|p| p.display().to_string()).into();
        // stdout holds the archive unless -o took it elsewhere.
        if cli.output.is_some() {
            println!("{json}");
        } else {
            eprintln!("{json}");
        }
    } else if !cli.quiet {
        eprintln!("initramfs-stream: {}", summary.line(elapsed));
    }
    Ok(())
}

/// `--list --json`: what the boot check found and the guest memory an
/// uncompressed archive needs, as one object on stderr (stdout holds the
/// listing).
fn report_check(prepared: &PreparedImage) {
    let value = serde_json::json!({
        "check": prepared.boot_check().map(|r| r.json()),
        "guest_memory_bytes": prepared.guest_memory_uncompressed(),
    });
    eprintln!("{value}");
}

/// Writes to stdout; a reader that stops early (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to stdout"),
    }
}

/// `--list`: one line (or JSON object) per path on stdout. A reader that
/// stops early (`| head`) is not an error.
fn list(prepared: &PreparedImage, json: bool) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = (|| {
        for entry in prepared.list() {
            if json {
                writeln!(out, "{}", entry.json())?;
            } else {
                writeln!(out, "{}", entry.text_line())?;
            }
        }
        out.flush()
    })();
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write the listing"),
    }
}

/// How to reach a registry; ignored for local images.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Registry")]
struct RegistryArgs {
    /// User name for the registry (with --password-stdin). Without it,
    /// credentials come from $REGISTRY_AUTH_FILE, the containers auth.json,
    /// or the Docker config ($DOCKER_CONFIG, ~/.docker) and its helpers.
    #[arg(long, value_name = "USER", requires = "password_stdin")]
    username: Option<String>,

    /// Read the registry password from stdin.
    #[arg(long, requires = "username")]
    password_stdin: bool,

    /// Talk plain HTTP to the registry.
    #[arg(long)]
    plain_http: bool,

    /// Do not verify the registry's TLS certificate.
    #[arg(long)]
    insecure: bool,

    /// Also trust the PEM CA certificates in FILE.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,

    /// Compressed layers kept in memory between the two passes; past it a
    /// pulled layer is downloaded again, a docker-daemon: layer exported
    /// again, and an archive read from a pipe fails (suffixes K, M, G, T).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "1G")]
    memory_limit: u64,
}

/// The image reference, with the registry options when it names a registry.
fn image_reference(image: &str, args: &RegistryArgs) -> Result<ImageReference> {
    let mut reference = ImageReference::parse(image)?;
    reference.set_memory_limit(args.memory_limit);
    if let ImageReference::Registry { options, .. } = &mut reference {
        let password = if args.password_stdin {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("cannot read the password from stdin")?;
            let s = s.strip_suffix('\n').unwrap_or(&s);
            Some(s.strip_suffix('\r').unwrap_or(s).to_string())
        } else {
            None
        };
        options.username = args.username.clone();
        options.password = password;
        options.plain_http = args.plain_http;
        options.insecure = args.insecure;
        options.ca_file = args.ca_file.clone();
        options.memory_limit = args.memory_limit;
    }
    Ok(reference)
}

#[cfg(test)]
mod tests {
    use super::*;
    use initramfs_stream::source::{AuthError, SourceError, Tried};

    fn hinted(e: SourceError) -> String {
        one_line(&with_flag_hint(initramfs_stream::Error::from(e).into()))
    }

    #[test]
    fn flag_hints_follow_the_error_kind() {
        let limit = hinted(SourceError::MemoryLimit {
            what: "docker-archive:-".into(),
            limit: 64 << 10,
        });
        assert!(limit.contains("larger than --memory-limit"), "{limit}");
        let auth = |from: Option<&str>| {
            hinted(SourceError::Auth(AuthError {
                host: "reg".into(),
                tried: Some(Tried {
                    username: "u".into(),
                    from: from.map(String::from),
                }),
                looked_in: Vec::new(),
                reason: String::new(),
            }))
        };
        assert!(auth(None).contains("--password-stdin"), "{}", auth(None));
        // Credentials from a file: the file is named, no option is.
        let from_file = auth(Some("/x/config.json"));
        assert!(
            from_file.contains("/x/config.json") && !from_file.contains("--"),
            "{from_file}"
        );
        // Inside a layer stream's I/O error too.
        let inner = std::io::Error::other(SourceError::HalfCredential);
        let text = one_line(&with_flag_hint(anyhow::Error::new(inner)));
        assert!(text.contains("--username"), "{text}");
        // Errors no option helps with are left alone.
        let plain = hinted(SourceError::Image("no tag".into()));
        assert_eq!(plain, "no tag");
    }
}
