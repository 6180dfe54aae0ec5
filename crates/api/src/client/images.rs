//! The image routes: list, inspect, verify, build, import, pull, warm, remove, prune.

use hyper::Method;

use banger_system::progress::Progress;

use super::{Client, ClientError, encode};
use crate::types::*;

impl Client {
    pub async fn list_images(&self) -> Result<Vec<ImageView>, ClientError> {
        self.call(Method::GET, "/images", None::<&()>).await
    }

    pub async fn get_image(&self, name: &str) -> Result<ImageView, ClientError> {
        self.call(
            Method::GET,
            &format!("/images/{}", encode(name)),
            None::<&()>,
        )
        .await
    }

    /// Read every file of image `name` again and check it against its manifest.
    pub async fn verify_image(&self, name: &str) -> Result<ImageVerifyReport, ClientError> {
        self.call(
            Method::POST,
            &format!("/images/{}/verify", encode(name)),
            None::<&()>,
        )
        .await
    }

    pub async fn build_image(
        &self,
        req: &BuildImageRequest,
        progress: &dyn Progress,
    ) -> Result<ImageView, ClientError> {
        self.call_with_progress(Method::POST, "/images/build", Some(req), progress)
            .await
    }

    pub async fn import_image(
        &self,
        req: &ImportImageRequest,
        progress: &dyn Progress,
    ) -> Result<ImageView, ClientError> {
        self.call_with_progress(Method::POST, "/images/import", Some(req), progress)
            .await
    }

    pub async fn pull_image(
        &self,
        req: &PullImageRequest,
        progress: &dyn Progress,
    ) -> Result<ImageView, ClientError> {
        self.call_with_progress(Method::POST, "/images/pull", Some(req), progress)
            .await
    }

    pub async fn import_kernel(
        &self,
        req: &ImportKernelRequest,
        progress: &dyn Progress,
    ) -> Result<ImageView, ClientError> {
        self.call_with_progress(Method::POST, "/images/import-kernel", Some(req), progress)
            .await
    }

    /// Boot image `name` once and keep the agent-ready guest as its warm state; the image.
    pub async fn warm_image(
        &self,
        name: &str,
        progress: &dyn Progress,
    ) -> Result<ImageView, ClientError> {
        self.call_with_progress(
            Method::POST,
            &format!("/images/{}/warm", encode(name)),
            None::<&()>,
            progress,
        )
        .await
    }

    pub async fn remove_image(&self, name: &str) -> Result<ImageView, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/images/{}", encode(name)),
            None::<&()>,
        )
        .await
    }

    /// Reclaim disk space (or, with `dry_run`, say how much would be reclaimed).
    pub async fn prune_images(&self, req: &PruneImagesRequest) -> Result<PruneReport, ClientError> {
        self.call(Method::POST, "/images/prune", Some(req)).await
    }
}
