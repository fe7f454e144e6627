//! `berth images`: list, tag, label, check and remove image records, and
//! import and export image archives, as `ctr images` does.
//!
//! Import and export run `berth-image`'s archive code in this process over
//! the daemon's content store and image service, the way ctr runs
//! containerd's; imports work under a lease that expires in a day and is
//! deleted when the import ends, as containerd's `client.WithLease` does.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use berth_client::berth_core::content::ContentStore;
use berth_client::berth_core::images::{Image, ImageStore};
use berth_client::berth_core::mount;
use berth_client::berth_core::snapshots::Snapshotter;
use berth_client::berth_image::archive::{self, ExportOptions, ImportOptions, RefTranslator};
use berth_client::berth_image::unpack::{Unpacked, Unpacker, SNAPSHOT_GC_REF_PREFIX};
use berth_client::berth_image::{images, platforms, Descriptor, Matcher};
use berth_client::leases::{expiry, EXPIRE_LABEL};
use berth_client::{Client, Error, ErrorKind};
use tokio::io::{AsyncRead, AsyncWrite, BufReader, BufWriter};

use crate::args;
use crate::output::units::bytes;
use crate::output::{gotime, print, TabWriter};

use super::{warn, Context, Reported};

mod transfer;

/// How long an import's lease lives if berth dies before deleting it.
const IMPORT_LEASE: Duration = Duration::from_secs(24 * 3600);

/// `images` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List images known to the daemon
    #[command(visible_alias = "ls")]
    List {
        /// Print only the image refs
        #[arg(short, long)]
        quiet: bool,
        /// Filters (e.g. name==x, labels.a==b); an image matching any of
        /// them is listed
        filters: Vec<String>,
    },
    /// Check existing images to ensure all content is available locally
    Check {
        /// Print only the ready image refs (fully downloaded and unpacked)
        #[arg(short, long)]
        quiet: bool,
        /// The snapshotter whose snapshots count as unpacked
        #[arg(long, env = "CONTAINERD_SNAPSHOTTER", default_value = "overlayfs")]
        snapshotter: String,
        /// Filters
        filters: Vec<String>,
    },
    /// Remove one or more images by reference
    #[command(visible_aliases = ["rm", "del", "remove"])]
    Delete {
        /// Synchronously remove the image and all associated resources
        #[arg(long)]
        sync: bool,
        /// The images
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Tag an image
    Tag {
        /// Replace target refs that exist already
        #[arg(long)]
        force: bool,
        /// The image to tag
        source: String,
        /// The new names
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Set and clear labels for an image (KEY= clears KEY)
    Label {
        /// The image
        name: String,
        /// Labels, KEY=VALUE (a bare KEY means KEY=true)
        labels: Vec<String>,
    },
    /// Import images from an OCI or Docker archive ("-": stdin)
    Import(ImportArgs),
    /// Export images to an OCI archive ("-": stdout)
    Export(ExportArgs),
    /// Pull an image from a registry (in the daemon, through the transfer
    /// service)
    Pull(transfer::PullArgs),
    /// Push an image to a registry (in the daemon, through the transfer
    /// service)
    Push(transfer::PushArgs),
    /// Unpack an image's layers into a snapshotter
    Unpack(UnpackArgs),
    /// Mount an image's rootfs on a directory (a view keyed by the
    /// directory; see unmount)
    Mount(MountArgs),
    /// Unmount an image's rootfs from a directory
    Unmount(UnmountArgs),
}

/// `images import` options, as ctr's.
#[derive(Debug, clap::Args)]
struct ImportArgs {
    /// Base image name for added images; when given, only images with this
    /// name prefix are imported
    #[arg(long)]
    base_name: Option<String>,
    /// Also create BASE@DIGEST images for every manifest
    #[arg(long)]
    digests: bool,
    /// Skip --digests for images named in the archive
    #[arg(long)]
    skip_digest_for_named: bool,
    /// Image name to keep the index as (by default it is discarded)
    #[arg(long)]
    index_name: Option<String>,
    /// Import content for all platforms
    #[arg(long)]
    all_platforms: bool,
    /// Import content for this platform only
    #[arg(long)]
    platform: Option<String>,
    /// Do not unpack the images
    #[arg(long)]
    no_unpack: bool,
    /// Compress uncompressed Docker layers (not supported yet)
    #[arg(long)]
    compress_blobs: bool,
    /// Snapshotter to unpack into
    #[arg(long, env = "CONTAINERD_SNAPSHOTTER", default_value = "overlayfs")]
    snapshotter: String,
    /// The archive
    input: String,
}

/// `images export` options, as ctr's.
#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// Do not add Docker's manifest.json to the archive
    #[arg(long)]
    skip_manifest_json: bool,
    /// Do not add non-distributable blobs such as Windows layers
    #[arg(long)]
    skip_non_distributable: bool,
    /// Export content for this platform (repeatable; default: the host's)
    #[arg(long)]
    platform: Vec<String>,
    /// Export content for all platforms
    #[arg(long)]
    all_platforms: bool,
    /// Where to write the archive
    output: String,
    /// The images to export
    #[arg(required = true)]
    names: Vec<String>,
}

/// Runs an `images` subcommand.
pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let client = ctx.connect().await?;
    match args.command {
        Command::List { quiet, filters } => list(&client, quiet, &filters).await,
        Command::Check {
            quiet,
            snapshotter,
            filters,
        } => check(&client, quiet, &snapshotter, &filters).await,
        Command::Delete { sync, names } => delete(&client, sync, &names).await,
        Command::Tag {
            force,
            source,
            targets,
        } => tag(&client, force, &source, &targets).await,
        Command::Label { name, labels } => {
            let image = client
                .images()
                .set_labels(&name, args::labels(&labels))
                .await?;
            let mut pairs: Vec<String> = image
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            pairs.sort();
            print(&format!("{}\n", pairs.join(",")))?;
            Ok(())
        }
        Command::Import(args) => import(&client, args).await,
        Command::Export(args) => export(&client, args).await,
        Command::Pull(args) => transfer::pull(&client, args).await,
        Command::Push(args) => transfer::push(&client, args).await,
        Command::Unpack(args) => unpack(&client, args).await,
        Command::Mount(args) => mount(&client, args).await,
        Command::Unmount(args) => unmount(&client, args).await,
    }
}

/// Labels sorted as `k=v,k=v`, or `-`.
fn labels_column(image: &Image) -> String {
    if image.labels.is_empty() {
        return "-".to_string();
    }
    let mut pairs: Vec<String> = image
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    pairs.sort();
    pairs.join(",")
}

async fn list(client: &Client, quiet: bool, filters: &[String]) -> anyhow::Result<()> {
    let list = client.images().list(filters).await?;
    if quiet {
        return Ok(print(
            &list
                .iter()
                .map(|i| format!("{}\n", i.name))
                .collect::<String>(),
        )?);
    }
    let content = client.content();
    let host = Matcher::host();
    let mut text = String::from("REF\tTYPE\tDIGEST\tSIZE\tPLATFORMS\tLABELS\t\n");
    for image in &list {
        let target = Descriptor::from_core(&image.target);
        let (size, result) = images::size(&content, &target, &host).await;
        if let Err(err) = result {
            warn(format_args!(
                "failed calculating size for image {}: {err}",
                image.name
            ));
        }
        let platform_column = match images::platforms(&content, &target).await {
            Ok(list) if !list.is_empty() => {
                let set: BTreeSet<String> = list.iter().map(platforms::format).collect();
                set.into_iter().collect::<Vec<_>>().join(",")
            }
            Ok(_) => "-".to_string(),
            Err(err) => {
                warn(format_args!(
                    "failed resolving platform for image {}: {err}",
                    image.name
                ));
                "-".to_string()
            }
        };
        text += &format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t\n",
            image.name,
            image.target.media_type,
            image.target.digest,
            bytes(size),
            platform_column,
            labels_column(image)
        );
    }
    Ok(print(&TabWriter::NARROW.format(&text))?)
}

/// One row of `images check`.
struct CheckRow {
    status: String,
    size: String,
    complete: bool,
    unpacked: bool,
}

async fn check_row(client: &Client, image: &Image, snapshotter: &str) -> (CheckRow, Option<Error>) {
    let content = client.content();
    let host = Matcher::host();
    let target = Descriptor::from_core(&image.target);
    let mut failure = None;
    let mut row = CheckRow {
        status: "complete".into(),
        size: "-".into(),
        complete: true,
        unpacked: false,
    };
    match images::check(&content, &target, &host).await {
        Ok(found) => {
            let required: i64 = found.required.iter().map(|d| d.size).sum();
            let present: i64 = found.present.iter().map(|d| d.size).sum();
            if !found.missing.is_empty() {
                row.status = "incomplete".into();
                row.complete = false;
            }
            if found.available {
                row.status += &format!(" ({}/{})", found.present.len(), found.required.len());
                row.size = format!("{}/{}", bytes(present), bytes(required));
            } else {
                row.status = format!("unavailable ({}/?)", found.present.len());
                row.size = format!("{}/?", bytes(present));
                row.complete = false;
            }
        }
        Err(err) => {
            warn(format_args!("unable to check {}: {err}", image.name));
            row.status = "error".into();
            row.complete = false;
            failure = Some(err.context(format!("unable to check {}", image.name)));
        }
    }
    match unpacked(client, &target, snapshotter).await {
        Ok(unpacked) => row.unpacked = unpacked,
        Err(err) => {
            warn(format_args!(
                "unable to check unpack for {}: {err}",
                image.name
            ));
            failure
                .get_or_insert(err.context(format!("unable to check unpack for {}", image.name)));
        }
    }
    (row, failure)
}

/// Whether the image's top snapshot (its chain ID) exists; a daemon with
/// no snapshots service has unpacked nothing.
async fn unpacked(
    client: &Client,
    target: &Descriptor,
    snapshotter: &str,
) -> berth_client::Result<bool> {
    let diff_ids = images::diff_ids(&client.content(), target, &Matcher::host()).await?;
    let Some(chain) = images::chain_id(&diff_ids) else {
        return Ok(false);
    };
    match client.snapshots().stat(snapshotter, chain.as_str()).await {
        Ok(_) => Ok(true),
        Err(err) if matches!(err.kind(), ErrorKind::NotFound | ErrorKind::NotImplemented) => {
            Ok(false)
        }
        Err(err) => Err(err),
    }
}

async fn check(
    client: &Client,
    quiet: bool,
    snapshotter: &str,
    filters: &[String],
) -> anyhow::Result<()> {
    let list = client.images().list(filters).await?;
    let mut text = String::from("REF\tTYPE\tDIGEST\tSTATUS\tSIZE\tUNPACKED\t\n");
    let mut quiet_text = String::new();
    let mut first_error = None;
    for image in &list {
        let (row, err) = check_row(client, image, snapshotter).await;
        if let Some(err) = err {
            first_error.get_or_insert(err);
        }
        if quiet {
            if row.complete && row.unpacked {
                quiet_text += &format!("{}\n", image.name);
            }
            continue;
        }
        text += &format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            image.name,
            image.target.media_type,
            image.target.digest,
            row.status,
            row.size,
            row.unpacked
        );
    }
    if quiet {
        print(&quiet_text)?;
    } else {
        print(&TabWriter::NARROW.format(&text))?;
    }
    match first_error {
        Some(_) => Err(Reported.into()),
        None => Ok(()),
    }
}

/// Deletes images, printing each name; a missing one is a warning, as in
/// ctr. With `--sync`, the last deletion waits for garbage collection.
async fn delete(client: &Client, sync: bool, names: &[String]) -> anyhow::Result<()> {
    let service = client.images();
    let mut failed = false;
    for (i, name) in names.iter().enumerate() {
        let last = i + 1 == names.len();
        match service.delete(name, sync && last).await {
            Ok(()) => print(&format!("{name}\n"))?,
            Err(err) if err.kind() == ErrorKind::NotFound => {
                warn(format_args!("{name}: image not found"));
            }
            Err(err) => {
                warn(format_args!("unable to delete {name}: {err}"));
                failed = true;
            }
        }
    }
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}

/// Creates each target name for the source's target (under a lease, as
/// ctr does), replacing existing names only with `--force`.
async fn tag(client: &Client, force: bool, source: &str, targets: &[String]) -> anyhow::Result<()> {
    let (leased, lease) = client.with_new_lease(IMPORT_LEASE).await?;
    let result = tag_all(&leased, force, source, targets).await;
    let done = client.leases().delete(&lease, false).await;
    result?;
    done?;
    Ok(())
}

async fn tag_all(
    client: &Client,
    force: bool,
    source: &str,
    targets: &[String],
) -> anyhow::Result<()> {
    let service = client.images();
    let mut image = service.get(source).await?;
    for target in targets {
        image.name = target.clone();
        match service.create(image.clone()).await {
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::AlreadyExists && force => {
                service.delete(target, false).await?;
                service.create(image.clone()).await?;
            }
            Err(err) => return Err(err.into()),
        }
        print(&format!("{target}\n"))?;
    }
    Ok(())
}

/// The import options ctr derives from its flags.
fn import_options(args: &ImportArgs) -> anyhow::Result<ImportOptions> {
    let (prefix, ref_translator) = match &args.base_name {
        Some(base) => (base.clone(), RefTranslator::FilterPrefix(base.clone())),
        None => {
            let prefix = format!("import-{}", gotime::today());
            (prefix.clone(), RefTranslator::AddPrefix(prefix))
        }
    };
    if args.skip_digest_for_named && !args.digests {
        anyhow::bail!("--skip-digest-for-named must be specified with --digests option");
    }
    let platforms = if args.all_platforms {
        Matcher::all()
    } else if let Some(p) = &args.platform {
        Matcher::only_strict(&platforms::parse(p)?)
    } else {
        Matcher::host()
    };
    Ok(ImportOptions {
        index_name: args.index_name.clone().filter(|n| !n.is_empty()),
        ref_translator,
        digest_prefix: args.digests.then_some(prefix),
        skip_digest_for_named: args.skip_digest_for_named,
        platforms,
    })
}

async fn import(client: &Client, args: ImportArgs) -> anyhow::Result<()> {
    if args.compress_blobs {
        anyhow::bail!("--compress-blobs is not supported yet");
    }
    let options = import_options(&args)?;
    let input: Box<dyn AsyncRead + Unpin + Send> = if args.input == "-" {
        Box::new(tokio::io::stdin())
    } else {
        let file = tokio::fs::File::open(&args.input)
            .await
            .map_err(|err| anyhow::anyhow!("open {}: {err}", args.input))?;
        Box::new(file)
    };
    let reader = BufReader::with_capacity(1 << 20, input);
    let (leased, lease) = client.with_new_lease(IMPORT_LEASE).await?;
    let result = archive::import(&leased.content(), &leased.images(), reader, &options).await;
    let done = client.leases().delete(&lease, false).await;
    let imported = result?;
    done?;
    if !args.no_unpack {
        unpack_imported(client, &imported, &args).await?;
    }
    Ok(())
}

async fn export(client: &Client, args: ExportArgs) -> anyhow::Result<()> {
    let mut options = ExportOptions {
        all_platforms: args.all_platforms,
        skip_docker_manifest: args.skip_manifest_json,
        skip_non_distributable: args.skip_non_distributable,
        ..ExportOptions::default()
    };
    if !args.platform.is_empty() {
        let mut list = Vec::new();
        for p in &args.platform {
            let parsed =
                platforms::parse(p).map_err(|e| e.context(format!("invalid platform {p:?}")))?;
            list.push(platforms::normalize(&parsed));
        }
        options.platforms = Matcher::Ordered(list);
    }
    let service = client.images();
    let mut targets = Vec::with_capacity(args.names.len());
    for name in &args.names {
        targets.push(archive::image_target(&service.get(name).await?));
    }
    let content = client.content();
    if args.output == "-" {
        let out = BufWriter::with_capacity(1 << 20, tokio::io::stdout());
        return Ok(write_export(&content, &targets, out, &options).await?);
    }
    let file = tokio::fs::File::create(&args.output)
        .await
        .map_err(|err| anyhow::anyhow!("create {}: {err}", args.output))?;
    let result = write_export(
        &content,
        &targets,
        BufWriter::with_capacity(1 << 20, file),
        &options,
    )
    .await;
    if result.is_err() {
        // Leave no truncated archive behind.
        let _ = tokio::fs::remove_file(&args.output).await;
    }
    Ok(result?)
}

async fn write_export(
    content: &dyn ContentStore,
    targets: &[Descriptor],
    writer: impl AsyncWrite + Unpin,
    options: &ExportOptions,
) -> berth_client::Result<()> {
    archive::export(content, targets, writer, options).await
}

/// Unpacks what an import created, as ctr does after importing.
async fn unpack_imported(
    client: &Client,
    imported: &[Image],
    args: &ImportArgs,
) -> anyhow::Result<()> {
    let matcher = unpack_matcher(args.platform.as_deref())?;
    for image in imported {
        print(&format!(
            "unpacking {} ({})...",
            image.name, image.target.digest
        ))?;
        unpack_image(client, &image.name, &args.snapshotter, &matcher).await?;
        print("done\n")?;
    }
    Ok(())
}

/// `images unpack` options.
#[derive(Debug, clap::Args)]
struct UnpackArgs {
    /// Snapshotter to unpack into
    #[arg(long, env = "CONTAINERD_SNAPSHOTTER", default_value = "overlayfs")]
    snapshotter: String,
    /// Unpack the manifest for this platform (default: the host's)
    #[arg(long)]
    platform: Option<String>,
    /// The image
    name: String,
}

/// `images mount` options, as ctr's.
#[derive(Debug, clap::Args)]
struct MountArgs {
    /// Snapshotter to unpack into and mount from
    #[arg(long, env = "CONTAINERD_SNAPSHOTTER", default_value = "overlayfs")]
    snapshotter: String,
    /// Mount a writable (active) snapshot instead of a read-only view
    #[arg(long)]
    rw: bool,
    /// Mount the image for this platform (default: the host's)
    #[arg(long)]
    platform: Option<String>,
    /// The image
    name: String,
    /// Where to mount it; also the snapshot's key and its lease's id
    target: String,
}

/// `images unmount` options, as ctr's.
#[derive(Debug, clap::Args)]
struct UnmountArgs {
    /// Snapshotter the mount came from
    #[arg(long, env = "CONTAINERD_SNAPSHOTTER", default_value = "overlayfs")]
    snapshotter: String,
    /// Remove the snapshot (and its lease) after a successful unmount
    #[arg(long)]
    rm: bool,
    /// The mount point
    target: String,
}

/// The platform matcher for a `--platform` flag (none: the host).
fn unpack_matcher(platform: Option<&str>) -> anyhow::Result<Matcher> {
    Ok(match platform {
        Some(p) => Matcher::only(&platforms::parse(p)?),
        None => Matcher::host(),
    })
}

/// Unpacks `target` into `snapshotter` through the daemon's snapshots and
/// diff services, as containerd's client-side `image.Unpack` does.
async fn unpack_target(
    client: &Client,
    target: &Descriptor,
    snapshotter: &str,
    matcher: &Matcher,
) -> berth_client::Result<Unpacked> {
    let content = client.content();
    let snapshots = client.snapshotter(snapshotter);
    let diff = client.diff();
    let unpacker = Unpacker {
        content: &content,
        snapshotter: &snapshots,
        snapshotter_name: snapshotter,
        applier: &diff,
    };
    unpacker.unpack(target, matcher).await
}

/// Unpacks image `name` under a lease that lives for the unpack (a day at
/// most, should berth die), as ctr's `WithLease` does.
async fn unpack_image(
    client: &Client,
    name: &str,
    snapshotter: &str,
    matcher: &Matcher,
) -> anyhow::Result<Unpacked> {
    let image = client.images().get(name).await?;
    let target = archive::image_target(&image);
    let (leased, lease) = client.with_new_lease(IMPORT_LEASE).await?;
    let result = unpack_target(&leased, &target, snapshotter, matcher).await;
    let done = client.leases().delete(&lease, false).await;
    let unpacked = result.map_err(|e| e.context(format!("unpack {name}")))?;
    done?;
    Ok(unpacked)
}

async fn unpack(client: &Client, args: UnpackArgs) -> anyhow::Result<()> {
    let matcher = unpack_matcher(args.platform.as_deref())?;
    let image = client.images().get(&args.name).await?;
    print(&format!(
        "unpacking {} ({})...",
        image.name, image.target.digest
    ))?;
    unpack_image(client, &args.name, &args.snapshotter, &matcher).await?;
    print("done\n")?;
    Ok(())
}

/// `images mount`, as ctr 1.6 does it: a lease named after the target
/// (a day, referencing the snapshot), the image unpacked if needed, a
/// view (or, with `--rw`, an active snapshot) keyed by the target on the
/// image's top chain ID, mounted on the target.
async fn mount(client: &Client, args: MountArgs) -> anyhow::Result<()> {
    let matcher = unpack_matcher(args.platform.as_deref())?;
    let mut labels = HashMap::new();
    labels.insert(
        format!("{SNAPSHOT_GC_REF_PREFIX}{}", args.snapshotter),
        args.target.clone(),
    );
    labels.insert(
        EXPIRE_LABEL.to_string(),
        expiry(std::time::SystemTime::now() + IMPORT_LEASE),
    );
    match client.leases().create(&args.target, labels).await {
        Err(err) if err.kind() != ErrorKind::AlreadyExists => return Err(err.into()),
        _ => {}
    }
    let leased = client.with_lease(Some(args.target.clone()));
    let result = mount_leased(&leased, &args, &matcher).await;
    if result.is_err() {
        let _ = client.leases().delete(&args.target, false).await;
    }
    result?;
    print(&format!("{}\n", args.target))?;
    Ok(())
}

async fn mount_leased(client: &Client, args: &MountArgs, matcher: &Matcher) -> anyhow::Result<()> {
    let image = client.images().get(&args.name).await?;
    let target = archive::image_target(&image);
    let unpacked = unpack_target(client, &target, &args.snapshotter, matcher).await?;
    let snapshots = client.snapshotter(args.snapshotter.as_str());
    let parent = unpacked.chain_id.to_string();
    let created = if args.rw {
        snapshots
            .prepare(&args.target, &parent, HashMap::new())
            .await
    } else {
        snapshots.view(&args.target, &parent, HashMap::new()).await
    };
    let mounts = match created {
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {
            snapshots.mounts(&args.target).await?
        }
        other => other?,
    };
    let dir = std::path::PathBuf::from(&args.target);
    let mounted = tokio::task::spawn_blocking(move || mount::mount_all(&mounts, &dir)).await?;
    if let Err(err) = mounted {
        if let Err(cleanup) = snapshots.remove(&args.target).await {
            if cleanup.kind() != ErrorKind::NotFound {
                return Err(err
                    .context(format!("(and removing snapshot failed: {cleanup})"))
                    .into());
            }
        }
        return Err(err.into());
    }
    Ok(())
}

/// `images unmount`: unmounts everything on the target; with `--rm` its
/// lease and snapshot go too.
async fn unmount(client: &Client, args: UnmountArgs) -> anyhow::Result<()> {
    let dir = std::path::PathBuf::from(&args.target);
    tokio::task::spawn_blocking(move || unmount_all(&dir)).await??;
    if args.rm {
        match client.leases().delete(&args.target, false).await {
            Err(err) if err.kind() != ErrorKind::NotFound => {
                return Err(anyhow::anyhow!("error deleting lease: {err}"))
            }
            _ => {}
        }
        match client
            .snapshotter(args.snapshotter.as_str())
            .remove(&args.target)
            .await
        {
            Err(err) if err.kind() != ErrorKind::NotFound => {
                return Err(anyhow::anyhow!("error removing snapshot: {err}"))
            }
            _ => {}
        }
    }
    print(&format!("{}\n", args.target))?;
    Ok(())
}

/// Unmounts `dir` until nothing is mounted there (containerd's
/// `UnmountAll`: an image's mount may be stacked); not mounted is fine.
fn unmount_all(dir: &std::path::Path) -> berth_client::Result<()> {
    while is_mount_point(dir) {
        mount::unmount(dir)?;
    }
    Ok(())
}

/// Whether `dir` is a mount point (listed in this process's mountinfo).
fn is_mount_point(dir: &std::path::Path) -> bool {
    let Ok(dir) = dir.canonicalize() else {
        return false;
    };
    let wanted = dir.to_string_lossy().replace(' ', "\\040");
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|info| {
            info.lines()
                .any(|l| l.split(' ').nth(4) == Some(wanted.as_str()))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(base: Option<&str>, digests: bool) -> ImportArgs {
        ImportArgs {
            base_name: base.map(String::from),
            digests,
            skip_digest_for_named: false,
            index_name: Some(String::new()),
            all_platforms: false,
            platform: None,
            no_unpack: true,
            compress_blobs: false,
            snapshotter: "overlayfs".into(),
            input: "x.tar".into(),
        }
    }

    #[test]
    fn import_flags_map_to_ctr_options() {
        let opts = import_options(&args(None, true)).expect("options");
        let prefix = format!("import-{}", gotime::today());
        assert_eq!(
            opts.ref_translator,
            RefTranslator::AddPrefix(prefix.clone())
        );
        assert_eq!(opts.digest_prefix, Some(prefix));
        assert_eq!(opts.index_name, None);
        let opts = import_options(&args(Some("foo/bar"), false)).expect("options");
        assert_eq!(
            opts.ref_translator,
            RefTranslator::FilterPrefix("foo/bar".into())
        );
        let mut bad = args(None, false);
        bad.skip_digest_for_named = true;
        assert!(import_options(&bad).is_err());
        let mut arm = args(None, false);
        arm.platform = Some("linux/arm64".into());
        let opts = import_options(&arm).expect("options");
        assert!(!opts
            .platforms
            .matches(&platforms::parse("linux/amd64").expect("p")));
    }
}
