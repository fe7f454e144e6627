//! A CRI client for `scripts/bench-cri.sh`: starts pods (a sandbox plus
//! one container running `sleep`) on a CRI socket the way the kubelet
//! does, and reports how long each took; containerd and berthd are
//! measured with the same client.
//!
//! ```text
//! cri_bench ADDRESS start N IMAGE PREFIX   # prints one latency (ns) per pod
//! cri_bench ADDRESS phases N IMAGE PREFIX  # per pod: run, create, start (ns)
//! cri_bench ADDRESS clean PREFIX           # stops and removes PREFIX's pods
//! ```

use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use std::path::Path;
use std::time::Instant;
use tonic::transport::Channel;

type Error = Box<dyn std::error::Error>;

fn pod_config(prefix: &str, i: usize) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: format!("{prefix}-{i}"),
            uid: format!("{prefix}-uid-{i}"),
            namespace: "bench".into(),
            attempt: 0,
        }),
        hostname: format!("{prefix}-{i}"),
        log_directory: std::env::temp_dir()
            .join(format!("{prefix}-logs-{i}"))
            .display()
            .to_string(),
        linux: Some(LinuxPodSandboxConfig::default()),
        ..Default::default()
    }
}

/// Starts one pod; returns how long RunPodSandbox, CreateContainer and
/// StartContainer took.
async fn start_pod(
    runtime: &mut RuntimeServiceClient<Channel>,
    image: &str,
    prefix: &str,
    i: usize,
) -> Result<[u128; 3], Error> {
    let config = pod_config(prefix, i);
    let t0 = Instant::now();
    let pod = runtime
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await?
        .into_inner()
        .pod_sandbox_id;
    let t1 = Instant::now();
    let container = runtime
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod,
            config: Some(ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: "sleep".into(),
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                command: vec!["/bin/sleep".into(), "3600".into()],
                log_path: "sleep.log".into(),
                linux: Some(LinuxContainerConfig::default()),
                ..Default::default()
            }),
            sandbox_config: Some(config),
        })
        .await?
        .into_inner()
        .container_id;
    let t2 = Instant::now();
    runtime
        .start_container(StartContainerRequest {
            container_id: container,
        })
        .await?;
    let t3 = Instant::now();
    Ok([t1 - t0, t2 - t1, t3 - t2].map(|d| d.as_nanos()))
}

async fn clean(runtime: &mut RuntimeServiceClient<Channel>, prefix: &str) -> Result<(), Error> {
    let pods = runtime
        .list_pod_sandbox(ListPodSandboxRequest { filter: None })
        .await?
        .into_inner()
        .items;
    for pod in pods {
        let ours = pod
            .metadata
            .as_ref()
            .is_some_and(|m| m.name.starts_with(&format!("{prefix}-")));
        if !ours {
            continue;
        }
        runtime
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod.id.clone(),
            })
            .await?;
        runtime
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: pod.id,
            })
            .await?;
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: cri_bench ADDRESS ((start|phases) N IMAGE PREFIX | clean PREFIX)";
    let address = args.get(1).ok_or(usage)?;
    let channel = berth_testkit::connect(Path::new(address)).await?;
    let mut runtime = RuntimeServiceClient::new(channel.clone());
    match args.get(2).map(String::as_str) {
        Some(mode @ ("start" | "phases")) => {
            let n: usize = args.get(3).ok_or(usage)?.parse()?;
            let image = args.get(4).ok_or(usage)?;
            let prefix = args.get(5).ok_or(usage)?;
            // The image is local (imported by the script): check, do not pull.
            let status = ImageServiceClient::new(channel)
                .image_status(ImageStatusRequest {
                    image: Some(ImageSpec {
                        image: image.clone(),
                        ..Default::default()
                    }),
                    verbose: false,
                })
                .await?
                .into_inner();
            if status.image.is_none() {
                return Err(format!("image {image} is not there").into());
            }
            for i in 0..n {
                let [run, create, start] = start_pod(&mut runtime, image, prefix, i).await?;
                if mode == "phases" {
                    println!("{run} {create} {start}");
                } else {
                    println!("{}", run + create + start);
                }
            }
        }
        Some("clean") => clean(&mut runtime, args.get(3).ok_or(usage)?).await?,
        _ => return Err(usage.into()),
    }
    Ok(())
}
