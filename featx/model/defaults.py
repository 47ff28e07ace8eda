"""Fine-tuning's defaults, chosen on ``benchmarks/quality.py`` (EfficientNet-Lite0, Fashion-MNIST,
100 images per class; the README's "Fine-tune" section has the figures). A module of their own, so
the CLI shows them without importing scikit-learn or Keras at startup."""

DEFAULT_UNFREEZE = "30"  # top backbone layers trained (BatchNormalization stays frozen)
DEFAULT_EPOCHS = 10  # at most; early stopping on the validation loss
DEFAULT_LEARNING_RATE = 1e-4  # Adam's
DEFAULT_LABEL_SMOOTHING = 0.1  # the loss never reaches zero on images the head already fits
