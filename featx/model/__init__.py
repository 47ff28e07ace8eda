"""One Keras model from a backbone and a fitted head: building it, its file, fine-tuning, export."""
