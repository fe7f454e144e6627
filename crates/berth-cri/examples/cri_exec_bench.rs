//! A CRI client for `scripts/bench-cri-exec.sh`: ExecSync latency and the
//! URLs of streaming execs, against whatever CRI socket it is given, so
//! containerd and berthd are measured with the same client.
//!
//! ```text
//! cri_exec_bench ADDRESS container POD       # the id of the first container of pod POD
//! cri_exec_bench ADDRESS execsync ID N       # N ExecSyncs of `true`: one latency (ns) per line
//! cri_exec_bench ADDRESS url ID CMD...       # an Exec URL for CMD (stdout and stderr, no stdin)
//! ```

use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use std::path::Path;
use std::time::Instant;

type Error = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: cri_exec_bench ADDRESS (container POD | execsync ID N | url ID CMD...)";
    let address = args.get(1).ok_or(usage)?;
    let channel = berth_testkit::connect(Path::new(address)).await?;
    let mut runtime = RuntimeServiceClient::new(channel);
    match (args.get(2).map(String::as_str), args.get(3)) {
        (Some("container"), Some(pod)) => {
            let pods = runtime
                .list_pod_sandbox(ListPodSandboxRequest { filter: None })
                .await?
                .into_inner()
                .items;
            let pod = pods
                .into_iter()
                .find(|p| p.metadata.as_ref().is_some_and(|m| &m.name == pod))
                .ok_or("no such pod")?;
            let containers = runtime
                .list_containers(ListContainersRequest {
                    filter: Some(ContainerFilter {
                        pod_sandbox_id: pod.id,
                        ..Default::default()
                    }),
                })
                .await?
                .into_inner()
                .containers;
            println!("{}", containers.first().ok_or("no container")?.id);
        }
        (Some("execsync"), Some(id)) => {
            let n: usize = args.get(4).ok_or(usage)?.parse()?;
            for _ in 0..n {
                let t = Instant::now();
                let reply = runtime
                    .exec_sync(ExecSyncRequest {
                        container_id: id.clone(),
                        cmd: vec!["true".into()],
                        timeout: 10,
                    })
                    .await?
                    .into_inner();
                if reply.exit_code != 0 {
                    return Err(format!("exec exited {}", reply.exit_code).into());
                }
                println!("{}", t.elapsed().as_nanos());
            }
        }
        (Some("url"), Some(id)) => {
            let url = runtime
                .exec(ExecRequest {
                    container_id: id.clone(),
                    cmd: args[4..].to_vec(),
                    tty: false,
                    stdin: false,
                    stdout: true,
                    stderr: true,
                })
                .await?
                .into_inner()
                .url;
            println!("{url}");
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
