"""Fine-tuning's defaults, chosen on ``benchmarks/quality.py`` (EfficientNet-Lite0, Fashion-MNIST,
100 images per class; docs/finetune.md has the figures and every recipe tried). A module of their own, so
the CLI shows them without importing scikit-learn or Keras at startup."""

DEFAULT_UNFREEZE = "all"  # backbone layers trained, from the top (BatchNormalization stays frozen)
DEFAULT_EPOCHS = 8  # the whole cosine runs and its last epoch is kept (the best on validation: up to 2 points worse)
# (12 epochs, same peak rate: +1.9 ± 0.5 points over 5 draws against 8's +1.8 ± 0.6, the same within noise)
DEFAULT_LEARNING_RATE = 3e-4  # Adam's peak: one epoch of warm-up, then a cosine decay
DEFAULT_PATIENCE = None  # no early stopping: epochs 1-3 of the cosine, at a high rate, often win on
# 200 noisy validation images and then lose on test (3e-4, 8 epochs, patience 3: -0.3 ± 2.1 points)
DEFAULT_LABEL_SMOOTHING = 0.1  # the loss never reaches zero on images the head already fits

DEFAULT_HEAD_RATE_FACTOR = 1.0  # the head's rate is this times the backbone's, unless given (10: -0.8 points)
DEFAULT_WISE = 1.0  # WiSE-FT: the share of the fine-tuned weights averaged with the start's (1: none)
