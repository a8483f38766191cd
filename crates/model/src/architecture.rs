//! The one list of architectures a config can name, and how each is built.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{CifarResNetConfig, Network, TutorialCnnConfig};

/// An architecture and its widths, as written in a config's `[model]` table:
/// `name = "tutorial_cnn"` or `name = "cifar_resnet"` plus that architecture's own keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Architecture {
    TutorialCnn(TutorialCnnConfig),
    CifarResnet(CifarResNetConfig),
}

/// Everything needed to rebuild a model before loading its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub architecture: Architecture,
    pub num_classes: usize,
    /// Input channels (3 for RGB).
    pub channels: usize,
    /// Input `[height, width]`.
    pub image_size: [usize; 2],
}

impl ModelSpec {
    /// Rejects specs that cannot be built, with a message that says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.num_classes < 2 {
            return Err(format!(
                "a classifier needs at least 2 classes, got {}",
                self.num_classes
            ));
        }
        if self.channels == 0 {
            return Err("images need at least one channel".into());
        }
        match &self.architecture {
            Architecture::TutorialCnn(cfg) => {
                let min = cfg.min_side();
                if self.image_size.iter().any(|&s| s < min) {
                    return Err(format!(
                        "tutorial_cnn with kernels {:?} needs images of at least {min}×{min}, got {:?}",
                        cfg.kernel_sizes, self.image_size
                    ));
                }
                if cfg.kernel_sizes.contains(&0)
                    || cfg.conv_channels.contains(&0)
                    || cfg.hidden.contains(&0)
                {
                    return Err(
                        "tutorial_cnn kernel sizes, channels and hidden sizes must be positive"
                            .into(),
                    );
                }
            }
            Architecture::CifarResnet(cfg) => {
                if cfg.blocks_per_stage().is_none() {
                    return Err(format!(
                        "cifar_resnet depth must be 6n + 2 (20, 32, 44, 56, 110), got {}",
                        cfg.depth
                    ));
                }
                if cfg.width == 0 || cfg.width % 2 != 0 {
                    return Err(format!(
                        "cifar_resnet width must be even and positive, got {}",
                        cfg.width
                    ));
                }
            }
        }
        Ok(())
    }

    /// Builds a freshly initialised model.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Network<B>, String> {
        self.validate()?;
        Ok(match &self.architecture {
            Architecture::TutorialCnn(cfg) => Network::TutorialCnn(cfg.init(
                self.channels,
                self.image_size,
                self.num_classes,
                device,
            )),
            Architecture::CifarResnet(cfg) => {
                Network::CifarResnet(cfg.init(self.channels, self.num_classes, device))
            }
        })
    }
}
