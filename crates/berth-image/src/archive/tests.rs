//! Import and export against in-memory stores, with archives built here.

use std::collections::BTreeMap;

use berth_core::images::ImageStore;
use berth_core::{Digest, ErrorKind};

use super::*;
use crate::mediatypes;
use crate::platforms::{Matcher, Platform};
use crate::spec::{json, Descriptor, DockerArchiveEntry, Index, Manifest, ANNOTATION_REF_NAME};
use crate::tar::{EntryKind, Header, TarWriter};
use crate::testing::{MemContent, MemImages};

/// A one-layer image's blobs: (layer, config, manifest) bytes.
struct TestImage {
    layer: Vec<u8>,
    config: Vec<u8>,
    manifest: Vec<u8>,
}

impl TestImage {
    async fn new(arch: &str, text: &str) -> TestImage {
        let mut layer = TarWriter::new(Vec::new());
        layer
            .append(
                &Header::file("hello", 0o644, text.len() as u64),
                text.as_bytes(),
            )
            .await
            .expect("layer");
        let layer = layer.finish().await.expect("layer");
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            Digest::sha256_of(&layer)
        )
        .into_bytes();
        let manifest = Manifest {
            schema_version: 2,
            media_type: mediatypes::OCI_MANIFEST.into(),
            config: desc(mediatypes::OCI_CONFIG, &config),
            layers: vec![desc(mediatypes::OCI_LAYER, &layer)],
            annotations: BTreeMap::new(),
        };
        let manifest = json::to_vec(&manifest).expect("manifest");
        TestImage {
            layer,
            config,
            manifest,
        }
    }

    fn manifest_desc(&self, arch: &str) -> Descriptor {
        let mut d = desc(mediatypes::OCI_MANIFEST, &self.manifest);
        d.platform = Some(Platform {
            architecture: arch.into(),
            os: "linux".into(),
            ..Platform::default()
        });
        d
    }

    fn blobs(&self) -> Vec<&[u8]> {
        vec![&self.layer, &self.config, &self.manifest]
    }
}

fn desc(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor::new(media_type, Digest::sha256_of(bytes), bytes.len() as i64)
}

fn blob_name(bytes: &[u8]) -> String {
    format!("blobs/sha256/{}", Digest::sha256_of(bytes).encoded())
}

async fn tar(members: Vec<(Header, Vec<u8>)>) -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new());
    for (h, body) in members {
        w.append(&h, &body).await.expect("append");
    }
    w.finish().await.expect("finish")
}

/// An OCI layout archive of `images` with the given index entries.
async fn oci_archive(images: &[&TestImage], manifests: Vec<Descriptor>) -> Vec<u8> {
    let index = Index {
        schema_version: 2,
        manifests,
        ..Index::default()
    };
    let mut members = vec![
        (
            Header::file("oci-layout", 0o644, 30),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        file("index.json", json::to_vec(&index).expect("index")),
    ];
    for image in images {
        for blob in image.blobs() {
            members.push(file(&blob_name(blob), blob.to_vec()));
        }
    }
    tar(members).await
}

fn file(name: &str, body: Vec<u8>) -> (Header, Vec<u8>) {
    (Header::file(name, 0o644, body.len() as u64), body)
}

fn named(mut d: Descriptor, ref_name: &str) -> Descriptor {
    d.annotations
        .insert(ANNOTATION_REF_NAME.into(), ref_name.into());
    d
}

fn options() -> ImportOptions {
    ImportOptions {
        platforms: Matcher::only_strict(&crate::platforms::parse("linux/amd64").expect("platform")),
        ..ImportOptions::default()
    }
}

#[tokio::test]
async fn oci_import_names_images_and_labels_content() {
    let img = TestImage::new("amd64", "hi").await;
    let archive = oci_archive(&[&img], vec![named(img.manifest_desc("amd64"), "latest")]).await;
    let (content, images) = (MemContent::default(), MemImages::default());
    let opts = ImportOptions {
        ref_translator: RefTranslator::AddPrefix("import-2024-01-02".into()),
        digest_prefix: Some("import-2024-01-02".into()),
        index_name: Some("my-index".into()),
        ..options()
    };
    let created = import(&content, &images, archive.as_slice(), &opts)
        .await
        .expect("import");
    let names: Vec<&str> = created.iter().map(|i| i.name.as_str()).collect();
    let manifest_digest = Digest::sha256_of(&img.manifest);
    assert_eq!(
        names,
        [
            "my-index".to_string(),
            "import-2024-01-02:latest".to_string(),
            format!("import-2024-01-02@{manifest_digest}"),
        ]
    );
    assert_eq!(created[1].target.digest, manifest_digest);
    assert_eq!(created[1].target.media_type, mediatypes::OCI_MANIFEST);

    // index → manifest, manifest → config and layer.
    let index_digest = created[0].target.digest.clone();
    let labels = content.labels(&index_digest);
    assert_eq!(
        labels.get("containerd.io/gc.ref.content.m.0"),
        Some(&manifest_digest.to_string())
    );
    let labels = content.labels(&manifest_digest);
    assert_eq!(
        labels.get("containerd.io/gc.ref.content.config"),
        Some(&Digest::sha256_of(&img.config).to_string())
    );
    assert_eq!(
        labels.get("containerd.io/gc.ref.content.l.0"),
        Some(&Digest::sha256_of(&img.layer).to_string())
    );
    assert_eq!(content.ingest_count(), 0);
}

#[tokio::test]
async fn base_name_filters_foreign_references() {
    let img = TestImage::new("amd64", "hi").await;
    let archive = oci_archive(
        &[&img],
        vec![
            named(img.manifest_desc("amd64"), "v1"),
            named(img.manifest_desc("amd64"), "other.io/x:1"),
        ],
    )
    .await;
    let (content, images) = (MemContent::default(), MemImages::default());
    let opts = ImportOptions {
        ref_translator: RefTranslator::FilterPrefix("foo/bar".into()),
        ..options()
    };
    import(&content, &images, archive.as_slice(), &opts)
        .await
        .expect("import");
    assert_eq!(images.names(), ["foo/bar:v1"]);
}

#[tokio::test]
async fn platform_selection_labels_only_matching_manifests() {
    let amd = TestImage::new("amd64", "amd").await;
    let arm = TestImage::new("arm64", "arm").await;
    let manifests = vec![
        named(amd.manifest_desc("amd64"), "docker.io/library/x:amd"),
        named(arm.manifest_desc("arm64"), "docker.io/library/x:arm"),
    ];
    let archive = oci_archive(&[&amd, &arm], manifests).await;
    let (content, images) = (MemContent::default(), MemImages::default());
    import(&content, &images, archive.as_slice(), &options())
        .await
        .expect("import");
    // Both get image records (containerd names every manifest) ...
    assert_eq!(
        images.names(),
        ["docker.io/library/x:amd", "docker.io/library/x:arm"]
    );
    // ... but only amd64 content is labelled.
    assert!(content
        .labels(&Digest::sha256_of(&amd.manifest))
        .contains_key("containerd.io/gc.ref.content.l.0"));
    assert!(content.labels(&Digest::sha256_of(&arm.manifest)).is_empty());

    let (content, images) = (MemContent::default(), MemImages::default());
    let all = ImportOptions {
        platforms: Matcher::all(),
        ..options()
    };
    import(&content, &images, archive.as_slice(), &all)
        .await
        .expect("import");
    assert!(content
        .labels(&Digest::sha256_of(&arm.manifest))
        .contains_key("containerd.io/gc.ref.content.l.0"));

    let riscv = ImportOptions {
        platforms: Matcher::only_strict(&crate::platforms::parse("linux/riscv64").expect("p")),
        ..options()
    };
    let err = import(
        &MemContent::default(),
        &MemImages::default(),
        archive.as_slice(),
        &riscv,
    )
    .await
    .expect_err("filtered out");
    assert_eq!(err.message(), "image might be filtered out");
}

#[tokio::test]
async fn export_reimport_reexport_is_byte_identical() {
    let img = TestImage::new("amd64", "round trip").await;
    let archive = oci_archive(&[&img], vec![named(img.manifest_desc("amd64"), "latest")]).await;
    let (content, images) = (MemContent::default(), MemImages::default());
    let opts = ImportOptions {
        ref_translator: RefTranslator::AddPrefix("docker.io/library/rt".into()),
        ..options()
    };
    import(&content, &images, archive.as_slice(), &opts)
        .await
        .expect("import");
    let image = images
        .get("docker.io/library/rt:latest")
        .await
        .expect("image");

    let export_opts = ExportOptions {
        platforms: opts.platforms.clone(),
        ..ExportOptions::default()
    };
    let mut first = Vec::new();
    export(&content, &[image_target(&image)], &mut first, &export_opts)
        .await
        .expect("export");

    let (content2, images2) = (MemContent::default(), MemImages::default());
    import(&content2, &images2, first.as_slice(), &options())
        .await
        .expect("re-import");
    let image2 = images2
        .get("docker.io/library/rt:latest")
        .await
        .expect("named by annotation");
    let mut second = Vec::new();
    export(
        &content2,
        &[image_target(&image2)],
        &mut second,
        &export_opts,
    )
    .await
    .expect("re-export");
    assert_eq!(first, second);

    // The archive holds what ctr's holds, sorted.
    let mut reader = crate::tar::TarReader::new(first.as_slice());
    let mut names = Vec::new();
    while let Some(h) = reader.next_header().await.expect("header") {
        names.push(h.name);
    }
    let mut blobs: Vec<String> = img.blobs().iter().map(|b| blob_name(b)).collect();
    blobs.sort();
    let mut want = vec!["blobs/".to_string(), "blobs/sha256/".to_string()];
    want.extend(blobs);
    want.extend(["index.json", "manifest.json", "oci-layout"].map(String::from));
    assert_eq!(names, want);
}

#[tokio::test]
async fn export_writes_docker_manifest_json() {
    let img = TestImage::new("amd64", "docker").await;
    let content = MemContent::default();
    for blob in img.blobs() {
        content.put(blob);
    }
    let image = berth_core::images::Image {
        name: "docker.io/library/busybox:latest".into(),
        labels: Default::default(),
        target: img.manifest_desc("amd64").to_core(),
        created_at: std::time::SystemTime::UNIX_EPOCH,
        updated_at: std::time::SystemTime::UNIX_EPOCH,
    };
    let mut out = Vec::new();
    export(
        &content,
        &[image_target(&image)],
        &mut out,
        &ExportOptions::default(),
    )
    .await
    .expect("export");
    let mut reader = crate::tar::TarReader::new(out.as_slice());
    let mut found = None;
    while let Some(h) = reader.next_header().await.expect("header") {
        if h.name == "manifest.json" {
            let mut body = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut reader.body(), &mut body)
                .await
                .expect("read");
            found = Some(body);
        }
    }
    let entries: Vec<DockerArchiveEntry> =
        serde_json::from_slice(&found.expect("manifest.json")).expect("json");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].repo_tags, ["busybox:latest"]);
    assert_eq!(entries[0].config, blob_name(&img.config));
    assert_eq!(entries[0].layers, [blob_name(&img.layer)]);
}

#[tokio::test]
async fn docker_archive_becomes_schema2_manifest_and_index() {
    let img = TestImage::new("amd64", "docker save").await;
    let manifest_json = br#"[{"Config":"abc.json","RepoTags":["busybox:latest","foo/bar:1"],"Layers":["l1/layer.tar","l2/layer.tar"]}]"#;
    let archive = tar(vec![
        file("abc.json", img.config.clone()),
        file("l1/layer.tar", img.layer.clone()),
        // Older `docker save` links a repeated layer to its first copy.
        (
            Header::symlink("l2/layer.tar", "../l1/layer.tar"),
            Vec::new(),
        ),
        file("manifest.json", manifest_json.to_vec()),
        file("repositories", br#"{"busybox":{"latest":"x"}}"#.to_vec()),
    ])
    .await;
    let (content, images) = (MemContent::default(), MemImages::default());
    let created = import(&content, &images, archive.as_slice(), &options())
        .await
        .expect("import");
    assert_eq!(
        images.names(),
        ["docker.io/foo/bar:1", "docker.io/library/busybox:latest"]
    );
    let target = &created[0].target;
    assert_eq!(target.media_type, mediatypes::DOCKER_MANIFEST);
    let layer = Digest::sha256_of(&img.layer);
    let expected = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{}\",\"config\":{{\"mediaType\":\"{}\",\"digest\":\"{}\",\"size\":{}}},\
         \"layers\":[{{\"mediaType\":\"{}\",\"digest\":\"{layer}\",\"size\":{}}},{{\"mediaType\":\"{}\",\"digest\":\"{layer}\",\"size\":{}}}]}}",
        mediatypes::DOCKER_MANIFEST,
        mediatypes::DOCKER_CONFIG,
        Digest::sha256_of(&img.config),
        img.config.len(),
        mediatypes::DOCKER_LAYER,
        img.layer.len(),
        mediatypes::DOCKER_LAYER,
        img.layer.len(),
    );
    assert_eq!(target.digest, Digest::sha256_of(expected.as_bytes()));
    assert_eq!(
        created[0]
            .target
            .annotations
            .get("org.opencontainers.image.ref.name")
            .map(String::as_str),
        Some("latest")
    );
}

async fn import_err(archive: Vec<u8>) -> berth_core::Error {
    import(
        &MemContent::default(),
        &MemImages::default(),
        archive.as_slice(),
        &options(),
    )
    .await
    .expect_err("must be refused")
}

#[tokio::test]
async fn malicious_archives_are_invalid_argument() {
    let evil = b"evil".to_vec();
    type Members = Vec<(Header, Vec<u8>)>;
    let cases: Vec<(&str, Members)> = vec![
        ("dot-dot", vec![file("../../etc/evil", evil.clone())]),
        (
            "nested dot-dot",
            vec![file("blobs/../../evil", evil.clone())],
        ),
        ("absolute", vec![file("/etc/evil", evil.clone())]),
        (
            "symlink escape",
            vec![(Header::symlink("blobs/x", "../../../etc/shadow"), vec![])],
        ),
        (
            "absolute symlink",
            vec![(Header::symlink("l", "/etc/shadow"), vec![])],
        ),
        (
            "hard link",
            vec![(
                {
                    let mut h = Header::symlink("h", "oci-layout");
                    h.kind = EntryKind::HardLink;
                    h
                },
                vec![],
            )],
        ),
    ];
    for (what, members) in cases {
        let err = import_err(tar(members).await).await;
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{what}: {err}");
        assert!(err.message().contains("archive member"), "{what}: {err}");
    }
}

#[tokio::test]
async fn blob_not_matching_its_name_is_refused() {
    let img = TestImage::new("amd64", "x").await;
    let wrong = format!(
        "blobs/sha256/{}",
        Digest::sha256_of(b"something else").encoded()
    );
    let archive = tar(vec![file(&wrong, img.config.clone())]).await;
    let content = MemContent::default();
    let err = import(
        &content,
        &MemImages::default(),
        archive.as_slice(),
        &options(),
    )
    .await
    .expect_err("digest mismatch");
    assert!(err.message().contains("failed to ingest"), "{err}");
    assert!(content.digests().is_empty());
    assert_eq!(content.ingest_count(), 0, "the failed ingest is aborted");
}

#[tokio::test]
async fn unknown_formats_and_layouts_are_refused() {
    let err = import_err(tar(vec![file("random", b"x".to_vec())]).await).await;
    assert_eq!(err.message(), "unrecognized image format");
    let err = import_err(
        tar(vec![file(
            "oci-layout",
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        )])
        .await,
    )
    .await;
    assert!(err.message().starts_with("missing index.json"), "{err}");
    let err = import_err(
        tar(vec![file(
            "oci-layout",
            br#"{"imageLayoutVersion":"2.0.0"}"#.to_vec(),
        )])
        .await,
    )
    .await;
    assert_eq!(err.message(), "unsupported OCI version 2.0.0");
}
