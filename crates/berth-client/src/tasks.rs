//! `containerd.services.tasks.v1.Tasks`: the tasks service, call by call,
//! with containerd's own messages. [`crate::task`] builds the `Task` and
//! `Process` handles on it.

use berth_core::Result;

use crate::namespaces::expect;
use crate::pb::services::v1::tasks_client::TasksClient;
use crate::pb::services::v1::{
    CloseIoRequest, CreateTaskRequest, DeleteProcessRequest, DeleteResponse, DeleteTaskRequest,
    ExecProcessRequest, GetRequest, KillRequest, ListPidsRequest, ListTasksRequest, MetricsRequest,
    PauseTaskRequest, ResizePtyRequest, ResumeTaskRequest, StartRequest, UpdateTaskRequest,
    WaitRequest, WaitResponse,
};
use crate::pb::types::v1::{Process, ProcessInfo};
use crate::pb::types::Metric;
use crate::Client;

/// The tasks service, in the client's namespace; see [`Client::tasks`].
#[derive(Clone, Debug)]
pub struct Tasks {
    client: Client,
}

impl Client {
    /// The tasks service, in the client's namespace.
    pub fn tasks(&self) -> Tasks {
        Tasks {
            client: self.clone(),
        }
    }
}

impl Tasks {
    fn service(&self) -> TasksClient<tonic::transport::Channel> {
        TasksClient::new(self.client.channel())
    }

    /// Creates a task as `request` says; returns the init process's pid.
    pub async fn create(&self, request: CreateTaskRequest) -> Result<u32> {
        let request = self.client.request(request, true)?;
        let response = self.client.call(self.service().create(request)).await?;
        Ok(response.pid)
    }

    /// Starts the init process (`exec_id` empty) or an exec; returns its
    /// pid.
    pub async fn start(&self, container_id: &str, exec_id: &str) -> Result<u32> {
        let request = self.client.request(
            StartRequest {
                container_id: container_id.to_string(),
                exec_id: exec_id.to_string(),
            },
            true,
        )?;
        Ok(self.client.call(self.service().start(request)).await?.pid)
    }

    /// The init process of container `container_id`'s task; `NotFound` if
    /// the container has no task.
    pub async fn get(&self, container_id: &str) -> Result<Process> {
        self.get_process(container_id, "").await
    }

    /// The init process (`exec_id` empty) or an exec of a task.
    pub async fn get_process(&self, container_id: &str, exec_id: &str) -> Result<Process> {
        let request = self.client.request(
            GetRequest {
                container_id: container_id.to_string(),
                exec_id: exec_id.to_string(),
            },
            true,
        )?;
        let response = self.client.call(self.service().get(request)).await?;
        expect(response.process, "get task")
    }

    /// The init processes of the tasks matching `filter` (empty: all).
    pub async fn list(&self, filter: &str) -> Result<Vec<Process>> {
        let request = self.client.request(
            ListTasksRequest {
                filter: filter.to_string(),
            },
            true,
        )?;
        Ok(self.client.call(self.service().list(request)).await?.tasks)
    }

    /// Deletes container `container_id`'s task (it must not be running) and
    /// returns how its init process exited.
    pub async fn delete(&self, container_id: &str) -> Result<DeleteResponse> {
        let request = self.client.request(
            DeleteTaskRequest {
                container_id: container_id.to_string(),
            },
            true,
        )?;
        self.client.call(self.service().delete(request)).await
    }

    /// Deletes an exited exec process.
    pub async fn delete_process(
        &self,
        container_id: &str,
        exec_id: &str,
    ) -> Result<DeleteResponse> {
        let request = self.client.request(
            DeleteProcessRequest {
                container_id: container_id.to_string(),
                exec_id: exec_id.to_string(),
            },
            true,
        )?;
        self.client
            .call(self.service().delete_process(request))
            .await
    }

    /// Sends `signal` to a process; with `all`, to every process of the
    /// task.
    pub async fn kill(
        &self,
        container_id: &str,
        exec_id: &str,
        signal: u32,
        all: bool,
    ) -> Result<()> {
        let request = self.client.request(
            KillRequest {
                container_id: container_id.to_string(),
                exec_id: exec_id.to_string(),
                signal,
                all,
            },
            true,
        )?;
        self.client.call(self.service().kill(request)).await
    }

    /// Adds an exec process as `request` says (it does not start it).
    pub async fn exec(&self, request: ExecProcessRequest) -> Result<()> {
        let request = self.client.request(request, true)?;
        self.client.call(self.service().exec(request)).await?;
        Ok(())
    }

    /// Resizes a process's terminal.
    pub async fn resize_pty(
        &self,
        container_id: &str,
        exec_id: &str,
        width: u32,
        height: u32,
    ) -> Result<()> {
        let request = self.client.request(
            ResizePtyRequest {
                container_id: container_id.to_string(),
                exec_id: exec_id.to_string(),
                width,
                height,
            },
            true,
        )?;
        self.client.call(self.service().resize_pty(request)).await
    }

    /// Closes a process's stdin.
    pub async fn close_stdin(&self, container_id: &str, exec_id: &str) -> Result<()> {
        let request = self.client.request(
            CloseIoRequest {
                container_id: container_id.to_string(),
                exec_id: exec_id.to_string(),
                stdin: true,
            },
            true,
        )?;
        self.client.call(self.service().close_io(request)).await
    }

    /// Freezes every process of a task.
    pub async fn pause(&self, container_id: &str) -> Result<()> {
        let request = self.client.request(
            PauseTaskRequest {
                container_id: container_id.to_string(),
            },
            true,
        )?;
        self.client.call(self.service().pause(request)).await
    }

    /// Thaws a paused task.
    pub async fn resume(&self, container_id: &str) -> Result<()> {
        let request = self.client.request(
            ResumeTaskRequest {
                container_id: container_id.to_string(),
            },
            true,
        )?;
        self.client.call(self.service().resume(request)).await
    }

    /// Changes a running task's resources: `resources` is an `Any` of the
    /// OCI `LinuxResources` JSON (containerd's `Task.Update` with
    /// `WithResources`); the runtime's error comes back as it is.
    pub async fn update(&self, container_id: &str, resources: prost_types::Any) -> Result<()> {
        let request = self.client.request(
            UpdateTaskRequest {
                container_id: container_id.to_string(),
                resources: Some(resources),
                ..UpdateTaskRequest::default()
            },
            true,
        )?;
        self.client.call(self.service().update(request)).await
    }

    /// The processes running in a task.
    pub async fn pids(&self, container_id: &str) -> Result<Vec<ProcessInfo>> {
        let request = self.client.request(
            ListPidsRequest {
                container_id: container_id.to_string(),
            },
            true,
        )?;
        let response = self.client.call(self.service().list_pids(request)).await?;
        Ok(response.processes)
    }

    /// The cgroup metrics of the tasks matching `filters` (`id==x`).
    pub async fn metrics<S: AsRef<str>>(&self, filters: &[S]) -> Result<Vec<Metric>> {
        let request = self.client.request(
            MetricsRequest {
                filters: filters.iter().map(|f| f.as_ref().to_string()).collect(),
            },
            true,
        )?;
        Ok(self
            .client
            .call(self.service().metrics(request))
            .await?
            .metrics)
    }

    /// Waits for a process to exit, however long that takes (the client's
    /// timeout does not apply).
    pub async fn wait(&self, container_id: &str, exec_id: &str) -> Result<WaitResponse> {
        let client = self.client.with_timeout(None);
        let request = client.request(
            WaitRequest {
                container_id: container_id.to_string(),
                exec_id: exec_id.to_string(),
            },
            false,
        )?;
        client.call(self.service().wait(request)).await
    }
}
