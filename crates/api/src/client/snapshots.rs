//! The snapshot routes (taking one is a VM route, `Client::snapshot_vm`).

use hyper::Method;

use super::{Client, ClientError, encode};

impl Client {
    pub async fn list_snapshots(&self) -> Result<Vec<crate::SnapshotView>, ClientError> {
        self.call(Method::GET, "/snapshots", None::<&()>).await
    }

    pub async fn get_snapshot(&self, name: &str) -> Result<crate::SnapshotView, ClientError> {
        self.call(
            Method::GET,
            &format!("/snapshots/{}", encode(name)),
            None::<&()>,
        )
        .await
    }

    pub async fn remove_snapshot(&self, name: &str) -> Result<crate::SnapshotView, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/snapshots/{}", encode(name)),
            None::<&()>,
        )
        .await
    }
}
