"""vrexp: fine-grained, multi-dimensional, interpretable preference rewards for image and video
generation (a reimplementation of VisionReward, arXiv 2412.21059)."""

__version__ = "0.1.0"
