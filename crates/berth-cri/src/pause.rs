//! berth's built-in pause image: a tiny static pause program, built with
//! the crate and imported into the content store as an image of its own,
//! so that pods start where the configured sandbox image cannot be pulled.

use crate::image::Image;
use crate::Cri;
use berth_core::{Error, Result};

/// The name the built-in pause image is imported under.
pub const BUILTIN_PAUSE_IMAGE: &str = "localhost/berth/pause:builtin";

impl Cri {
    /// The built-in pause image, imported (and pinned) if it is not there
    /// yet.
    pub(crate) async fn builtin_pause_image(&self) -> Result<Image> {
        Err(Error::not_implemented("the built-in pause image"))
    }
}
