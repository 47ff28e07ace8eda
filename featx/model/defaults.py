"""Fine-tuning's defaults, chosen on ``benchmarks/quality.py`` (EfficientNet-Lite0, Fashion-MNIST,
100 images per class; docs/finetune.md has the figures and every recipe tried). A module of their own, so
the CLI shows them without importing scikit-learn or Keras at startup."""

DEFAULT_UNFREEZE = "all"  # backbone layers trained, from the top (BatchNormalization stays frozen)
DEFAULT_EPOCHS = 4  # at most; the epoch with the best validation accuracy is kept
DEFAULT_LEARNING_RATE = 1e-4  # Adam's peak: one epoch of warm-up, then a cosine decay
DEFAULT_LABEL_SMOOTHING = 0.1  # the loss never reaches zero on images the head already fits

DEFAULT_HEAD_RATE_FACTOR = 1.0  # the head's rate is this times the backbone's, unless given (10: -0.8 points)
DEFAULT_WISE = 1.0  # WiSE-FT: the share of the fine-tuned weights averaged with the start's (1: none)
