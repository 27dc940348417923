//! The `initramfs-stream` command: parses options, runs the library, and
//! turns every failure into one line on stderr and exit status 1.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;

use initramfs_stream::blocking_io::BlockingIo;
use initramfs_stream::boot::{BootOptions, InitChoice};
use initramfs_stream::output::AtomicFile;
use initramfs_stream::{Codec, Compression, ImageReference, InitramfsBuilder, Platform};

/// Turn a container image into a bootable Linux initramfs (CPIO newc).
#[derive(Debug, Parser)]
#[command(name = "initramfs-stream", version, about, long_about = None)]
struct Cli {
    /// The image: a registry NAME[:TAG][@DIGEST] (e.g. alpine,
    /// host:port/org/app:v1, docker://...), oci:DIR[:TAG],
    /// oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG].
    image: String,

    /// Write the archive to FILE (atomically) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
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

    /// Refuse images with more paths than this.
    #[arg(long, value_name = "N", default_value_t = initramfs_stream::builder_defaults::MAX_ENTRIES)]
    max_entries: usize,

    /// Refuse an archive larger than this, or a layer that decompresses to
    /// more (bytes; suffixes K, M, G, T for powers of 1024).
    #[arg(long, value_name = "SIZE", value_parser = parse_size,
          default_value = "32G")]
    max_size: u64,

    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("initramfs-stream: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(&cli) => r,
            // Dropping `run` removes a temporary output file.
            _ = interrupted() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("initramfs-stream: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// The error chain on one line, outermost first, without repeats.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
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

/// SOURCE_DATE_EPOCH, as reproducible-builds.org defines it, else 0.
fn source_date_epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")),
        _ => Ok(0),
    }
}

async fn run(cli: &Cli) -> Result<()> {
    let reference = image_reference(&cli.image, &cli.registry)?;
    let codec = cli.compression.unwrap_or(match &cli.output {
        Some(path) => Codec::for_path(path),
        None => Codec::None,
    });
    let compression = Compression::new(codec, cli.level).map_err(anyhow::Error::msg)?;
    if cli.output.is_none() && std::io::stdout().is_terminal() {
        bail!("refusing to write an archive to a terminal; use -o FILE or redirect stdout (e.g. | zstd > out.img)");
    }

    let boot = match (&cli.init, cli.no_init) {
        (_, true) if cli.inject.is_empty() => None,
        (_, true) => Some(BootOptions {
            init: InitChoice::Keep,
            injects: cli.inject.clone(),
        }),
        (Some(file), false) => Some(BootOptions {
            init: InitChoice::File(file.clone()),
            injects: cli.inject.clone(),
        }),
        (None, false) => Some(BootOptions {
            init: InitChoice::Auto,
            injects: cli.inject.clone(),
        }),
    };
    let mut builder = InitramfsBuilder::new(reference)
        .compression(compression)
        .max_entries(cli.max_entries)
        .max_size(cli.max_size)
        .boot(boot)
        .generated_mtime(source_date_epoch()?);
    if let Some(jobs) = cli.jobs {
        builder = builder.jobs(jobs);
    }
    if let Some(p) = &cli.platform {
        builder = builder.platform(Platform::parse(p)?);
    }
    let prepared = builder.prepare().await?;
    if !cli.quiet {
        for w in prepared.warnings() {
            eprintln!("initramfs-stream: warning: {w}");
        }
    }

    match &cli.output {
        Some(path) => {
            let mut file = AtomicFile::create(path)
                .await
                .with_context(|| format!("cannot create {}", path.display()))?;
            prepared.write_to(file.writer()).await?;
            file.commit()
                .await
                .with_context(|| format!("cannot write {}", path.display()))?;
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
            prepared.write_to(stdout).await?;
        }
    }
    Ok(())
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
    /// layer is downloaded again (suffixes K, M, G, T).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "1G")]
    memory_limit: u64,
}

/// The image reference, with the registry options when it names a registry.
fn image_reference(image: &str, args: &RegistryArgs) -> Result<ImageReference> {
    use initramfs_stream::source::RegistryOptions;
    let mut reference = ImageReference::parse(image)?;
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
        *options = RegistryOptions {
            username: args.username.clone(),
            password,
            plain_http: args.plain_http,
            insecure: args.insecure,
            ca_file: args.ca_file.clone(),
            memory_limit: args.memory_limit,
        };
    }
    Ok(reference)
}
