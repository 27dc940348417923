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
    /// estimate (default: Debian's 6.1 cloud kernel's, 42M for amd64, 94M
    /// for arm64 with its CMA area).
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

/// The failure in the command line's words: the library names problems,
/// this adds the option that would help, or names the option a value came
/// from, by the error's type.
fn with_flag_hint(e: anyhow::Error) -> anyhow::Error {
    match flag_text(&e) {
        Some(text) => anyhow::anyhow!(text),
        None => e,
    }
}

/// How the command line says an error of the library.
enum Said {
    /// The line, then this.
    Then(String),
    /// The error's own text replaced by this one, in the line.
    Instead(String),
}

fn flag_text(e: &anyhow::Error) -> Option<String> {
    let line = one_line(e);
    let said = match source_error(e) {
        Some(source) => source_said(source)?,
        None => library_said(e.chain().find_map(|c| c.downcast_ref())?)?,
    };
    Some(match said {
        Said::Then(hint) => format!("{line}{hint}"),
        Said::Instead(text) => {
            let own = e
                .chain()
                .find(|c| c.is::<initramfs_stream::Error>() || c.is::<SourceError>())
                .map(|c| escape_controls(&c.to_string()))
                .unwrap_or_default();
            match line.find(&own) {
                Some(at) if !own.is_empty() => {
                    format!("{}{text}{}", &line[..at], &line[at + own.len()..])
                }
                _ => text,
            }
        }
    })
}

use initramfs_stream::source::SourceError;

fn source_said(source: &SourceError) -> Option<Said> {
    use initramfs_stream::source::TransportKind;
    let hint = match source {
        SourceError::MemoryLimit { what, limit } => {
            return Some(Said::Instead(format!(
                "{what}: the stream is larger than --memory-limit ({}, held compressed); \
                 raise it, or give the archive as a file",
                initramfs_stream::human_bytes(*limit)
            )))
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
            Some(_) => return None,
            None => "give them with --username and --password-stdin",
        },
        SourceError::CaFile { .. } => "the file given with --ca-file",
        SourceError::HalfCredential => "--username and --password-stdin go together",
        _ => return None,
    };
    Some(Said::Then(format!(" ({hint})")))
}

fn library_said(error: &initramfs_stream::Error) -> Option<Said> {
    use initramfs_stream::boot::{BootError, HostFile};
    use initramfs_stream::index::IndexError;
    use initramfs_stream::layer::LayerError;
    use initramfs_stream::{human_bytes, Error, LimitError};
    let flag = |what: &HostFile| match what {
        HostFile::Init => "--init",
        HostFile::Inject => "--inject",
    };
    let then = |hint: &str| Some(Said::Then(hint.to_string()));
    let instead = |text: String| Some(Said::Instead(text));
    match error {
        Error::Layer(LayerError::TooManyEntries { .. }) => {
            then("; raise --max-entries if the image is genuine")
        }
        Error::Index(IndexError::TooManyPaths(_)) => then("; raise --max-entries if it is genuine"),
        Error::Layer(LayerError::TooLarge { .. }) => {
            then("; raise --max-size if the image is genuine")
        }
        Error::Limit(LimitError::ArchiveSize { size, limit }) => instead(format!(
            "the archive would be {size} bytes, over the --max-size bound of {limit} bytes"
        )),
        Error::Limit(LimitError::GuestMemory {
            needed,
            files,
            initrd,
            limit,
        }) => instead(format!(
            "the archive needs at least {} of guest memory to boot ({} of files unpacked, a {} \
             initrd), over --guest-memory {}",
            human_bytes(*needed),
            human_bytes(*files),
            human_bytes(*initrd),
            human_bytes(*limit)
        )),
        Error::Limit(LimitError::CheckRounds { .. }) => then("; give --no-check"),
        Error::Check(_) => then(" (--no-check writes the archive anyway)"),
        Error::Boot(BootError::NoShell) => then(" (give --init FILE, or --no-init)"),
        Error::Boot(BootError::BadInjectSpec(spec)) => instead(format!(
            "invalid --inject {spec:?}: expected SRC:DST with an absolute DST"
        )),
        Error::Boot(BootError::Host { what, path, source }) => {
            instead(format!("{} {}: {source}", flag(what), path.display()))
        }
        Error::Boot(BootError::InitNotAFile(path)) => {
            instead(format!("--init {}: not a regular file", path.display()))
        }
        Error::Boot(BootError::UnsupportedFileType(path)) => instead(format!(
            "--inject {}: not a regular file, directory or symlink",
            path.display()
        )),
        _ => None,
    }
}

/// The image source's error behind a failure, wherever it was wrapped: in
/// the library's `Error`, in a layer's error, or in an I/O error of a
/// layer stream (whose `source()` skips the error it wraps: step into it).
fn source_error(e: &anyhow::Error) -> Option<&SourceError> {
    e.chain().find_map(|cause| {
        if let Some(initramfs_stream::Error::Source(s)) =
            cause.downcast_ref::<initramfs_stream::Error>()
        {
            return Some(s);
        }
        let mut inner: Option<&(dyn std::error::Error + 'static)> = Some(cause);
        while let Some(c) = inner {
            if let Some(s) = c.downcast_ref::<SourceError>() {
                return Some(s);
            }
            inner = match c
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(wrapped) => Some(wrapped as &(dyn std::error::Error + 'static)),
                None => c.source(),
            };
        }
        None
    })
}

/// The error chain on one line, outermost first, without repeats, and
/// with no control character that could reach the terminal.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = escape_controls(&cause.to_string());
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// Newlines as spaces, other control characters escaped.
fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push(' '),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
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
            eprintln!("initramfs-stream: warning: {}", warning(w));
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

/// A warning of the library, with the option that changes what it tells.
fn warning(note: &initramfs_stream::boot::Note) -> String {
    use initramfs_stream::boot::Note;
    match note {
        Note::ImageInit => format!("{note} (give --init FILE to use another)"),
        _ => escape_controls(&note.to_string()),
    }
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
            hinted(SourceError::Auth(Box::new(AuthError {
                host: "reg".into(),
                tried: Some(Tried {
                    username: "u".into(),
                    from: from.map(String::from),
                }),
                looked_in: Vec::new(),
                reason: String::new(),
            })))
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

    fn said(e: impl Into<initramfs_stream::Error>) -> String {
        one_line(&with_flag_hint(e.into().into()))
    }

    #[test]
    fn bounds_name_the_option_that_raises_them() {
        use initramfs_stream::index::IndexError;
        use initramfs_stream::layer::LayerError;
        use initramfs_stream::LimitError;
        assert_eq!(
            said(LayerError::TooManyEntries {
                layer: 0,
                limit: 1000
            }),
            "layer 0: too many entries (more than 1000); raise --max-entries if the image is \
             genuine"
        );
        assert_eq!(
            said(IndexError::TooManyPaths(1000)),
            "the image has more than 1000 paths; raise --max-entries if it is genuine"
        );
        assert_eq!(
            said(LayerError::TooLarge {
                layer: 2,
                limit: 64 << 20
            }),
            "layer 2: decompresses to more than 67108864 bytes; raise --max-size if the image is \
             genuine"
        );
        assert_eq!(
            said(LimitError::ArchiveSize {
                size: 5000,
                limit: 4096
            }),
            "the archive would be 5000 bytes, over the --max-size bound of 4096 bytes"
        );
        let memory = said(LimitError::GuestMemory {
            needed: 300 << 20,
            files: 200 << 20,
            initrd: 50 << 20,
            limit: 256 << 20,
        });
        assert!(
            memory.starts_with("the archive needs at least 300")
                && memory.ends_with("over --guest-memory 256.0 MiB"),
            "{memory}"
        );
        assert_eq!(
            said(LimitError::CheckRounds { rounds: 32 }),
            "the boot check did not settle in 32 rounds; give --no-check"
        );
    }

    #[test]
    fn host_files_are_named_by_their_option() {
        use initramfs_stream::boot::{BootError, HostFile};
        let missing = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let init = said(BootError::Host {
            what: HostFile::Init,
            path: "/x/init".into(),
            source: missing(),
        });
        assert_eq!(init, format!("--init /x/init: {}", missing()));
        let inject = said(BootError::Host {
            what: HostFile::Inject,
            path: "/x/agent".into(),
            source: missing(),
        });
        assert_eq!(inject, format!("--inject /x/agent: {}", missing()));
        assert_eq!(
            said(BootError::InitNotAFile("/tmp".into())),
            "--init /tmp: not a regular file"
        );
        assert_eq!(
            said(BootError::UnsupportedFileType("/dev/null".into())),
            "--inject /dev/null: not a regular file, directory or symlink"
        );
        assert_eq!(
            said(BootError::BadInjectSpec("agent".into())),
            "invalid --inject \"agent\": expected SRC:DST with an absolute DST"
        );
        assert_eq!(
            said(BootError::NoShell),
            "the generated /init needs /bin/sh, which the image lacks (give --init FILE, or \
             --no-init)"
        );
        // Context around the error stays where it was.
        let wrapped = anyhow::Error::from(initramfs_stream::Error::from(BootError::InitNotAFile(
            "/tmp".into(),
        )))
        .context("preparing");
        assert_eq!(
            one_line(&with_flag_hint(wrapped)),
            "preparing: --init /tmp: not a regular file"
        );
    }

    #[test]
    fn a_blob_error_inside_a_layer_error_gets_its_hint() {
        use initramfs_stream::layer::LayerError;
        let text = said(LayerError::Blob {
            layer: 1,
            source: SourceError::MemoryLimit {
                what: "docker-archive:-".into(),
                limit: 64 << 10,
            },
        });
        assert!(
            text.starts_with("docker-archive:-: the stream is larger than --memory-limit"),
            "{text}"
        );
    }

    #[test]
    fn the_image_init_note_names_the_option() {
        use initramfs_stream::boot::Note;
        assert_eq!(
            warning(&Note::ImageInit),
            "the image has its own /init: booting it (give --init FILE to use another)"
        );
        assert_eq!(warning(&Note::Text("as is".into())), "as is");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let e = anyhow::anyhow!("bad\x1b[31mname\nnext");
        assert_eq!(one_line(&e), "bad\\u{1b}[31mname next");
    }
}
